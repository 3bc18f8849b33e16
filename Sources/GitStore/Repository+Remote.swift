internal import CLibGit2
import Foundation

/// How to authenticate to an ssh remote.
public struct SSHCredentials: Sendable, Hashable {
    /// The user name on the remote (`git` for most hosts).
    public var username: String
    /// Path to the private key (ed25519 recommended: libssh2 here cannot sign with RSA-SHA2).
    public var privateKeyPath: String
    /// Path to the public key; derived from the private key by libssh2 when nil.
    public var publicKeyPath: String?
    public var passphrase: String?
    /// The host key's SHA-256 fingerprint as `ssh-keygen -l` prints it (`SHA256:base64…`); when set, any other
    /// host key is refused.
    public var hostKeyFingerprint: String?

    public init(
        username: String = "git", privateKeyPath: String, publicKeyPath: String? = nil,
        passphrase: String? = nil, hostKeyFingerprint: String? = nil
    ) {
        self.username = username
        self.privateKeyPath = privateKeyPath
        self.publicKeyPath = publicKeyPath
        self.passphrase = passphrase
        self.hostKeyFingerprint = hostKeyFingerprint
    }
}

/// State shared with libgit2's callbacks for one fetch or push.
private final class RemoteSession {
    let credentials: SSHCredentials?
    var credentialAttempts = 0
    var rejectedRefs: [(ref: String, status: String)] = []
    var failure: String?

    init(credentials: SSHCredentials?) { self.credentials = credentials }

    func callbacks() -> git_remote_callbacks {
        var callbacks = git_remote_callbacks()
        git_remote_init_callbacks(&callbacks, UInt32(GIT_REMOTE_CALLBACKS_VERSION))
        callbacks.payload = Unmanaged.passUnretained(self).toOpaque()
        callbacks.credentials = { out, _, usernameFromURL, allowed, payload in
            let session = Unmanaged<RemoteSession>.fromOpaque(payload!).takeUnretainedValue()
            guard let key = session.credentials else {
                session.failure = "the remote asks for credentials and none were given"
                return GIT_EUSER.rawValue
            }
            session.credentialAttempts += 1
            guard session.credentialAttempts <= 1 else {
                session.failure = "the remote refused the key \(key.privateKeyPath)"
                return GIT_EUSER.rawValue
            }
            let user = usernameFromURL.map { String(cString: $0) } ?? key.username
            if allowed & GIT_CREDENTIAL_USERNAME.rawValue != 0 && allowed & GIT_CREDENTIAL_SSH_KEY.rawValue == 0 {
                return git_credential_username_new(out, user)
            }
            return git_credential_ssh_key_new(out, user, key.publicKeyPath, key.privateKeyPath, key.passphrase)
        }
        callbacks.certificate_check = { cert, valid, host, payload in
            let session = Unmanaged<RemoteSession>.fromOpaque(payload!).takeUnretainedValue()
            guard let expected = session.credentials?.hostKeyFingerprint, let cert,
                cert.pointee.cert_type == GIT_CERT_HOSTKEY_LIBSSH2
            else {
                return valid != 0 ? 0 : GIT_PASSTHROUGH.rawValue
            }
            let hostkey = UnsafeRawPointer(cert).assumingMemoryBound(to: git_cert_hostkey.self).pointee
            guard hostkey.type.rawValue & GIT_CERT_SSH_SHA256.rawValue != 0 else {
                session.failure = "the host key of \(host.map { String(cString: $0) } ?? "the remote") has no SHA-256 fingerprint"
                return GIT_ECERTIFICATE.rawValue
            }
            let digest = withUnsafeBytes(of: hostkey.hash_sha256) { Data($0) }
            var fingerprint = "SHA256:" + digest.base64EncodedString()
            while fingerprint.hasSuffix("=") { fingerprint.removeLast() }
            let wanted = expected.hasSuffix("=") ? String(expected.reversed().drop(while: { $0 == "=" }).reversed()) : expected
            guard fingerprint == wanted else {
                session.failure =
                    "the host key of \(host.map { String(cString: $0) } ?? "the remote") is \(fingerprint), expected "
                    + "\(expected)"
                return GIT_ECERTIFICATE.rawValue
            }
            return 0
        }
        callbacks.push_update_reference = { refname, status, payload in
            let session = Unmanaged<RemoteSession>.fromOpaque(payload!).takeUnretainedValue()
            if let status, let refname {
                session.rejectedRefs.append((String(cString: refname), String(cString: status)))
            }
            return 0
        }
        return callbacks
    }
}

