import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where commands write: the process's stdout and stderr, or buffers when a test runs a command in-process.
public final class Console: Sendable {
    private enum Target { case standard, buffer }
    private let target: Target
    private let buffers = Mutex<(out: String, err: String)>(("", ""))
    /// True when standard output is a terminal (never for a buffer): progress displays and colours only then.
    public let isTerminal: Bool

    private init(target: Target, isTerminal: Bool) {
        self.target = target
        self.isTerminal = isTerminal
    }

    /// The process's own standard output and error.
    public static let standard = Console(target: .standard, isTerminal: isatty(STDOUT_FILENO) == 1)

    /// A console that keeps what is written, for in-process tests.
    public static func capturing() -> Console { Console(target: .buffer, isTerminal: false) }

    /// The console commands write to; tests bind it to a capturing console.
    @TaskLocal public static var current: Console = .standard

    /// Colours are used on a terminal unless `NO_COLOR` is set.
    public var useColor: Bool { isTerminal && ProcessInfo.processInfo.environment["NO_COLOR"] == nil }

    /// Writes `text` and a newline to standard output.
    public func print(_ text: String = "") { write(text + "\n", error: false) }
    /// Writes `text` and a newline to standard error.
    public func printError(_ text: String) { write(text + "\n", error: true) }
    /// Writes `warning: text` and a newline to standard error.
    public func warn(_ text: String) { printError(styled("warning: ", .yellow) + text) }

    public func write(_ text: String, error: Bool) {
        switch target {
        case .standard:
            // A reader that went away (`stagecraft builds | head -1`) loses the rest of the text; the command goes on.
            try? FileHandle(fileDescriptor: error ? STDERR_FILENO : STDOUT_FILENO, closeOnDealloc: false).write(contentsOf: Data(text.utf8))
        case .buffer:
            buffers.withLock { error ? $0.err.append(text) : $0.out.append(text) }
        }
    }

    /// What was written to standard output (buffers only).
    public var output: String { buffers.withLock { $0.out } }
    /// What was written to standard error (buffers only).
    public var errorOutput: String { buffers.withLock { $0.err } }

    /// `text` in a terminal style (bold, red, green, yellow, dim) when colours are on.
    public func styled(_ text: String, _ style: Style) -> String {
        useColor ? "\u{1B}[\(style.rawValue)m\(text)\u{1B}[0m" : text
    }

    public enum Style: String, Sendable {
        case bold = "1", red = "31", green = "32", yellow = "33", dim = "2"
    }
}
