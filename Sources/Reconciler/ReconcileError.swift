/// Why a plan, reconcile, promotion, rollback or history could not be done.
public struct ReconcileError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The files at the ref are not a valid project, or name what does not exist.
        case invalid
        /// A version could not be built, or its digest does not match the pin.
        case build
        /// A version failed its gates.
        case gate
        /// The environment's server could not be started or driven.
        case server
        /// Another reconcile holds the environment's lock.
        case locked
        /// A promotion or rollback was refused.
        case refused
        /// The state store or the git notes could not be read or written.
        case state
    }

    public let code: Code
    public let message: String
    public let cause: String?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause.map { String(describing: $0) }
    }

    public var description: String { cause.map { "\(message): \($0)" } ?? message }
}
