/// A failure of a git operation, with what was asked (path, ref) and what libgit2 said.
public struct GitError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A repository, ref, commit, path or note that does not exist.
        public static let notFound = Code("not-found")
        /// A working-tree file has changes that a commit would overwrite.
        public static let uncommittedChanges = Code("uncommitted-changes")
        /// The branch moved while the commit was being made, or a push was not a fast-forward.
        public static let conflict = Code("conflict")
        /// An argument that cannot be used (an empty path, a path that is a folder, a bad ref name).
        public static let invalidArgument = Code("invalid-argument")
        /// Fetching or pushing failed: network, authentication or the remote refused.
        public static let remote = Code("remote")
        /// A lock file of the repository is held by a running process, or was left behind by one that died.
        public static let locked = Code("locked")
        /// Any other failure reported by libgit2.
        public static let other = Code("other")
    }

    /// libgit2's own report of a failed call.
    public struct LibGit2Failure: Error, Sendable, CustomStringConvertible {
        /// The function that failed, such as `git_repository_open_ext`.
        public let function: String
        /// The negative return code (`GIT_ENOTFOUND` is -3, and so on).
        public let returnCode: Int32
        /// libgit2's message, read on the failing thread right after the call.
        public let message: String
        public var description: String { "\(function) returned \(returnCode): \(message)" }
    }

    /// A failure outside libgit2 (the file system, a callback), kept as its description.
    public struct Underlying: Error, Sendable, CustomStringConvertible {
        public let description: String
        public init(_ error: any Error) { self.description = String(describing: error) }
    }

    public let code: Code
    /// What went wrong, in words, naming the path and the ref when there are any.
    public let message: String
    /// The repository-relative path the operation was about, if any.
    public let path: String?
    /// The ref, commit or remote the operation was about, if any.
    public let ref: String?
    /// The underlying failure (usually a ``LibGit2Failure``).
    public let cause: (any Error & Sendable)?

    public init(
        _ code: Code, _ message: String, path: String? = nil, ref: String? = nil,
        cause: (any Error & Sendable)? = nil
    ) {
        self.code = code
        self.message = message
        self.path = path
        self.ref = ref
        self.cause = cause
    }

    public var description: String {
        guard let cause else { return message }
        if let failure = cause as? LibGit2Failure { return "\(message) (libgit2: \(failure.message))" }
        return "\(message) (\(cause))"
    }
}
