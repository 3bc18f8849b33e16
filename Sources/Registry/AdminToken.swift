public import Foundation

/// The token that guards a server's model repository API: `.stagecraft/admin-token`, created once with mode 0600.
public enum AdminToken {
    /// Reads the token under `root` (the folder holding `.stagecraft/`), creating it when missing.
    public static func loadOrCreate(root: URL) throws -> String {
        let url = root.appendingPathComponent(".stagecraft/admin-token")
        if let existing = try? String(contentsOf: url, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !existing.isEmpty {
            return existing
        }
        var generator = SystemRandomNumberGenerator()
        let token = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            guard
                FileManager.default.createFile(
                    atPath: url.path, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600])
            else {
                throw RegistryError(.io, "cannot create \(url.path)")
            }
        } catch let error as RegistryError {
            throw error
        } catch {
            throw RegistryError(.io, "cannot create \(url.path)", cause: RegistryError.Underlying(error))
        }
        return token
    }
}
