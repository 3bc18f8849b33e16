import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Named points in a reconcile where a crash test can have the process killed (`STAGECRAFT_FAILPOINT=<name>`
/// sends SIGKILL to itself there), to show that the next reconcile converges from each of them.
enum Failpoint {
    static let armed = ProcessInfo.processInfo.environment["STAGECRAFT_FAILPOINT"]

    static func hit(_ name: String) {
        if armed == name { kill(getpid(), SIGKILL) }
    }
}
