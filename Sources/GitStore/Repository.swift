internal import CLibGit2
public import Foundation
import Synchronization

/// A git repository (with a working tree, or bare), read and written through libgit2.
///
/// Every operation works on git objects: reading a file at a commit needs no checkout, and a commit can be
/// made onto any branch without touching the working tree (see ``commit(_:onBranch:message:author:committer:)``).
/// One instance may be shared between tasks; calls into libgit2 are serialized.
public final class Repository: Sendable {
    private let handle: Mutex<OpaquePointer>
    /// The `.git` folder, or the repository itself when bare; ends without a slash.
    public let gitDirectory: String
    /// The working tree, or nil for a bare repository; ends without a slash.
    public let workingDirectory: String?
    /// True when the repository has no working tree.
    public var isBare: Bool { workingDirectory == nil }

    private init(_ pointer: sending OpaquePointer) {
        self.gitDirectory = Repository.trimmed(String(cString: git_repository_path(pointer)))
        self.workingDirectory = git_repository_workdir(pointer).map { Repository.trimmed(String(cString: $0)) }
        self.handle = Mutex(pointer)
    }

    deinit {
        handle.withLock { git_repository_free($0) }
    }

    private static func trimmed(_ path: String) -> String {
        path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
    }

    /// Opens the repository at `path`, or the one that contains it (like `git -C path`).
    public static func open(at path: String) throws(GitError) -> Repository {
        LibGit2.start()
        var pointer: OpaquePointer?
        try LibGit2.check("git_repository_open_ext", "no git repository at \(path)", path: path) {
            git_repository_open_ext(&pointer, path, 0, nil)
        }
        return Repository(pointer!)
    }

    /// Creates a new repository at `path` (a folder that may exist), with `initialBranch` as its unborn HEAD.
    public static func create(at path: String, bare: Bool = false, initialBranch: String = "main") throws(GitError) -> Repository {
        LibGit2.start()
        var options = git_repository_init_options()
        git_repository_init_options_init(&options, UInt32(GIT_REPOSITORY_INIT_OPTIONS_VERSION))
        options.flags = GIT_REPOSITORY_INIT_MKPATH.rawValue | (bare ? GIT_REPOSITORY_INIT_BARE.rawValue : 0)
        var pointer: OpaquePointer?
        let code = initialBranch.withCString { branch in
            options.initial_head = branch
            return git_repository_init_ext(&pointer, path, &options)
        }
        try LibGit2.check("git_repository_init_ext", "cannot create a repository at \(path)", path: path) { code }
        return Repository(pointer!)
    }

    /// Runs `body` with exclusive use of the libgit2 repository.
    func withHandle<T: Sendable>(_ body: (OpaquePointer) throws(GitError) -> T) throws(GitError) -> T {
        try handle.withLock { (pointer) throws(GitError) -> T in try body(pointer) }
    }

    var displayName: String { workingDirectory ?? gitDirectory }

    // MARK: Refs and commits

    /// Resolves a branch, tag, `HEAD`, full or abbreviated hash, or any revision expression to a commit.
    public func resolve(_ revision: String) throws(GitError) -> ObjectID {
        try withHandle { (repo) throws(GitError) in
            try Self.resolve(revision, in: repo, repositoryName: displayName)
        }
    }

    static func resolve(_ revision: String, in repo: OpaquePointer, repositoryName: String) throws(GitError) -> ObjectID {
        var object: OpaquePointer?
        try LibGit2.check("git_revparse_single", "cannot resolve '\(revision)' to a commit in \(repositoryName)", ref: revision) {
            git_revparse_single(&object, repo, revision)
        }
        defer { git_object_free(object) }
        var commit: OpaquePointer?
        try LibGit2.check("git_object_peel", "'\(revision)' does not name a commit in \(repositoryName)", ref: revision) {
            git_object_peel(&commit, object, GIT_OBJECT_COMMIT)
        }
        defer { git_object_free(commit) }
        return git_object_id(commit).pointee.objectID
    }

    /// The commit a branch points to, or nil when the branch does not exist (or is unborn).
    public func branchTip(_ branch: String) throws(GitError) -> ObjectID? {
        try withHandle { (repo) throws(GitError) in
            var oid = git_oid()
            let code = git_reference_name_to_id(&oid, repo, "refs/heads/\(branch)")
            if code == GIT_ENOTFOUND.rawValue { return nil }
            try LibGit2.check("git_reference_name_to_id", "cannot read branch '\(branch)' in \(displayName)", ref: branch) { code }
            return oid.objectID
        }
    }

