import ArgumentParser

/// Exit codes of the command-line tool, as DESIGN.md lists them.
public enum ExitStatus: Int32, Sendable {
    /// Done, or in sync.
    case success = 0
    /// Failed: an error, an invalid project, a failed gate.
    case failure = 1
    /// Out of sync (`plan`, `status --check`).
    case outOfSync = 2
    /// The environment's lock is held and `--no-wait` was given.
    case lockHeld = 3
    /// The command line was wrong.
    case usage = 64
}

/// A command's failure, already explained to the user or to be printed as `error: message`.
public struct CommandFailure: Error, Sendable, CustomStringConvertible {
    public let status: ExitStatus
    /// Printed to standard error as `error: message`; nil when the command already said what went wrong.
    public let message: String?

    public init(_ status: ExitStatus, _ message: String? = nil) {
        self.status = status
        self.message = message
    }

    public var description: String { message ?? "exit \(status.rawValue)" }
}
