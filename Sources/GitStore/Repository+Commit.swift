internal import CLibGit2
import Foundation

extension Repository {
    /// Commits `changes` onto `branch` without a checkout, and returns the new commit.
    ///
    /// The new tree is the branch tip's tree with `changes` applied; the branch moves only if it still points
    /// at the tip that was read (otherwise ``GitError/Code/conflict``). When `branch` is the one checked out
    /// in a working tree, the changed files are also written there and staged, so `git status` stays clean;
    /// a changed file that has uncommitted edits is refused with ``GitError/Code/uncommittedChanges`` before
    /// anything is written.
    /// - Parameters:
    ///   - changes: files to write or delete, by repository-relative path.
    ///   - branch: a branch name such as `main` (created when it does not exist yet).
    ///   - message: the commit message, trailers included.
    ///   - author: who made the change; also the committer unless `committer` is given.
    ///   - parent: when given, the tip the changes were computed from: a branch that has moved since is refused with
    ///     ``GitError/Code/conflict`` (re-read the tip and apply the change again) instead of overwriting what moved it.
    ///
    /// Commits of Stagecraft processes take turns (``withWriteLock(creating:_:)``), so the working tree and index of
    /// one are never seen half-updated by another.
    @discardableResult
    public func commit(
        _ changes: [FileChange], onBranch branch: String, message: String, author: Signature, committer: Signature? = nil,
        parent expectedParent: ObjectID? = nil
    ) throws(GitError) -> ObjectID {
        let paths = try changes.map { (change) throws(GitError) -> String in
            let path = try normalizedPath(change.path)
            guard !path.isEmpty else { throw GitError(.invalidArgument, "a file change needs a path", ref: branch) }
            return path
        }
        let checkedOut = isBare ? false : try currentBranch() == branch
        let refName = "refs/heads/\(branch)"
        return try withWriteLock(creating: [refName + ".lock"] + (checkedOut ? ["index.lock"] : [])) { () throws(GitError) -> ObjectID in
            try commitLocked(
                changes, paths: paths, onBranch: branch, message: message, author: author, committer: committer,
                parent: expectedParent, checkedOut: checkedOut)
        }
    }

    private func commitLocked(
        _ changes: [FileChange], paths: [String], onBranch branch: String, message: String, author: Signature, committer: Signature?,
        parent expectedParent: ObjectID?, checkedOut: Bool
    ) throws(GitError) -> ObjectID {
        let refName = "refs/heads/\(branch)"
        let text = message.hasSuffix("\n") ? message : message + "\n"

        let id = try withHandle { (repo) throws(GitError) -> ObjectID in
            if checkedOut {
                for path in paths { try Self.requireClean(path, repo: repo, repositoryName: displayName, branch: branch) }
            }
            var parentID = git_oid()
            let lookup = git_reference_name_to_id(&parentID, repo, refName)
            let hasParent = lookup == 0
            if !hasParent && lookup != GIT_ENOTFOUND.rawValue {
                try LibGit2.check("git_reference_name_to_id", "cannot read branch '\(branch)' in \(displayName)", ref: branch) { lookup }
            }
            if let expectedParent, !hasParent || parentID.objectID != expectedParent {
                throw GitError(.conflict, "branch '\(branch)' moved from \(expectedParent.short) while the change was made", ref: branch)
            }
            var parent: OpaquePointer?
            var baseline: OpaquePointer?
            defer {
                git_tree_free(baseline)
                git_commit_free(parent)
            }
            if hasParent {
                try LibGit2.check("git_commit_lookup", "cannot read the tip of '\(branch)'", ref: branch) {
                    git_commit_lookup(&parent, repo, &parentID)
                }
                try LibGit2.check("git_commit_tree", "cannot read the tree of '\(branch)'", ref: branch) {
                    git_commit_tree(&baseline, parent)
                }
            } else {
                baseline = try Self.emptyTree(repo)
            }

            // Blobs first, then one tree update for all changes.
            var updates: [git_tree_update] = []
            defer { for update in updates { free(UnsafeMutableRawPointer(mutating: update.path)) } }
            for (change, path) in zip(changes, paths) {
                var update = git_tree_update()
                update.path = UnsafePointer(strdup(path))
                switch change {
                case .write(_, let contents):
                    update.action = GIT_TREE_UPDATE_UPSERT
                    update.filemode = GIT_FILEMODE_BLOB
                    update.id = try Self.writeBlob(contents, repo: repo, path: path)
                case .delete:
                    guard hasParent, try Self.entry(at: path, inTree: baseline!) != nil else {
                        throw GitError(.notFound, "cannot delete '\(path)': no such file on branch '\(branch)'", path: path, ref: branch)
                    }
                    update.action = GIT_TREE_UPDATE_REMOVE
                }
                updates.append(update)
            }
            var treeID = git_oid()
            try LibGit2.check("git_tree_create_updated", "cannot build the new tree for '\(branch)'", ref: branch) {
                git_tree_create_updated(&treeID, repo, baseline, updates.count, &updates)
            }
            var tree: OpaquePointer?
            try LibGit2.check("git_tree_lookup", "cannot read the new tree", ref: branch) { git_tree_lookup(&tree, repo, &treeID) }
            defer { git_tree_free(tree) }

            var commitID = git_oid()
            try author.withGitSignature { (authorSignature) throws(GitError) in
                try (committer ?? author).withGitSignature { (committerSignature) throws(GitError) in
                    var parents: [OpaquePointer?] = hasParent ? [parent] : []
                    try LibGit2.check("git_commit_create", "cannot commit onto '\(branch)' in \(displayName) (did it move?)", ref: branch) {
                        git_commit_create(
                            &commitID, repo, refName, authorSignature, committerSignature, nil, text, tree, parents.count, &parents)
                    }
                }
            }
            return commitID.objectID
        }
        if checkedOut, let workingDirectory {
            try updateWorkingTree(changes, paths: paths, workingDirectory: workingDirectory, branch: branch)
        }
        return id
    }

