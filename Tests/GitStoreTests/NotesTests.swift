import Foundation
import GitStore
import StagecraftTesting
import Testing

@Suite struct NotesTests {
    let author = Signature(name: "stagecraft", email: "stagecraft@localhost")

    @Test func notesWrittenHereAreWhatGitNotesShows() throws {
        let scratch = try ScratchRepository()
        let first = try scratch.commit(["environments/dev.yaml": "a"])
        let second = try scratch.commit(["environments/dev.yaml": "b"])
        let repository = try Repository.open(at: scratch.path)
        let firstID = try #require(ObjectID(hex: first)), secondID = try #require(ObjectID(hex: second))

        #expect(try repository.note(for: firstID) == nil)
        #expect(try repository.allNotes().isEmpty)
        try repository.appendNoteLine(#"{"outcome":"succeeded","version":"3f2a9c1e5b7d"}"#, to: firstID, author: author)
        try repository.appendNoteLine(#"{"outcome":"failed","version":"7b21e0d44a10"}"#, to: firstID, author: author)
        try repository.setNote("replaced\n", for: secondID, author: author)

        #expect(try scratch.git(["notes", "--ref", "stagecraft", "show", first])
                == "{\"outcome\":\"succeeded\",\"version\":\"3f2a9c1e5b7d\"}\n{\"outcome\":\"failed\",\"version\":\"7b21e0d44a10\"}\n")
        #expect(try scratch.git(["notes", "--ref", "stagecraft", "show", second]) == "replaced\n")
        #expect(try repository.allNotes() == [firstID: try repository.note(for: firstID)!, secondID: "replaced\n"])
        #expect(try ProcessRunner.run("git", ["-C", scratch.path, "fsck", "--strict"]).status == 0)

        // And notes written by git are read here.
        try scratch.git(["notes", "--ref", "stagecraft", "add", "-f", "-m", "from git", second])
        #expect(try repository.note(for: secondID) == "from git\n")
    }

    /// Two hosts append records to the same and to different commits; merging one's notes into the other's loses
    /// none, and the result is a fast-forward of both sides (so it pushes), as `git` itself sees it.
    @Test func notesFromTwoHostsMergeIntoTheUnionOfTheirLines() throws {
        let origin = try ScratchRepository(label: "origin")
        let shared = try origin.commit(["environments/qa.yaml": "a"])
        let other = try origin.commit(["environments/qa.yaml": "b"])
        let sharedID = try #require(ObjectID(hex: shared)), otherID = try #require(ObjectID(hex: other))
        let here = try Repository.open(at: origin.path)
        try here.appendNoteLine("record-1", to: sharedID, author: author)
        let host = try ScratchRepository(cloning: origin, label: "host")
        try host.git(["fetch", "-q", origin.path, "refs/notes/stagecraft:refs/notes/stagecraft"])
        let there = try Repository.open(at: host.path)

        // Up to date, then both sides write: the same commit gets different lines, and each side a note of its own.
        #expect(try here.mergeNotes(from: "refs/notes/stagecraft", author: author) == .upToDate)
        try here.appendNoteLine("record-2 here", to: sharedID, author: author)
        try there.appendNoteLine("record-2 there", to: sharedID, author: author)
        try there.appendNoteLine("record-3 there", to: otherID, author: author)
        try here.fetch(from: host.path, refspecs: [Repository.notesRefspec])
        #expect(try here.mergeNotes(from: Repository.fetchedStagecraftNotes, author: author) == .merged(combined: 1))

        #expect(try origin.git(["notes", "--ref", "stagecraft", "show", shared]) == "record-1\nrecord-2 here\nrecord-2 there\n")
        #expect(try origin.git(["notes", "--ref", "stagecraft", "show", other]) == "record-3 there\n")
        let parents = try origin.git(["rev-list", "--parents", "-n", "1", "refs/notes/stagecraft"]).split(separator: " ")
        #expect(parents.count == 3, "the merge has both tips as parents: \(parents)")
        #expect(try ProcessRunner.run("git", ["-C", origin.path, "fsck", "--strict"]).status == 0)
        // The other side takes the merge as a fast-forward, and merging again changes nothing.
        try there.fetch(from: origin.path, refspecs: [Repository.notesRefspec])
        #expect(try there.mergeNotes(from: Repository.fetchedStagecraftNotes, author: author) == .fastForward)
        #expect(try there.mergeNotes(from: Repository.fetchedStagecraftNotes, author: author) == .upToDate)
        #expect(try host.git(["notes", "--ref", "stagecraft", "show", shared]) == "record-1\nrecord-2 here\nrecord-2 there\n")
        // A side with no notes yet takes the other's as they are.
        let fresh = try ScratchRepository(cloning: origin, label: "fresh")
        let freshRepository = try Repository.open(at: fresh.path)
        try freshRepository.fetch(from: origin.path, refspecs: [Repository.notesRefspec])
        #expect(try freshRepository.mergeNotes(from: Repository.fetchedStagecraftNotes, author: author) == .fastForward)
        #expect(try fresh.git(["notes", "--ref", "stagecraft", "show", other]) == "record-3 there\n")
    }
}