/// A `git_strarray` over copies of `strings`, valid during `body`.
private func withStrArray<T>(_ strings: [String], _ body: (inout git_strarray) throws(GitError) -> T) throws(GitError) -> T {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    defer { pointers.forEach { free($0) } }
    return try pointers.withUnsafeMutableBufferPointer { (buffer) throws(GitError) -> T in
        var array = git_strarray(strings: buffer.baseAddress, count: strings.count)
        return try body(&array)
    }
}

extension Repository {
    /// The refspecs that mirror a remote's branches and tags into a bare cache; its notes are fetched beside the
    /// cache's own (``fetchedNotesPrefix``), to be merged into them, never over them.
    public static let mirrorRefspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*", notesRefspec]

    /// Where a fetch puts the remote's notes refs (`…/stagecraft` for `refs/notes/stagecraft`).
    public static let fetchedNotesPrefix = "refs/stagecraft/fetched-notes/"

    /// The refspec that fetches a remote's notes beside this repository's own, under ``fetchedNotesPrefix``.
    public static let notesRefspec = "+refs/notes/*:\(fetchedNotesPrefix)*"

    /// Where a fetch puts the remote's deployment notes.
    public static var fetchedStagecraftNotes: String { fetchedNotesPrefix + "stagecraft" }

    /// Runs `body` with an anonymous remote for `url`, holding the repository.
    private func withRemote(_ url: String, _ body: (OpaquePointer?) throws(GitError) -> Void) throws(GitError) {
        try withHandle { (repo) throws(GitError) in
            var remote: OpaquePointer?
            try LibGit2.check("git_remote_create_anonymous", "cannot use '\(url)' as a remote", ref: url) {
                git_remote_create_anonymous(&remote, repo, url)
            }
            defer { git_remote_free(remote) }
            try body(remote)
        }
    }

    /// Fetches `refspecs` from `url` (a path, `file://`, `git://`, or ssh with `credentials`).
    public func fetch(from url: String, refspecs: [String] = Repository.mirrorRefspecs, credentials: SSHCredentials? = nil) throws(GitError)
    {
        try withRemote(url) { (remote) throws(GitError) in
            let session = RemoteSession(credentials: credentials)
            var options = git_fetch_options()
            git_fetch_options_init(&options, UInt32(GIT_FETCH_OPTIONS_VERSION))
            options.callbacks = session.callbacks()
            options.prune = GIT_FETCH_PRUNE
            try withStrArray(refspecs) { (specs) throws(GitError) in
                let code = withExtendedLifetime(session) { git_remote_fetch(remote, &specs, &options, "stagecraft: fetch") }
                if code < 0 {
                    let failure = LibGit2.failure("git_remote_fetch", code)
                    throw GitError(.remote, "cannot fetch from \(url): \(session.failure ?? failure.message)", ref: url, cause: failure)
                }
            }
        }
    }

    /// Opens the bare cache at `cachePath` (creating it when missing) and fetches every branch, tag and note of `url` into it.
    public static func mirror(_ url: String, into cachePath: String, credentials: SSHCredentials? = nil) throws(GitError) -> Repository {
        let repository: Repository
        if FileManager.default.fileExists(atPath: cachePath + "/HEAD") {
            repository = try Repository.open(at: cachePath)
        } else {
            repository = try Repository.create(at: cachePath, bare: true)
        }
        try repository.fetch(from: url, credentials: credentials)
        // Records this cache wrote and has not pushed yet stay: the remote's are merged in.
        _ = try repository.mergeFetchedNotes()
        return repository
    }

