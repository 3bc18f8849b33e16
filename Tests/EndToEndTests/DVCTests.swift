import Foundation
import StagecraftTesting
import Testing

/// Data tracked by DVC, with `dvc` itself: the pointer is committed, the bytes are in a DVC remote (a folder, then
/// S3); build and reconcile follow the pointer on machines that never had the file, and a damaged remote copy is
/// refused with the file, the expected and the actual hash.
@Suite(.serialized) struct DVCTests {
    static var dvc: String { Fixtures.packageRoot + "/.venv-dvc/bin/dvc" }
    static let missing = "dvc is missing: run scripts/setup --for-tests (scripts/test does; it makes .venv-dvc)"

    static func run(_ scratch: ScratchRepository, _ arguments: [String], environment: [String: String] = [:]) throws {
        let output = try ProcessRunner.run(dvc, arguments, in: scratch.path, environment: environment)
        guard output.status == 0 else { throw ProcessFailure(command: "dvc \(arguments.joined(separator: " "))", output: output) }
    }

    /// `dvc init`, a folder as the default remote, `dvc add` of `path`, `dvc push`; penguins trains on `train`; one commit.
    static func track(_ path: String, as train: String, in scratch: ScratchRepository, remote: ScratchDirectory) throws {
        try run(scratch, ["init", "-q"])
        try run(scratch, ["remote", "add", "-d", "storage", remote.path])
        try run(scratch, ["add", "-q", path])
        try run(scratch, ["push", "-q"])
        let manifest = try scratch.directory.read("manifests/penguins.yaml")
            .replacingOccurrences(of: "train: data/penguins/train.csv", with: "train: \(train)")
        try scratch.directory.write(manifest, to: "manifests/penguins.yaml")
        try scratch.git(["add", "-A"])
        try scratch.git(["commit", "-q", "-m", "penguins' training data in DVC (\(path))"])
    }

