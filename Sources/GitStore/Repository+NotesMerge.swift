internal import CLibGit2
import Foundation

extension Repository {
    /// What ``mergeNotes(from:into:author:)`` did.
    public enum NotesMerge: Equatable, Sendable {
        /// Nothing to take: the other side has nothing this one lacks.
        case upToDate
        /// This side had nothing the other lacks: it now points where the other does.
        case fastForward
        /// Both sides added notes: a merge commit holds them all; `combined` notes were on the same commit on both
        /// sides and are now the union of their lines.
        case merged(combined: Int)
    }

    /// Takes the notes at `theirsRef` (another host's, as fetched) into `notesRef`, losing none: a note only one side
    /// has is kept as it is, and a note both sides wrote on the same commit becomes the union of their lines (this
    /// side's lines in order, then the other's that this side lacks), as `git notes merge -s union` does. When both
    /// sides moved, the result is a commit with both tips as parents, so that either side's ref can be fast-forwarded
    /// to it (a push is accepted).
    public func mergeNotes(from theirsRef: String, into notesRef: String = Repository.stagecraftNotes, author: Signature) throws(GitError)
        -> NotesMerge
    {
        // Under the notes' write lock: a record appended meanwhile is never lost.
        try withWriteLock(creating: [notesRef + ".lock"]) { () throws(GitError) -> NotesMerge in
            guard let theirs = try resolveIfPresent(theirsRef) else { return .upToDate }
            guard let ours = try resolveIfPresent(notesRef) else {
                try setReference(notesRef, to: theirs)
                return .fastForward
            }
            if ours == theirs { return .upToDate }
            if try isAncestor(theirs, of: ours) { return .upToDate }
            if try isAncestor(ours, of: theirs) {
                try setReference(notesRef, to: theirs)
                return .fastForward
            }
            let mine = try allNotes(notesRef: notesRef)
            var merged = mine
            var combined = 0
            for (commit, text) in try allNotes(notesRef: theirsRef) {
                guard let own = mine[commit] else {
                    merged[commit] = text
                    continue
                }
                if own != text {
                    merged[commit] = Self.unionOfLines(own, text)
                    combined += 1
                }
            }
            try commitNotes(
                merged, onto: notesRef, parents: [ours, theirs], author: author,
                message: "Notes merged from \(theirsRef): the union of both sides' lines\n")
            return .merged(combined: combined)
        }
    }

    /// Merges the deployment notes a fetch put under ``fetchedNotesPrefix`` into this repository's own.
    @discardableResult
    public func mergeFetchedNotes() throws(GitError) -> NotesMerge {
        try mergeNotes(from: Self.fetchedStagecraftNotes, author: defaultSignature())
    }

    /// Fetches `url`'s notes beside this repository's own and merges its deployment notes into them.
    @discardableResult
    public func takeNotes(from url: String) throws(GitError) -> NotesMerge {
        try fetch(from: url, refspecs: [Self.notesRefspec])
        return try mergeFetchedNotes()
    }

    /// `ours`' lines, then `theirs`' lines that `ours` lacks, each ending in a newline.
    static func unionOfLines(_ ours: String, _ theirs: String) -> String {
        let own = ours.split(separator: "\n", omittingEmptySubsequences: true)
        let seen = Set(own)
        let added = theirs.split(separator: "\n", omittingEmptySubsequences: true).filter { !seen.contains($0) }
        return (own + added).map { $0 + "\n" }.joined()
    }

    /// Whether `ancestor` is reachable from `commit` (and differs from it).
    public func isAncestor(_ ancestor: ObjectID, of commit: ObjectID) throws(GitError) -> Bool {
        try withHandle { (repo) throws(GitError) -> Bool in
            var descendant = commit.oid
            var base = ancestor.oid
            let code = git_graph_descendant_of(repo, &descendant, &base)
            try LibGit2.check("git_graph_descendant_of", "cannot compare \(commit.short) with \(ancestor.short) in \(displayName)") {
                code < 0 ? code : 0
            }
            return code == 1
        }
    }

    /// Writes `notes` as one notes tree (a blob per annotated commit, named by its id) and commits it onto `notesRef`
    /// with `parents`, the first of which must be `notesRef`'s tip.
    private func commitNotes(
        _ notes: [ObjectID: String], onto notesRef: String, parents parentIDs: [ObjectID], author: Signature, message: String
    ) throws(GitError) {
        try withHandle { (repo) throws(GitError) in
            var builder: OpaquePointer?
            try LibGit2.check("git_treebuilder_new", "cannot build the notes tree") { git_treebuilder_new(&builder, repo, nil) }
            defer { git_treebuilder_free(builder) }
            for (commit, text) in notes {
                var blob = git_oid()
                let bytes = Array(text.utf8)
                try LibGit2.check("git_blob_create_from_buffer", "cannot store the note on \(commit.short)", ref: notesRef) {
                    git_blob_create_from_buffer(&blob, repo, bytes, bytes.count)
                }
                try LibGit2.check("git_treebuilder_insert", "cannot add the note on \(commit.short)", ref: notesRef) {
                    git_treebuilder_insert(nil, builder, commit.hex, &blob, GIT_FILEMODE_BLOB)
                }
            }
            var treeID = git_oid()
            try LibGit2.check("git_treebuilder_write", "cannot write the notes tree", ref: notesRef) {
                git_treebuilder_write(&treeID, builder)
            }
            var tree: OpaquePointer?
            try LibGit2.check("git_tree_lookup", "cannot read the notes tree", ref: notesRef) { git_tree_lookup(&tree, repo, &treeID) }
            defer { git_tree_free(tree) }
            var parents: [OpaquePointer?] = []
            defer { parents.forEach { git_commit_free($0) } }
            for id in parentIDs {
                var oid = id.oid
                var parent: OpaquePointer?
                try LibGit2.check("git_commit_lookup", "cannot read notes commit \(id.short)", ref: notesRef) {
                    git_commit_lookup(&parent, repo, &oid)
                }
                parents.append(parent)
            }
            var commitID = git_oid()
            try author.withGitSignature { (signature) throws(GitError) in
                try LibGit2.check("git_commit_create", "cannot commit the merged notes onto \(notesRef) (did it move?)", ref: notesRef) {
                    git_commit_create(&commitID, repo, notesRef, signature, signature, nil, message, tree, parents.count, &parents)
                }
            }
        }
    }
}
