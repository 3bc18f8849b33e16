/// Why a plan, reconcile, promotion, rollback or history could not be done.
public struct ReconcileError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The files at the ref are not a valid project, or name what does not exist.
        public static let invalid = Code("invalid")
        /// A version could not be built, or its digest does not match the pin.
        public static let build = Code("build")
        /// A version failed its gates.
        public static let gate = Code("gate")
        /// The environment's server could not be started or driven.
        public static let server = Code("server")
        /// Another reconcile holds the environment's lock.
        public static let locked = Code("locked")
        /// This reconcile's lease was taken over by another (a newer epoch): it stands down, writing nothing more.
        public static let fenced = Code("fenced")
        /// A promotion or rollback was refused.
        public static let refused = Code("refused")
        /// The state store or the git notes could not be read or written.
        public static let state = Code("state")
        /// The environment named (on the command line) has no file at the ref.
        public static let unknownEnvironment = Code("unknown-environment")
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