    /// Creates branch `name` at `commit`; fails when it exists.
    public func createBranch(_ name: String, at commit: ObjectID) throws(GitError) {
        try withHandle { (repo) throws(GitError) in
            var oid = commit.oid
            var reference: OpaquePointer?
            try LibGit2.check("git_reference_create", "cannot create branch '\(name)' in \(displayName)", ref: name) {
                git_reference_create(&reference, repo, "refs/heads/\(name)", &oid, 0, "stagecraft: branch \(name)")
            }
            git_reference_free(reference)
        }
    }

    /// The branch HEAD points to (also when it has no commit yet), or nil when HEAD is detached.
    public func currentBranch() throws(GitError) -> String? {
        try withHandle { (repo) throws(GitError) in
            var head: OpaquePointer?
            try LibGit2.check("git_reference_lookup", "cannot read HEAD in \(displayName)", ref: "HEAD") {
                git_reference_lookup(&head, repo, "HEAD")
            }
            defer { git_reference_free(head) }
            guard git_reference_type(head) == GIT_REFERENCE_SYMBOLIC, let target = git_reference_symbolic_target(head)
            else { return nil }
            let name = String(cString: target)
            return name.hasPrefix("refs/heads/") ? String(name.dropFirst("refs/heads/".count)) : nil
        }
    }

    /// Reads one commit: parents, author, committer and message.
    public func commit(_ id: ObjectID) throws(GitError) -> Commit {
        try withHandle { (repo) throws(GitError) in try Self.commit(id, in: repo, repositoryName: displayName) }
    }

    /// The libgit2 commit `id`; the caller frees it with `git_commit_free`.
    static func lookupCommit(_ id: ObjectID, in repo: OpaquePointer, repositoryName: String) throws(GitError) -> OpaquePointer {
        var oid = id.oid
        var commit: OpaquePointer?
        try LibGit2.check("git_commit_lookup", "no commit \(id.short) in \(repositoryName)", ref: id.hex) {
            git_commit_lookup(&commit, repo, &oid)
        }
        return commit!
    }

    /// The root tree of a libgit2 commit; the caller frees it with `git_tree_free`.
    static func tree(of commit: OpaquePointer, id: ObjectID) throws(GitError) -> OpaquePointer {
        var tree: OpaquePointer?
        try LibGit2.check("git_commit_tree", "cannot read the tree of commit \(id.short)", ref: id.hex) { git_commit_tree(&tree, commit) }
        return tree!
    }

    static func commit(_ id: ObjectID, in repo: OpaquePointer, repositoryName: String) throws(GitError) -> Commit {
        let commit = try lookupCommit(id, in: repo, repositoryName: repositoryName)
        defer { git_commit_free(commit) }
        let parents = (0..<git_commit_parentcount(commit)).map { git_commit_parent_id(commit, $0).pointee.objectID }
        return Commit(
            id: id,
            parents: parents,
            author: Signature(git_commit_author(commit)),
            committer: Signature(git_commit_committer(commit)),
            message: String(cString: git_commit_message(commit))
        )
    }

    // MARK: Reading files at a commit

    /// The bytes of the file at `path` in `commit`.
    /// - Throws: ``GitError/Code/notFound`` when there is no file there (the message names the path and the commit).
    public func file(at path: String, in commit: ObjectID) throws(GitError) -> Data {
        guard let data = try fileIfPresent(at: path, in: commit) else {
            throw GitError(.notFound, "no file '\(path)' at commit \(commit.short) in \(displayName)", path: path, ref: commit.hex)
        }
        return data
    }

    /// The bytes of the file at `path` in `commit`, or nil when nothing is there.
    /// - Throws: when `path` names a folder, or the commit cannot be read.
    public func fileIfPresent(at path: String, in commit: ObjectID) throws(GitError) -> Data? {
        let path = try normalizedPath(path)
        guard !path.isEmpty else {
            throw GitError(.invalidArgument, "the root folder at commit \(commit.short) is not a file", path: path, ref: commit.hex)
        }
        return try withHandle { (repo) throws(GitError) -> Data? in
            guard let entry = try Self.entry(at: path, in: commit, repo: repo, repositoryName: displayName) else { return nil }
            guard entry.type == GIT_OBJECT_BLOB else {
                throw GitError(.invalidArgument, "'\(path)' at commit \(commit.short) is a folder, not a file", path: path, ref: commit.hex)
            }
            var oid = entry.oid
            var blob: OpaquePointer?
            try LibGit2.check("git_blob_lookup", "cannot read '\(path)' at commit \(commit.short)", path: path, ref: commit.hex) {
                git_blob_lookup(&blob, repo, &oid)
            }
            defer { git_blob_free(blob) }
            let size = Int(git_blob_rawsize(blob))
            guard size > 0, let bytes = git_blob_rawcontent(blob) else { return Data() }
            return Data(bytes: bytes, count: size)
        }
    }

