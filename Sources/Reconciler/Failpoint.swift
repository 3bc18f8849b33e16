import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Named points in a reconcile where a crash test can have the process killed (`STAGECRAFT_FAILPOINT=<name>`
/// sends SIGKILL to itself there), to show that the next reconcile converges from each of them; `<name>:pause`
/// says so on standard error and waits 2 s there instead (a test signals the process while a reconcile is under way).
enum Failpoint {
    static let armed = ProcessInfo.processInfo.environment["STAGECRAFT_FAILPOINT"]

    static func hit(_ name: String) {
        guard let armed else { return }
        if armed == name { kill(getpid(), SIGKILL) }
        if armed == name + ":pause" {
            FileHandle.standardError.write(Data("failpoint \(name): paused\n".utf8))
            Thread.sleep(forTimeInterval: 2)
        }
    }
}
