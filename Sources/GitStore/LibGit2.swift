internal import CLibGit2
import Foundation

/// libgit2 is started once per process, on first use.
private let libgit2Started: Void = {
    git_libgit2_init()
    // Objects come from local repositories that git itself checks (fsck, transfer); hashing every object again on
    // each read costs a SHA-1 per commit and tree in long history walks.
    _ = stagecraft_git_set_strict_hash_verification(0)
    // Commits are read once per walk and kept by the walker; caching them only costs memory and a long free at the end.
    _ = stagecraft_git_set_cache_object_limit(GIT_OBJECT_COMMIT, 0)
}()

enum LibGit2 {
    static func start() { _ = libgit2Started }

    /// The last error libgit2 recorded on this thread, as a ``GitError/LibGit2Failure``.
    /// Call it right after the failing call, with nothing in between.
    static func failure(_ function: String, _ code: Int32) -> GitError.LibGit2Failure {
        let message: String
        if let last = git_error_last(), let text = last.pointee.message {
            message = String(cString: text).trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            message = "no message"
        }
        return GitError.LibGit2Failure(function: function, returnCode: code, message: message)
    }

    /// Runs a libgit2 call; a negative result becomes a ``GitError`` whose code follows libgit2's.
    @discardableResult
    static func check(
        _ function: String, _ message: @autoclosure () -> String, path: String? = nil, ref: String? = nil,
        _ call: () -> Int32
    ) throws(GitError) -> Int32 {
        let code = call()
        guard code < 0 else { return code }
        let failure = failure(function, code)
        throw GitError(errorCode(code), message(), path: path, ref: ref, cause: failure)
    }

    static func errorCode(_ code: Int32) -> GitError.Code {
        switch code {
        case GIT_ENOTFOUND.rawValue, GIT_EUNBORNBRANCH.rawValue: return .notFound
        case GIT_EMODIFIED.rawValue, GIT_ENONFASTFORWARD.rawValue, GIT_ELOCKED.rawValue: return .conflict
        case GIT_EINVALIDSPEC.rawValue, GIT_EAMBIGUOUS.rawValue, GIT_EINVALID.rawValue: return .invalidArgument
        case GIT_EAUTH.rawValue, GIT_ECERTIFICATE.rawValue: return .remote
        default: return .other
        }
    }
}

extension git_oid {
    var objectID: ObjectID {
        withUnsafeBytes(of: id) { bytes in
            ObjectID(high: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                     middle: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
                     low: UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: 16, as: UInt32.self)))
        }
    }
}

extension ObjectID {
    var oid: git_oid {
        var oid = git_oid()
        withUnsafeMutableBytes(of: &oid.id) { bytes in
            bytes.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
            bytes.storeBytes(of: middle.bigEndian, toByteOffset: 8, as: UInt64.self)
            bytes.storeBytes(of: low.bigEndian, toByteOffset: 16, as: UInt32.self)
        }
        return oid
    }
}

extension Signature {
    init(_ signature: UnsafePointer<git_signature>) {
        let value = signature.pointee
        self.init(
            name: String(cString: value.name),
            email: String(cString: value.email),
            date: Date(timeIntervalSince1970: TimeInterval(value.when.time)),
            timeZoneOffsetMinutes: Int(value.when.offset)
        )
    }

    /// A libgit2 signature for the duration of `body`.
    func withGitSignature<T>(_ body: (UnsafeMutablePointer<git_signature>) throws(GitError) -> T) throws(GitError) -> T {
        var pointer: UnsafeMutablePointer<git_signature>?
        try LibGit2.check("git_signature_new", "invalid signature \(name) <\(email)>") {
            git_signature_new(&pointer, name, email, git_time_t(date.timeIntervalSince1970), Int32(timeZoneOffsetMinutes))
        }
        defer { git_signature_free(pointer) }
        return try body(pointer!)
    }
}

/// Normalizes a repository-relative path: no leading or trailing slash, no empty, `.` or `..` parts.
func normalizedPath(_ path: String) throws(GitError) -> String {
    let parts = path.split(separator: "/", omittingEmptySubsequences: true)
    guard !parts.contains(where: { $0 == "." || $0 == ".." }) else {
        throw GitError(.invalidArgument, "path '\(path)' must not contain '.' or '..' parts", path: path)
    }
    return parts.joined(separator: "/")
}
