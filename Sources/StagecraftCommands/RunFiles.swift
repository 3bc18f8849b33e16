import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The pid and log files of an environment's detached server: `.stagecraft/run/<env>.pid` and `<env>.log`.
struct RunFiles {
    let folder: URL
    let environment: String

    init(root: URL, environment: String) {
        self.folder = root.appendingPathComponent(".stagecraft/run")
        self.environment = environment
    }

    var pidFile: URL { folder.appendingPathComponent("\(environment).pid") }
    var logFile: URL { folder.appendingPathComponent("\(environment).log") }

    /// The pid of the server when it is running; a stale pid file is removed.
    func runningPID() -> Int32? {
        guard let text = try? String(contentsOf: pidFile, encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            return nil
        }
        if kill(pid, 0) == 0 { return pid }
        try? FileManager.default.removeItem(at: pidFile)
        return nil
    }
}
