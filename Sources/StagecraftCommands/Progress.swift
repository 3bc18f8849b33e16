import Foundation
import Synchronization

/// A one-line progress display, redrawn in place on a terminal (at most every 50 ms) and silent elsewhere.
final class ProgressLine: Sendable {
    private let console: Console
    private let lastDraw = Mutex<Date?>(nil)

    init(console: Console) { self.console = console }

    func update(_ text: String) {
        guard console.isTerminal else { return }
        let draw = lastDraw.withLock { last -> Bool in
            let now = Date()
            if let previous = last, now.timeIntervalSince(previous) < 0.05 { return false }
            last = now
            return true
        }
        if draw { console.write("\r\u{1B}[2K" + console.styled(text, .dim), error: true) }
    }

    /// Clears the line.
    func finish() {
        if console.isTerminal { console.write("\r\u{1B}[2K", error: true) }
    }
}
