import Foundation
internal import CLibGit2

extension Repository {
    /// The notes ref where Stagecraft records deployments.
    public static let stagecraftNotes = "refs/notes/stagecraft"

    /// The note attached to `commit` under `notesRef`, or nil when there is none.
    public func note(for commit: ObjectID, notesRef: String = Repository.stagecraftNotes) throws(GitError) -> String? {
        try withHandle { (repo) throws(GitError) -> String? in
            var oid = commit.oid
            var note: OpaquePointer?
            let code = git_note_read(&note, repo, notesRef, &oid)
            if code == GIT_ENOTFOUND.rawValue { return nil }
            try LibGit2.check("git_note_read", "cannot read the note on \(commit.short) in \(notesRef)", ref: notesRef) { code }
            defer { git_note_free(note) }
            return String(cString: git_note_message(note))
        }
    }

    /// Attaches `text` to `commit` under `notesRef`, replacing any note already there.
    public func setNote(
        _ text: String, for commit: ObjectID, author: Signature, notesRef: String = Repository.stagecraftNotes
    ) throws(GitError) {
        try withHandle { (repo) throws(GitError) in
            try author.withGitSignature { (signature) throws(GitError) in
                var target = commit.oid
                var noteID = git_oid()
                try LibGit2.check("git_note_create", "cannot write the note on \(commit.short) in \(notesRef)", ref: notesRef) {
                    git_note_create(&noteID, repo, notesRef, signature, signature, &target, text, 1)
                }
            }
        }
    }

    /// Adds `line` (one record, without a newline) at the end of the note on `commit`.
    public func appendNoteLine(
        _ line: String, to commit: ObjectID, author: Signature, notesRef: String = Repository.stagecraftNotes
    ) throws(GitError) {
        // Read and written under the write lock: two processes appending at once both keep their line.
        try withWriteLock(creating: [notesRef + ".lock"]) { () throws(GitError) in
            var text = try note(for: commit, notesRef: notesRef) ?? ""
            if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
            try setNote(text + line + "\n", for: commit, author: author, notesRef: notesRef)
        }
    }

    /// Every note under `notesRef`, keyed by the commit it annotates; empty when the ref does not exist.
    public func allNotes(notesRef: String = Repository.stagecraftNotes) throws(GitError) -> [ObjectID: String] {
        try withHandle { (repo) throws(GitError) -> [ObjectID: String] in
            var iterator: OpaquePointer?
            let code = git_note_iterator_new(&iterator, repo, notesRef)
            if code == GIT_ENOTFOUND.rawValue { return [:] }
            try LibGit2.check("git_note_iterator_new", "cannot list the notes in \(notesRef)", ref: notesRef) { code }
            defer { git_note_iterator_free(iterator) }
            var notes: [ObjectID: String] = [:]
            var blobID = git_oid()
            var annotated = git_oid()
            while git_note_next(&blobID, &annotated, iterator) == 0 {
                var blob: OpaquePointer?
                try LibGit2.check("git_blob_lookup", "cannot read a note in "
                    + "\(notesRef)", ref: notesRef) { git_blob_lookup(&blob, repo, &blobID) }
                defer { git_blob_free(blob) }
                let size = Int(git_blob_rawsize(blob))
                let data = size > 0 ? Data(bytes: git_blob_rawcontent(blob), count: size) : Data()
                notes[annotated.objectID] = String(decoding: data, as: UTF8.self)
            }
            return notes
        }
    }
}
