public import Foundation
import Manifests

#if canImport(Glibc)
    import Glibc
#endif

/// The lock that lets one reconcile at a time apply to an environment: `flock` on `.stagecraft/run/<env>.lock`.
/// The kernel releases it when its holder exits, killed or not, so a crash never leaves it stuck.
public final class EnvironmentLock {
    private let fd: Int32
    public let path: String

    /// Takes the lock of `environment` under `root`, waiting for it unless `wait` is false; `waiting` is told who holds
    /// it before the wait begins.
    /// - Throws: ``ReconcileError`` with code `locked` when it is held and `wait` is false.
    public init(root: URL, environment: String, wait: Bool, waiting: (String) -> Void = { _ in }) throws(ReconcileError) {
        // The name is checked before any path is built from it: `../../x` must not make a file outside `.stagecraft/`.
        guard ModelManifest.isValidName(environment) else {
            throw ReconcileError(.invalid, "'\(environment.prefix(80))' is not a valid environment name (1 to 63 of a-z, 0-9 and '-')")
        }
        path = Self.file(root: root, environment: environment)
        let folder = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        _ = chmod(folder, 0o700)
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw ReconcileError(.state, "cannot open the lock file \(path)") }
        _ = fchmod(fd, 0o600)
        // On a throw below, deinit runs (every property is set) and closes fd: it must not be closed here too.
        var told = false
        while flock(fd, LOCK_EX | (wait && told ? 0 : LOCK_NB)) != 0 {
            if errno == EINTR { continue }
            if errno == EWOULDBLOCK {
                let holder = Self.holder(fd)
                guard wait else {
                    throw ReconcileError(.locked, "another reconcile of '\(environment)' is running (\(holder); lock \(path))")
                }
                waiting("waiting for another reconcile of '\(environment)' to finish (\(holder))")
                told = true
                continue
            }
            throw ReconcileError(.state, "cannot lock \(path)")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    /// The lock file of `environment` under `root`: `.stagecraft/run/<env>.lock`.
    static func file(root: URL, environment: String) -> String {
        root.appendingPathComponent(".stagecraft/run/\(environment).lock").path
    }

    /// Who holds the lock of `environment` under `root` now (`pid …: command`), or nil when nobody does.
    public static func holder(root: URL, environment: String) -> String? {
        guard ModelManifest.isValidName(environment) else { return nil }
        let path = file(root: root, environment: environment)
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return nil
        }
        return holder(fd)
    }

    /// Who holds the lock: the pid its holder wrote, and that process's command line.
    private static func holder(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = pread(fd, &buffer, 31, 0)
        guard count > 0, let pid = Int32(String(decoding: buffer[0..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        else { return "holder unknown" }
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else { return "pid \(pid)" }
        let words = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        let name = (words.first.map { ($0 as NSString).lastPathComponent } ?? "")
        let command = ([name] + words.dropFirst()).joined(separator: " ")
        return "pid \(pid): \(command.prefix(120))"
    }

    deinit {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
    }
}
