/// A failure of an S3 request. Its text names the bucket, the key and what the server said; never a credential.
public struct S3Error: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// No such object or bucket.
        public static let notFound = Code("not-found")
        /// The server refused the credentials or the request (403).
        public static let accessDenied = Code("access-denied")
        /// No credentials in any of the standard places.
        public static let noCredentials = Code("no-credentials")
        /// The server cannot be reached, or kept failing (5xx, throttling) after every retry.
        public static let unavailable = Code("unavailable")
        /// A conditional write found the object already there.
        public static let preconditionFailed = Code("precondition-failed")
        /// What was downloaded is not what was expected (sha256, size).
        public static let contentMismatch = Code("content-mismatch")
        /// The server answered something this client does not understand, or refused the request (4xx).
        public static let badResponse = Code("bad-response")
        /// A local file cannot be read or written.
        public static let io = Code("io")
    }

    public let code: Code
    /// What failed, for the user.
    public let message: String
    /// What caused it (the transport's error, the file system's), as text.
    public let cause: String?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause.map { String(describing: $0) }
    }

    public var description: String { cause.map { "\(message): \($0)" } ?? message }
}