    /// Refuses when the working-tree or index copy of `path` differs from the checked-out commit.
    private static func requireClean(_ path: String, repo: OpaquePointer, repositoryName: String, branch: String) throws(GitError) {
        var flags: UInt32 = 0
        let code = git_status_file(&flags, repo, path)
        if code == GIT_ENOTFOUND.rawValue { return }
        try LibGit2.check("git_status_file", "cannot read the status of '\(path)' in \(repositoryName)", path: path, ref: branch) { code }
        guard flags == GIT_STATUS_CURRENT.rawValue || flags == GIT_STATUS_IGNORED.rawValue else {
            throw GitError(
                .uncommittedChanges,
                "'\(path)' has uncommitted changes in \(repositoryName); commit or stash them first",
                path: path, ref: branch)
        }
    }

    private static func writeBlob(_ contents: Data, repo: OpaquePointer, path: String) throws(GitError) -> git_oid {
        var oid = git_oid()
        let code = contents.withUnsafeBytes { bytes in git_blob_create_from_buffer(&oid, repo, bytes.baseAddress, bytes.count) }
        try LibGit2.check("git_blob_create_from_buffer", "cannot store the contents of '\(path)'", path: path) { code }
        return oid
    }

    private static func emptyTree(_ repo: OpaquePointer) throws(GitError) -> OpaquePointer {
        var builder: OpaquePointer?
        try LibGit2.check("git_treebuilder_new", "cannot build an empty tree") { git_treebuilder_new(&builder, repo, nil) }
        defer { git_treebuilder_free(builder) }
        var oid = git_oid()
        try LibGit2.check("git_treebuilder_write", "cannot write an empty tree") { git_treebuilder_write(&oid, builder) }
        var tree: OpaquePointer?
        try LibGit2.check("git_tree_lookup", "cannot read the empty tree") { git_tree_lookup(&tree, repo, &oid) }
        return tree!
    }

    /// Writes the committed files into the working tree and stages them.
    private func updateWorkingTree(_ changes: [FileChange], paths: [String], workingDirectory: String, branch: String) throws(GitError) {
        let files = FileManager.default
        for (change, path) in zip(changes, paths) {
            let url = URL(fileURLWithPath: workingDirectory).appendingPathComponent(path)
            do {
                switch change {
                case .write(_, let contents):
                    try files.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try contents.write(to: url, options: .atomic)
                case .delete:
                    if files.fileExists(atPath: url.path) { try files.removeItem(at: url) }
                }
            } catch {
                throw GitError(
                    .other, "committed, but cannot update '\(url.path)' in the working tree", path: path, ref: branch,
                    cause: GitError.Underlying(error))
            }
        }
        try withHandle { (repo) throws(GitError) in
            var index: OpaquePointer?
            try LibGit2.check("git_repository_index", "cannot open the index of \(displayName)") { git_repository_index(&index, repo) }
            defer { git_index_free(index) }
            for (change, path) in zip(changes, paths) {
                switch change {
                case .write:
                    try LibGit2.check("git_index_add_bypath", "cannot stage '\(path)'", path: path) { git_index_add_bypath(index, path) }
                case .delete:
                    try LibGit2.check(
                        "git_index_remove_bypath",
                        "cannot unstage "
                            + "'\(path)'", path: path
                    ) { git_index_remove_bypath(index, path) }
                }
            }
            try LibGit2.check("git_index_write", "cannot write the index of \(displayName)") { git_index_write(index) }
        }
    }
}
