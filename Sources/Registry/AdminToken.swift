public import Foundation
#if canImport(Glibc)
    import Glibc
#endif

/// The token that guards a server's model repository API: `.stagecraft/admin-token`, created once with mode 0600.
public enum AdminToken {
    /// Reads the token under `root` (the folder holding `.stagecraft/`), creating it when missing. Processes that
    /// start at once agree: the token is written aside and linked into place, which fails when another process's is
    /// there first (that one is then read).
    public static func loadOrCreate(root: URL) throws -> String {
        let url = root.appendingPathComponent(".stagecraft/admin-token")
        func existing() -> String? {
            (try? String(contentsOf: url, encoding: .utf8)).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.flatMap {
                $0.isEmpty ? nil : $0
            }
        }
        if let token = existing() { return token }
        var generator = SystemRandomNumberGenerator()
        let token = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        let aside = url.deletingLastPathComponent().appendingPathComponent(".admin-token.\(UUID().uuidString)")
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            guard
                FileManager.default.createFile(
                    atPath: aside.path, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600])
            else {
                throw RegistryError(.io, "cannot create \(aside.path)")
            }
            defer { unlink(aside.path) }
            if link(aside.path, url.path) == 0 { return token }
            guard errno == EEXIST, let theirs = existing() else {
                throw RegistryError(.io, "cannot create \(url.path): \(String(cString: strerror(errno)))")
            }
            return theirs
        } catch let error as RegistryError {
            throw error
        } catch {
            throw RegistryError(.io, "cannot create \(url.path)", cause: RegistryError.Underlying(error))
        }
    }
}
