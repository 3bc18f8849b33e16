import Foundation
import GitStore
import StagecraftTesting
import Testing

@Suite struct CommitTests {
    let author = Signature(name: "Stagecraft", email: "stagecraft@example.com", date: Date(timeIntervalSince1970: 1_750_000_000))

    @Test func aCommitMadeWithoutCheckoutPassesFsckAndShowsInGitLogWithItsTrailers() throws {
        let scratch = try ScratchRepository()
        try scratch.commit(["environments/qa.yaml": "version: aaa\n", "other.txt": "keep\n"], message: "init")
        let repository = try Repository.open(at: scratch.path)
        let message = Trailers.append(
            [Trailer(key: "Stagecraft-Model", value: "breast-cancer"), Trailer(key: "Stagecraft-Version", value: "3f2a9c1e5b7d")],
            to: "Promote breast-cancer to qa")
        let id = try repository.commit(
            [.write(path: "environments/qa.yaml", contents: Data("version: bbb\n".utf8)),
             .write(path: "data/new/file.csv", contents: Data("a,b\n1,2\n".utf8))],
            onBranch: "main", message: message, author: author)

        #expect(try scratch.gitLine(["rev-parse", "HEAD"]) == id.hex)
        let fsck = try ProcessRunner.run("git", ["-C", scratch.path, "fsck", "--strict", "--no-dangling"])
        #expect(fsck.status == 0, "\(fsck.stderr)")
        #expect(try scratch.gitLine(["log", "-1", "--format=%s|%an|%ae|%at"]) == "Promote breast-cancer to qa|Stagecraft|stagecraft@example.com|1750000000")
        #expect(try scratch.gitLine(["log", "-1", "--format=%(trailers:key=Stagecraft-Version,valueonly)"]) == "3f2a9c1e5b7d")
        #expect(try scratch.gitLine(["show", "HEAD:environments/qa.yaml"]) == "version: bbb")
        // The working tree and the index follow: nothing left to commit.
        #expect(try scratch.git(["status", "--porcelain"]) == "")
        #expect(try scratch.directory.read("environments/qa.yaml") == "version: bbb\n")
        #expect(try scratch.directory.read("data/new/file.csv") == "a,b\n1,2\n")

        let read = try repository.commit(id)
        #expect(read.trailers == [Trailer(key: "Stagecraft-Model", value: "breast-cancer"), Trailer(key: "Stagecraft-Version", value: "3f2a9c1e5b7d")])
        #expect(read.trailer("stagecraft-model") == "breast-cancer")
        #expect(read.summary == "Promote breast-cancer to qa")
        #expect(read.author == author)
        #expect(read.parents == [try repository.resolve("HEAD~1")])
    }

    @Test func refusesWhenTheFileHasUncommittedChangesAndWritesNothing() throws {
        let scratch = try ScratchRepository()
        try scratch.commit(["environments/qa.yaml": "version: aaa\n"])
        try scratch.directory.write("version: local edit\n", to: "environments/qa.yaml")
        let repository = try Repository.open(at: scratch.path)
        let before = try repository.resolve("HEAD")

        let error = #expect(throws: GitError.self) {
            try repository.commit([.write(path: "environments/qa.yaml", contents: Data("version: bbb\n".utf8))],
                                  onBranch: "main", message: "promote", author: author)
        }
        #expect(error?.code == .uncommittedChanges)
        #expect(error?.message == "'environments/qa.yaml' has uncommitted changes in \(scratch.path); commit or stash them first")
        #expect(try repository.resolve("HEAD") == before)
        #expect(try scratch.directory.read("environments/qa.yaml") == "version: local edit\n")

        // A staged-but-uncommitted change is refused too.
        try scratch.git(["add", "environments/qa.yaml"])
        #expect(throws: GitError.self) {
            try repository.commit([.write(path: "environments/qa.yaml", contents: Data("x\n".utf8))],
                                  onBranch: "main", message: "promote", author: author)
        }
    }

    @Test func anotherBranchIsCommittedWithoutTouchingTheWorkingTree() throws {
        let scratch = try ScratchRepository()
        let base = try scratch.commit(["environments/qa.yaml": "version: aaa\n"])
        try scratch.git(["branch", "promote/qa", base])
        let repository = try Repository.open(at: scratch.path)
        let id = try repository.commit([.write(path: "environments/qa.yaml", contents: Data("version: ccc\n".utf8))],
                                       onBranch: "promote/qa", message: "promote", author: author)
        #expect(try scratch.gitLine(["rev-parse", "promote/qa"]) == id.hex)
        #expect(try scratch.gitLine(["rev-parse", "main"]) == base)
        #expect(try scratch.directory.read("environments/qa.yaml") == "version: aaa\n")
        #expect(try scratch.git(["status", "--porcelain"]) == "")
    }

    @Test func deletesFilesAndStartsBranchesInEmptyAndBareRepositories() throws {
        let scratch = try ScratchRepository()
        let repository = try Repository.open(at: scratch.path)
        let first = try repository.commit([.write(path: "a.txt", contents: Data("a".utf8)), .write(path: "b/c.txt", contents: Data("c".utf8))],
                                          onBranch: "main", message: "first", author: author)
        #expect(try repository.commit(first).parents.isEmpty)
        #expect(try scratch.git(["status", "--porcelain"]) == "")
        try repository.commit([.delete(path: "b/c.txt")], onBranch: "main", message: "delete", author: author)
        #expect(try scratch.git(["ls-files"]) == "a.txt\n")
        #expect(!FileManager.default.fileExists(atPath: scratch.directory.appending("b/c.txt")))
        #expect(try scratch.git(["status", "--porcelain"]) == "")

        let missing = #expect(throws: GitError.self) {
            try repository.commit([.delete(path: "nope.txt")], onBranch: "main", message: "x", author: author)
        }
        #expect(missing?.message == "cannot delete 'nope.txt': no such file on branch 'main'")

        let bareScratch = try ScratchRepository(bare: true)
        let bare = try Repository.open(at: bareScratch.path)
        let id = try bare.commit([.write(path: "x.txt", contents: Data("x\n".utf8))], onBranch: "main", message: "bare", author: author)
        #expect(try bareScratch.gitLine(["rev-parse", "main"]) == id.hex)
        #expect(try ProcessRunner.run("git", ["-C", bareScratch.path, "fsck", "--strict"]).status == 0)
    }

    @Test func trailersParseAsGitParsesThem() {
        let message = "Subject\n\nBody text.\n\nStagecraft-Model: penguins\nStagecraft-Evidence: auc=0.99 at 2026-11-01T00:00:00Z\n"
        #expect(Trailers.parse(message) == [
            Trailer(key: "Stagecraft-Model", value: "penguins"),
            Trailer(key: "Stagecraft-Evidence", value: "auc=0.99 at 2026-11-01T00:00:00Z"),
        ])
        #expect(Trailers.parse("Only a subject\n").isEmpty)
    }
}
