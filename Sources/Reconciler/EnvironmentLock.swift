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

    /// Takes the lock of `environment` under `root`, waiting for it unless `wait` is false.
    /// - Throws: ``ReconcileError`` with code `locked` when it is held and `wait` is false.
    public init(root: URL, environment: String, wait: Bool) throws(ReconcileError) {
        // The name is checked before any path is built from it: `../../x` must not make a file outside `.stagecraft/`.
        guard ModelManifest.isValidName(environment) else {
            throw ReconcileError(.invalid, "'\(environment.prefix(80))' is not a valid environment name (1 to 63 of a-z, 0-9 and '-')")
        }
        let folder = root.appendingPathComponent(".stagecraft/run")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        _ = chmod(folder.path, 0o700)
        path = folder.appendingPathComponent("\(environment).lock").path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw ReconcileError(.state, "cannot open the lock file \(path)") }
        _ = fchmod(fd, 0o600)
        // On a throw below, deinit runs (every property is set) and closes fd: it must not be closed here too.
        while flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0 {
            if errno == EINTR { continue }
            if errno == EWOULDBLOCK {
                throw ReconcileError(.locked, "another reconcile of '\(environment)' is running (lock \(path))")
            }
            throw ReconcileError(.state, "cannot lock \(path)")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    deinit {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
    }
}