    @Test func buildAndReconcileFollowThePointerAndRefuseADamagedCopy() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.dvc), S3Server.available else {
            Issue.record(Comment(rawValue: Self.missing))
            return
        }
        let scratch = try ScratchRepository.example()
        try scratch.useFreePorts()
        defer { scratch.stopServers() }
        let remote = try ScratchDirectory("dvc-remote")
        // The penguins' training rows as a file DVC tracks.
        let rows = try String(contentsOfFile: Fixtures.packageRoot + "/data/penguins/train.csv", encoding: .utf8)
        try scratch.directory.write(rows, to: "data/big.csv")
        try Self.track("data/big.csv", as: "data/big.csv", in: scratch, remote: remote)
        #expect(try scratch.git(["ls-files", "data/big.csv", "data/big.csv.dvc"]) == "data/big.csv.dvc\n", "the data itself is in git")
        #expect(try scratch.stagecraft(["validate"]).status == 0)

        // A machine that never had the file builds from the DVC remote: the same digest, the file's sha256.
        let first = try scratch.stagecraft(["build", "penguins", "--output", "json"])
        #expect(first.status == 0, "\(first.stderr)")
        let digest = try #require((GitOpsLoopTests.json(first.stdout) as? [String: Any])?["digest"] as? String)
        let clone = try ScratchRepository(cloning: scratch)
        #expect(!FileManager.default.fileExists(atPath: clone.directory.appending("data/big.csv")))
        let second = try clone.stagecraft(["build", "penguins", "--output", "json"])
        #expect(second.status == 0, "\(second.stderr)")
        #expect((GitOpsLoopTests.json(second.stdout) as? [String: Any])?["digest"] as? String == digest)
        let info = try #require(GitOpsLoopTests.json(try clone.directory.read(".stagecraft/artifacts/\(digest)/build.json")) as? [String: Any])
        #expect((info["data"] as? [String: String])?["data/big.csv"] == (try SharedStoresTests.sha256(scratch.directory.appending("data/big.csv"))))
        let reconcile = try clone.stagecraft(["reconcile", "--env", "dev"])
        #expect(reconcile.status == 0, "\(reconcile.stdout)\(reconcile.stderr)")
        clone.stopServers()

        // A damaged copy in the remote: refused, naming the file and both hashes; nothing is deployed.
        let md5 = try #require(try scratch.directory.read("data/big.csv.dvc").components(separatedBy: "md5: ").dropFirst().first?.prefix(32))
        let object = remote.appending("files/md5/\(md5.prefix(2))/\(md5.dropFirst(2))")
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: object)
        try Data(rows.replacingOccurrences(of: "Adelie", with: "Gentoo").utf8).write(to: URL(fileURLWithPath: object))
        let third = try ScratchRepository(cloning: scratch)
        defer { third.stopServers() }
        let refused = try third.stagecraft(["reconcile", "--env", "dev"])
        #expect(refused.status == 1)
        let said = refused.stdout + refused.stderr
        #expect(said.contains("data/big.csv") && said.contains("expected md5 \(md5)") && said.contains("has md5 "), "\(said)")
        #expect(try third.stagecraft(["status", "--env", "dev", "--output", "json"]).stdout.contains("\"serving\" : null")
            || !FileManager.default.fileExists(atPath: third.directory.appending(".stagecraft/artifacts/\(digest)")))

        // The same file pushed to an S3 remote (moto), the default from the next commit on: a new machine reads it there.
        let s3 = try S3Server()
        defer { s3.stop() }
        try s3.createBucket("dvc-store")
        try Self.run(scratch, ["remote", "add", "s3store", "s3://dvc-store/penguins"])
        try Self.run(scratch, ["remote", "modify", "s3store", "endpointurl", s3.endpoint])
        try Self.run(scratch, ["push", "-q", "-r", "s3store"], environment: s3.environment)
        try Self.run(scratch, ["remote", "default", "s3store"])
        try scratch.git(["commit", "-q", "-am", "DVC data in S3"])
        let fourth = try ScratchRepository(cloning: scratch)
        fourth.environment = s3.environment
        let fromS3 = try fourth.stagecraft(["build", "penguins", "--output", "json"])
        #expect(fromS3.status == 0, "\(fromS3.stderr)")
        #expect((GitOpsLoopTests.json(fromS3.stdout) as? [String: Any])?["digest"] as? String == digest)
    }

    @Test func aFileInsideATrackedFolderIsFoundThroughTheFoldersListing() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.dvc) else {
            Issue.record(Comment(rawValue: Self.missing))
            return
        }
        let scratch = try ScratchRepository.example()
        let remote = try ScratchDirectory("dvc-remote")
        let rows = try String(contentsOfFile: Fixtures.packageRoot + "/data/penguins/train.csv", encoding: .utf8)
        try scratch.directory.write(rows, to: "data/tracked/penguins/train.csv")
        try scratch.directory.write("a,b\n1,2\n", to: "data/tracked/other.csv")
        try Self.track("data/tracked", as: "data/tracked/penguins/train.csv", in: scratch, remote: remote)
        #expect(try scratch.directory.read("data/tracked.dvc").contains(".dir"))
        let clone = try ScratchRepository(cloning: scratch)
        #expect(try clone.stagecraft(["validate"]).status == 0)
        let built = try clone.stagecraft(["build", "penguins", "--output", "json"])
        #expect(built.status == 0, "\(built.stderr)")
        let digest = try #require((GitOpsLoopTests.json(built.stdout) as? [String: Any])?["digest"] as? String)
        let info = try #require(GitOpsLoopTests.json(try clone.directory.read(".stagecraft/artifacts/\(digest)/build.json")) as? [String: Any])
        let sha = try SharedStoresTests.sha256(scratch.directory.appending("data/tracked/penguins/train.csv"))
        #expect((info["data"] as? [String: String])?["data/tracked/penguins/train.csv"] == sha)
    }
}
