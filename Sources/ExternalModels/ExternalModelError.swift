/// A failure of a model's own programs: its trainer or its server.
public struct ExternalModelError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The program cannot be started.
        public static let start = Code("start")
        /// The server exited, or did not answer its ready path in time.
        public static let notReady = Code("not-ready")
        /// The server is restarting: ask again after ``ExternalModelError/retryAfter`` seconds.
        public static let unavailable = Code("unavailable")
        /// The server answered something that is not a prediction of the rows it was sent.
        public static let badAnswer = Code("bad-answer")
    }

    public let code: Code
    public let message: String
    /// With `.unavailable`: seconds after which the server should be back.
    public let retryAfter: Int?
    public let cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, retryAfter: Int? = nil, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
        self.cause = cause
    }

    public var description: String { cause.map { "\(message): \($0)" } ?? message }
}
