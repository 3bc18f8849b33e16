import Foundation
import GitStore
import StagecraftTesting
import Testing

@Suite struct RemoteTests {
    let author = Signature(name: "stagecraft", email: "stagecraft@localhost")

    /// A source repository with two branches, a tag and a note.
    func makeSource() throws -> ScratchRepository {
        let source = try ScratchRepository(label: "source")
        try source.fastImport(count: 50, file: { "environments/env\($0 % 3).yaml" }, contents: { "v: \($0)\n" })
        try source.git(["branch", "feature", "HEAD~10"])
        try source.git(["tag", "v1", "HEAD~5"])
        try source.git(["notes", "--ref", "stagecraft", "add", "-m", "deployed", "HEAD"])
        return source
    }

    func objects(in path: String) throws -> Set<Substring> {
        let output = try ProcessRunner.run("git", ["-C", path, "rev-list", "--all", "--objects"])
        return Set(output.stdout.split(separator: "\n"))
    }

    /// The refs of a repository, as git lists them; in a cache, without the remote's notes as fetched (they are merged
    /// into the cache's own, which are listed).
    func refs(in path: String) throws -> String {
        try ProcessRunner.run("git", ["-C", path, "for-each-ref", "--format=%(objectname) %(refname)"]).stdout
            .split(separator: "\n").filter { !$0.hasSuffix(" " + Repository.fetchedStagecraftNotes) }.map { $0 + "\n" }.joined()
    }

    @Test(arguments: ["path", "file"])
    func fetchIntoABareCacheBringsTheObjectsGitSees(scheme: String) throws {
        let source = try makeSource()
        let caches = try ScratchDirectory()
        let url = scheme == "file" ? "file://\(source.path)" : source.path
        let cache = try Repository.mirror(url, into: caches.appending("cache.git"))
        #expect(cache.isBare)
        #expect(try objects(in: caches.appending("cache.git")) == objects(in: source.path))
        #expect(try refs(in: caches.appending("cache.git")) == refs(in: source.path))
        #expect(try cache.note(for: cache.resolve("main")) == "deployed\n")

        // A second fetch brings only what is new.
        try source.commit(["environments/env0.yaml": "new\n"])
        _ = try Repository.mirror(url, into: caches.appending("cache.git"))
        #expect(try cache.resolve("main").hex == source.gitLine(["rev-parse", "main"]))
    }

    @Test func fetchFromGitDaemonOnLoopback() throws {
        let source = try makeSource()
        let port = try Loopback.freePort()
        let base = URL(fileURLWithPath: source.path).deletingLastPathComponent().path
        let daemon = try BackgroundProcess("git", [
            "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", "--port=\(port)", "--base-path=\(base)", base,
        ])
        defer { daemon.stop() }
        try Loopback.waitForListener(port: port)
        let caches = try ScratchDirectory()
        let name = URL(fileURLWithPath: source.path).lastPathComponent
        _ = try Repository.mirror("git://127.0.0.1:\(port)/\(name)", into: caches.appending("cache.git"))
        #expect(try objects(in: caches.appending("cache.git")) == objects(in: source.path))
        #expect(try refs(in: caches.appending("cache.git")) == refs(in: source.path))
    }

    @Test func unreachableRemotesFailWithTheURL() throws {
        let caches = try ScratchDirectory()
        let port = try Loopback.freePort()
        let error = #expect(throws: GitError.self) {
            _ = try Repository.mirror("git://127.0.0.1:\(port)/nothing", into: caches.appending("cache.git"))
        }
        #expect(error?.code == .remote)
        #expect(error?.message.hasPrefix("cannot fetch from git://127.0.0.1:\(port)/nothing: ") == true)
    }

    @Test func pushesABranchAndTheNotesRefAndReportsNonFastForward() throws {
        let remote = try ScratchRepository(bare: true, label: "remote")
        let local = try ScratchRepository(label: "local")
        try local.commit(["environments/qa.yaml": "v: 1\n"])
        let repository = try Repository.open(at: local.path)
        let id = try repository.commit([.write(path: "environments/qa.yaml", contents: Data("v: 2\n".utf8))],
                                       onBranch: "main", message: "promote", author: author)
        try repository.appendNoteLine("record", to: id, author: author)
        try repository.push(to: remote.path, refspecs: ["refs/heads/main:refs/heads/main", "\(Repository.stagecraftNotes):\(Repository.stagecraftNotes)"])
        #expect(try remote.gitLine(["rev-parse", "main"]) == id.hex)
        #expect(try remote.git(["notes", "--ref", "stagecraft", "show", id.hex]) == "record\n")

        // Someone else pushes first: ours is no longer a fast-forward.
        let other = try ScratchRepository(label: "other")
        try other.git(["pull", "-q", remote.path, "main"])
        try other.commit(["environments/qa.yaml": "v: 3\n"])
        try other.git(["push", "-q", remote.path, "main"])
        try repository.commit([.write(path: "environments/qa.yaml", contents: Data("v: 4\n".utf8))], onBranch: "main", message: "late", author: author)
        let error = #expect(throws: GitError.self) {
            try repository.push(to: remote.path, refspecs: ["refs/heads/main:refs/heads/main"])
        }
        #expect(error?.code == .conflict)
    }

    @Test(.enabled(if: SSHServer.available, "needs OpenSSH's sshd (scripts/setup installs it) and root"))
    func fetchOverSSHWithAKeyAndAPinnedHostKey() throws {
        let source = try makeSource()
        let server = try SSHServer()
        let url = "ssh://root@127.0.0.1:\(server.port)\(source.path)"
        let key = SSHCredentials(username: "root", privateKeyPath: server.clientKey, publicKeyPath: server.clientPublicKey,
                                 hostKeyFingerprint: server.hostKeyFingerprint)
        let caches = try ScratchDirectory()
        _ = try Repository.mirror(url, into: caches.appending("cache.git"), credentials: key)
        #expect(try objects(in: caches.appending("cache.git")) == objects(in: source.path))
        #expect(try refs(in: caches.appending("cache.git")) == refs(in: source.path))

        // Another host key is refused before any credential is sent.
        var pinnedElsewhere = key
        pinnedElsewhere.hostKeyFingerprint = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        let wrongHost = #expect(throws: GitError.self) { _ = try Repository.mirror(url, into: caches.appending("other.git"), credentials: pinnedElsewhere) }
        #expect(wrongHost?.code == .remote)
        #expect(wrongHost?.message == "cannot fetch from \(url): the host key of 127.0.0.1 is \(server.hostKeyFingerprint), expected SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")

        // A key the server does not know is refused, once, with the key named.
        let stranger = try ScratchDirectory()
        try ProcessRunner.run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", stranger.appending("key")])
        let unknown = SSHCredentials(username: "root", privateKeyPath: stranger.appending("key"), publicKeyPath: stranger.appending("key.pub"),
                                     hostKeyFingerprint: server.hostKeyFingerprint)
        let refused = #expect(throws: GitError.self) { _ = try Repository.mirror(url, into: caches.appending("third.git"), credentials: unknown) }
        #expect(refused?.code == .remote)
        #expect(refused?.message.hasPrefix("cannot fetch from \(url): ") == true)
    }
}