    /// Whether a file (not a folder) is at `path` in `commit`; its contents are not read.
    public func fileExists(at path: String, in commit: ObjectID) throws(GitError) -> Bool {
        let path = try normalizedPath(path)
        guard !path.isEmpty else { return false }
        return try withHandle { (repo) throws(GitError) -> Bool in
            try Self.entry(at: path, in: commit, repo: repo, repositoryName: displayName)?.type == GIT_OBJECT_BLOB
        }
    }

    /// The entries of the folder at `path` (empty string: the root) in `commit`, sorted by name;
    /// nil when there is no folder there.
    public func directory(at path: String, in commit: ObjectID) throws(GitError) -> [TreeEntry]? {
        let path = try normalizedPath(path)
        return try withHandle { (repo) throws(GitError) -> [TreeEntry]? in
            var tree: OpaquePointer?
            if path.isEmpty {
                tree = try Self.rootTree(of: commit, repo: repo, repositoryName: displayName)
            } else {
                guard let entry = try Self.entry(at: path, in: commit, repo: repo, repositoryName: displayName),
                    entry.type == GIT_OBJECT_TREE
                else { return nil }
                var oid = entry.oid
                try LibGit2.check(
                    "git_tree_lookup",
                    "cannot read folder '\(path)' at commit "
                        + "\(commit.short)", path: path, ref: commit.hex
                ) {
                    git_tree_lookup(&tree, repo, &oid)
                }
            }
            defer { git_tree_free(tree) }
            return (0..<git_tree_entrycount(tree)).compactMap { index -> TreeEntry? in
                guard let entry = git_tree_entry_byindex(tree, index) else { return nil }  // owned by the tree
                let kind: TreeEntry.Kind
                switch git_tree_entry_filemode(entry) {
                case GIT_FILEMODE_TREE: kind = .directory
                case GIT_FILEMODE_BLOB_EXECUTABLE: kind = .executable
                case GIT_FILEMODE_LINK: kind = .symlink
                case GIT_FILEMODE_COMMIT: kind = .submodule
                default: kind = .file
                }
                return TreeEntry(
                    name: String(cString: git_tree_entry_name(entry)), kind: kind, id: git_tree_entry_id(entry).pointee.objectID)
            }
        }
    }

    struct EntryInfo {
        var oid: git_oid
        var type: git_object_t
    }

    static func rootTree(of commit: ObjectID, repo: OpaquePointer, repositoryName: String) throws(GitError) -> OpaquePointer {
        let commitObject = try lookupCommit(commit, in: repo, repositoryName: repositoryName)
        defer { git_commit_free(commitObject) }
        return try tree(of: commitObject, id: commit)
    }

    /// The object at `path` (already normalized, not empty) in `commit`, or nil when nothing is there.
    static func entry(at path: String, in commit: ObjectID, repo: OpaquePointer, repositoryName: String) throws(GitError) -> EntryInfo? {
        let tree = try rootTree(of: commit, repo: repo, repositoryName: repositoryName)
        defer { git_tree_free(tree) }
        return try entry(at: path, inTree: tree)
    }

    static func entry(at path: String, inTree tree: OpaquePointer) throws(GitError) -> EntryInfo? {
        var entry: OpaquePointer?
        let code = git_tree_entry_bypath(&entry, tree, path)
        if code == GIT_ENOTFOUND.rawValue { return nil }
        try LibGit2.check("git_tree_entry_bypath", "cannot look up '\(path)'", path: path) { code }
        defer { git_tree_entry_free(entry) }  // bypath returns an entry the caller owns
        return EntryInfo(oid: git_tree_entry_id(entry).pointee, type: git_tree_entry_type(entry))
    }
}

extension Repository {
    /// The identity git would use here (`user.name` and `user.email` from the repository's and the user's
    /// config), or `fallback` when none is configured.
    public func defaultSignature(fallback: Signature = Signature(name: "stagecraft", email: "stagecraft@localhost")) -> Signature {
        (try? withHandle { (repo) throws(GitError) -> Signature? in
            var pointer: UnsafeMutablePointer<git_signature>?
            guard git_signature_default(&pointer, repo) == 0, let pointer else { return nil }
            defer { git_signature_free(pointer) }
            return Signature(UnsafePointer(pointer))
        }) ?? fallback
    }
}
