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
}
