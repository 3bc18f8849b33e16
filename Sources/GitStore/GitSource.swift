public import Foundation

/// What the reconcile engine reads from and writes to git: files at a commit, refs, history, commit messages, the
/// deployment notes and commits on a branch. ``Repository`` implements it over libgit2; the engine's unit tests use
/// an in-memory one.
public protocol GitSource: AnyObject, Sendable {
    /// The commit a revision (`HEAD`, a branch, a tag, a hex id) names.
    func resolve(_ revision: String) throws(GitError) -> ObjectID
    /// The bytes of the file at `path` in `commit`, or nil when there is no such file.
    func fileIfPresent(at path: String, in commit: ObjectID) throws(GitError) -> Data?
    /// True when there is a file at `path` in `commit` (without reading it).
    func fileExists(at path: String, in commit: ObjectID) throws(GitError) -> Bool
    /// The entries of the folder at `path` in `commit` (empty path: the root), or nil when there is no such folder.
    func directory(at path: String, in commit: ObjectID) throws(GitError) -> [TreeEntry]?
    /// The commits reachable from `start` that changed `path`, newest first.
    func history(of path: String, from start: ObjectID, limit: Int?) throws(GitError) -> [ObjectID]
    /// The commit with this id.
    func commit(_ id: ObjectID) throws(GitError) -> Commit
    /// The tip of `branch`, or nil when there is no such branch.
    func branchTip(_ branch: String) throws(GitError) -> ObjectID?
    /// The note on `commit` under `notesRef`, or nil.
    func note(for commit: ObjectID, notesRef: String) throws(GitError) -> String?
    /// Adds one line at the end of the note on `commit`.
    func appendNoteLine(_ line: String, to commit: ObjectID, author: Signature, notesRef: String) throws(GitError)
    /// Every note under `notesRef`, by the commit it annotates.
    func allNotes(notesRef: String) throws(GitError) -> [ObjectID: String]
    /// Commits `changes` on `branch`; with `parent`, a branch that has moved since is a ``GitError/Code/conflict``.
    func commitChanges(
        _ changes: [FileChange], onBranch branch: String, message: String, author: Signature, parent: ObjectID?
    ) throws(GitError) -> ObjectID
}

extension Repository: GitSource {
    public func commitChanges(
        _ changes: [FileChange], onBranch branch: String, message: String, author: Signature, parent: ObjectID?
    ) throws(GitError) -> ObjectID {
        try commit(changes, onBranch: branch, message: message, author: author, parent: parent)
    }
}