    /// Pushes `refspecs` (such as `refs/heads/main:refs/heads/main`) to `url`.
    /// - Throws: ``GitError/Code/conflict`` when the remote refuses an update that is not a fast-forward.
    public func push(to url: String, refspecs: [String], credentials: SSHCredentials? = nil) throws(GitError) {
        try withRemote(url) { (remote) throws(GitError) in
            let session = RemoteSession(credentials: credentials)
            var options = git_push_options()
            git_push_options_init(&options, UInt32(GIT_PUSH_OPTIONS_VERSION))
            options.callbacks = session.callbacks()
            try withStrArray(refspecs) { (specs) throws(GitError) in
                let code = withExtendedLifetime(session) { git_remote_push(remote, &specs, &options) }
                if code < 0 {
                    let failure = LibGit2.failure("git_remote_push", code)
                    let kind: GitError.Code = code == GIT_ENONFASTFORWARD.rawValue ? .conflict : .remote
                    throw GitError(kind, "cannot push to \(url): \(session.failure ?? failure.message)", ref: url, cause: failure)
                }
            }
            if let rejected = session.rejectedRefs.first {
                throw GitError(.conflict, "\(url) refused \(rejected.ref): \(rejected.status)", ref: rejected.ref)
            }
        }
    }
}

extension Repository {
    /// The URL of the configured remote `name`, or nil when there is none.
    public func remoteURL(_ name: String) throws(GitError) -> String? {
        try withHandle { (repo) throws(GitError) -> String? in
            var remote: OpaquePointer?
            let code = git_remote_lookup(&remote, repo, name)
            if code == GIT_ENOTFOUND.rawValue || code == GIT_EINVALIDSPEC.rawValue { return nil }
            try LibGit2.check("git_remote_lookup", "cannot read remote '\(name)' in \(displayName)", ref: name) { code }
            defer { git_remote_free(remote) }
            return git_remote_url(remote).map { String(cString: $0) }
        }
    }

    /// The commit `revision` names, or nil when it names nothing.
    public func resolveIfPresent(_ revision: String) throws(GitError) -> ObjectID? {
        do { return try resolve(revision) } catch  where error.code == .notFound { return nil }
    }

    /// Moves `branch` to `commit`. When the branch is checked out, the working tree and index follow, file by file,
    /// only where they still match the old tip (uncommitted edits are kept, or the move is refused).
    public func resetBranch(_ branch: String, to commit: ObjectID) throws(GitError) {
        let checkedOut = isBare ? false : try currentBranch() == branch
        let oldTip = try branchTip(branch)
        try withHandle { (repo) throws(GitError) in
            var oid = commit.oid
            var reference: OpaquePointer?
            try LibGit2.check("git_reference_create", "cannot move branch '\(branch)' in \(displayName)", ref: branch) {
                git_reference_create(&reference, repo, "refs/heads/\(branch)", &oid, 1, "stagecraft: reset \(branch)")
            }
            git_reference_free(reference)
            guard checkedOut, let oldTip else { return }
            let old = try Self.lookupCommit(oldTip, in: repo, repositoryName: displayName)
            defer { git_commit_free(old) }
            let baseline = try Self.tree(of: old, id: oldTip)
            defer { git_tree_free(baseline) }
            var options = git_checkout_options()
            git_checkout_options_init(&options, UInt32(GIT_CHECKOUT_OPTIONS_VERSION))
            options.checkout_strategy = GIT_CHECKOUT_SAFE.rawValue
            options.baseline = baseline
            try LibGit2.check("git_checkout_head", "cannot update the working tree of \(displayName) to \(commit.short)", ref: branch) {
                git_checkout_head(repo, &options)
            }
        }
    }
}
