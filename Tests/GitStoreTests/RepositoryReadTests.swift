import Foundation
import GitStore
import StagecraftTesting
import Testing

@Suite struct RepositoryReadTests {
    @Test func readsFilesAndFoldersAtACommitWithoutCheckout() throws {
        let scratch = try ScratchRepository()
        let first = try scratch.commit(["manifests/a.yaml": "a: 1\n", "README.md": "hi\n"], message: "first")
        try scratch.commit(["manifests/a.yaml": "a: 2\n", "manifests/b.yaml": "b: 1\n"], message: "second")
        let repository = try Repository.open(at: scratch.path)

        let firstID = try repository.resolve(String(first.prefix(7)))
        #expect(firstID.hex == first)
        #expect(try repository.resolve("main~1") == firstID)
        let head = try repository.resolve("HEAD")
        #expect(String(decoding: try repository.file(at: "manifests/a.yaml", in: firstID), as: UTF8.self) == "a: 1\n")
        #expect(String(decoding: try repository.file(at: "/manifests//a.yaml", in: head), as: UTF8.self) == "a: 2\n")
        #expect(try repository.fileIfPresent(at: "manifests/b.yaml", in: firstID) == nil)
        #expect(try repository.fileExists(at: "manifests/a.yaml", in: firstID))
        #expect(try !repository.fileExists(at: "manifests/b.yaml", in: firstID))
        #expect(try !repository.fileExists(at: "manifests", in: firstID))  // a folder is not a file

        let listing = try #require(try repository.directory(at: "manifests", in: head))
        #expect(listing.map(\.name) == ["a.yaml", "b.yaml"])
        #expect(listing.allSatisfy { $0.kind == .file })
        let root = try #require(try repository.directory(at: "", in: head))
        #expect(root.map(\.name) == ["README.md", "manifests"])
        #expect(root.last?.kind == .directory)
        #expect(try repository.directory(at: "nope", in: head) == nil)
        #expect(try repository.currentBranch() == "main")
        #expect(try repository.branchTip("main") == head)
        #expect(try repository.branchTip("other") == nil)
    }

    @Test func errorsNameThePathTheRefAndLibgit2sMessage() throws {
        let scratch = try ScratchRepository()
        try scratch.commit(["a.txt": "x"])
        let repository = try Repository.open(at: scratch.path)
        let head = try repository.resolve("main")

        let missing = #expect(throws: GitError.self) { try repository.file(at: "environments/dev.yaml", in: head) }
        #expect(missing?.code == .notFound)
        #expect(missing?.message == "no file 'environments/dev.yaml' at commit \(head.short) in \(scratch.path)")
        #expect(missing?.path == "environments/dev.yaml")
        #expect(missing?.ref == head.hex)

        let badRef = #expect(throws: GitError.self) { try repository.resolve("no-such-branch") }
        #expect(badRef?.code == .notFound)
        #expect(badRef?.message == "cannot resolve 'no-such-branch' to a commit in \(scratch.path)")
        #expect(badRef?.ref == "no-such-branch")
        #expect(badRef.map { "\($0)" }?.contains("(libgit2: revspec 'no-such-branch' not found)") == true)

        let folder = #expect(throws: GitError.self) { try repository.file(at: "", in: head) }
        #expect(folder?.code == .invalidArgument)
        let dotdot = #expect(throws: GitError.self) { try repository.file(at: "../etc/passwd", in: head) }
        #expect(dotdot?.message == "path '../etc/passwd' must not contain '.' or '..' parts")

        let noRepo = try ScratchDirectory()
        let notARepository = #expect(throws: GitError.self) { try Repository.open(at: noRepo.path) }
        #expect(notARepository?.code == .notFound)
        #expect(notARepository?.message == "no git repository at \(noRepo.path)")
    }

    @Test func opensAndCreatesBareRepositories() throws {
        let scratch = try ScratchDirectory()
        let bare = try Repository.create(at: scratch.appending("cache.git"), bare: true)
        #expect(bare.isBare)
        #expect(bare.workingDirectory == nil)
        #expect(try ProcessRunner.run("git", ["-C", scratch.appending("cache.git"), "rev-parse", "--is-bare-repository"]).stdout == "true\n")
        let reopened = try Repository.open(at: scratch.appending("cache.git"))
        #expect(reopened.isBare)
        #expect(try reopened.currentBranch() == "main")

        let work = try Repository.create(at: scratch.appending("work"))
        #expect(!work.isBare)
        #expect(work.workingDirectory == scratch.appending("work"))
    }
}
