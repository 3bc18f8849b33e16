import Foundation
import StagecraftTesting
import Testing

/// `artifacts: s3://…` and `stateStore: postgres://…`: the README's walkthrough on shared stores (a real S3-compatible
/// server and a real PostgreSQL), checked with boto3 and psql; clones of one repository acting as machines that share
/// them.
@Suite(.serialized) struct SharedStoresTests {
    /// Points the example's settings at `s3` (and `postgres` when given), by a commit.
    static func useSharedStores(_ scratch: ScratchRepository, s3: S3Server, postgres: PostgresServer? = nil) throws {
        var settings = try scratch.directory.read("stagecraft.yaml")
            .replacingOccurrences(
                of: "artifacts: .stagecraft/artifacts  # built model versions, by digest",
                with: "artifacts: s3://team-models/stagecraft\n  s3: {endpoint: \"\(s3.endpoint)\", pathStyle: true}")
        if let postgres {
            settings = settings.replacingOccurrences(
                of: "stateStore: .stagecraft/state.db", with: "stateStore: \(postgres.url)?sslmode=disable")
        }
        #expect(settings.contains("s3://team-models/stagecraft"))
        try scratch.commit(["stagecraft.yaml": settings], message: "shared stores")
        scratch.environment = s3.environment
    }

    /// sha256 of every object under `stagecraft/`, by key, as boto3 reads them.
    static func remoteObjects(_ s3: S3Server) throws -> [String: String] {
        let text = try s3.boto3(
            """
            for o in s3.list_objects_v2(Bucket='team-models', Prefix='stagecraft/').get('Contents', []):
                body = s3.get_object(Bucket='team-models', Key=o['Key'])['Body'].read()
                print(o['Key'], hashlib.sha256(body).hexdigest())
            """)
        return Dictionary(uniqueKeysWithValues: text.split(separator: "\n").map {
            let parts = $0.split(separator: " ")
            return (String(parts[0]), String(parts[1]))
        })
    }

    static func sha256(_ path: String) throws -> String {
        try ProcessRunner.run("sha256sum", [path]).stdout.split(separator: " ")[0].description
    }

    @Test func theWalkthroughOnSharedStoresAndASecondMachine() throws {
        guard S3Server.available else { Issue.record(Comment(rawValue: S3Server.missing)); return }
        let s3 = try S3Server()
        defer { s3.stop() }
        try s3.createBucket("team-models")
        let postgres = try PostgresServer()
        let first = try ScratchRepository.example()
        let ports = try first.useFreePorts()
        defer { first.stopServers() }
        try Self.useSharedStores(first, s3: s3, postgres: postgres)
        // (The test server trusts local connections: this password is never needed, and must never be written.)
        let pgPassword = "pg-secret-\(UUID().uuidString.prefix(8))"
        first.environment["PGPASSWORD"] = pgPassword

        try GitOpsLoopTests.walkthrough(first, ports: ports) { _ = try postgres.psql("TRUNCATE deployment_record") }

        // No secret reached git (any object, the notes), the records, or a file under .stagecraft/ (logs included).
        let secrets = [S3Server.credentials["AWS_SECRET_ACCESS_KEY"]!, pgPassword]
        let history = try first.git(["log", "--all", "-p", "--format=%B"]) + first.git(["notes", "--ref", "stagecraft", "list"])
            + (try first.stagecraft(["history", "--output", "json"]).stdout)
            + (try postgres.psql("SELECT string_agg(t::text, ' ') FROM deployment_record t"))
        let files = FileManager.default.enumerator(atPath: first.directory.appending(".stagecraft"))?.allObjects as? [String] ?? []
        #expect(files.contains { $0.hasSuffix(".log") }, "no server log to look into")
        for secret in secrets {
            #expect(!history.contains(secret), "a secret is in git or the records")
            for file in files {
                let data = FileManager.default.contents(atPath: first.directory.appending(".stagecraft/\(file)")) ?? Data()
                #expect(data.range(of: Data(secret.utf8)) == nil, "a secret is in .stagecraft/\(file)")
            }
        }

        // Every version built is in S3, byte for byte what the local cache holds, build.json with the others.
        #expect(!FileManager.default.fileExists(atPath: first.directory.appending(".stagecraft/artifacts")))
        let cache = first.directory.appending(".stagecraft/cache/artifacts")
        let cached = try FileManager.default.contentsOfDirectory(atPath: cache).filter { $0.count == 64 }
        #expect(cached.count == 3, "breast-cancer twice and penguins once: \(cached)")
        let remote = try Self.remoteObjects(s3)
        #expect(remote.count == cached.count * 3)
        for digest in cached {
            for file in ["model.json", "metrics.json", "build.json"] {
                #expect(remote["stagecraft/\(digest)/\(file)"] == (try Self.sha256("\(cache)/\(digest)/\(file)")), "\(digest)/\(file)")
            }
        }
        let builds = try postgres.psql("SELECT count(*) FROM build")
        #expect(builds == "3")

        // A second machine: a clone, nothing local. Its qa reconcile serves what qa pins, built by the first, unbuilt.
        first.stopServers()
        let second = try ScratchRepository(cloning: first)
        let qa = try second.stagecraft(["reconcile", "--env", "qa"])
        #expect(qa.status == 0, "\(qa.stdout)\(qa.stderr)")
        #expect(try postgres.psql("SELECT count(*) FROM build") == builds, "the second machine built again")
        let pinned = try second.directory.read("environments/qa.yaml").components(separatedBy: "\n")
            .first { $0.hasPrefix("      version:") }?.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)
        let served = try GitOpsLoopTests.curlVersion(port: ports["qa"]!).version
        let pin = try #require(pinned)
        #expect(served?.hasPrefix(pin) == true, "\(served ?? "nothing") serves, \(pin) is pinned")
        #expect(FileManager.default.fileExists(atPath: second.directory.appending(".stagecraft/cache/artifacts/\(served ?? "")/model.json")))
        second.stopServers()
    }

    @Test func twoMachinesBuildingOneVersionAtOnceAgreeAndACorruptCopyIsRefused() throws {
        guard S3Server.available else { Issue.record(Comment(rawValue: S3Server.missing)); return }
        let s3 = try S3Server()
        defer { s3.stop() }
        try s3.createBucket("team-models")
        let first = try ScratchRepository.example()
        try first.useFreePorts()
        try Self.useSharedStores(first, s3: s3)
        let second = try ScratchRepository(cloning: first)
        defer { first.stopServers(); second.stopServers() }

        // Both build penguins at the same moment.
        let outputs = ConcurrentResults()
        DispatchQueue.concurrentPerform(iterations: 2) { index in
            outputs.set(index, try? [first, second][index].stagecraft(["build", "penguins", "--output", "json"]))
        }
        for index in 0..<2 { #expect(outputs.get(index)?.status == 0, "\(outputs.get(index)?.stderr ?? "no output")") }
        let remote = try Self.remoteObjects(s3)
        let builds = remote.keys.filter { $0.hasSuffix("/build.json") }
        #expect(builds.count == 1)
        let digest = try #require(builds.first?.split(separator: "/")[1].description)
        // One consistent artifact: both caches hold exactly what S3 holds.
        for machine in [first, second] {
            for file in ["model.json", "metrics.json", "build.json"] {
                let local = machine.directory.appending(".stagecraft/cache/artifacts/\(digest)/\(file)")
                #expect(remote["stagecraft/\(digest)/\(file)"] == (try Self.sha256(local)), "\(file)")
            }
        }

        // A copy damaged in S3 is refused by a third machine, naming the file and both hashes; nothing is deployed.
        try s3.boto3("s3.put_object(Bucket='team-models', Key=sys.argv[1], Body=b'{}')", arguments: ["stagecraft/\(digest)/model.json"])
        let third = try ScratchRepository(cloning: first)
        defer { third.stopServers() }
        let dev = try third.stagecraft(["reconcile", "--env", "dev"])
        #expect(dev.status == 1)
        let said = dev.stdout + dev.stderr
        #expect(said.contains("model.json of \(digest.prefix(12)) has sha256 "), "\(said)")
        #expect(said.contains(remote["stagecraft/\(digest)/model.json"]!), "the expected hash is named: \(said)")
        for secret in S3Server.credentials.values where secret.count > 12 { #expect(!said.contains(secret)) }
        #expect(!FileManager.default.fileExists(atPath: third.directory.appending(".stagecraft/cache/artifacts/\(digest)")))
    }
}

extension SharedStoresTests {
    /// Runs `arguments` in `scratch` on a thread of its own, paused 2 s at `failpoint`; `during` runs meanwhile (about
    /// a second in). Returns what the reconcile printed and its exit status.
    static func interrupted(
        _ scratch: ScratchRepository, _ arguments: [String], at failpoint: String, during: () throws -> Void
    ) throws -> ProcessOutput? {
        let result = ConcurrentResults()
        let done = DispatchSemaphore(value: 0)
        Thread {
            result.set(0, try? scratch.stagecraft(arguments, environment: ["STAGECRAFT_FAILPOINT": "\(failpoint):pause"]))
            done.signal()
        }.start()
        Thread.sleep(forTimeInterval: 1)
        try during()
        done.wait()
        return result.get(0)
    }

    /// Every record once, none left in progress, the notes holding as many as the store.
    static func expectRecordsWhole(_ scratch: ScratchRepository, _ postgres: PostgresServer) throws {
        #expect(try postgres.psql("SELECT count(*) = count(DISTINCT id) FROM deployment_record") == "t")
        #expect(try postgres.psql("SELECT count(*) FROM deployment_record WHERE outcome = 'in-progress'") == "0")
        let noted = try scratch.git(["notes", "--ref", "stagecraft", "list"]).split(separator: "\n").map {
            try scratch.git(["notes", "--ref", "stagecraft", "show", String($0.split(separator: " ")[1])])
        }.joined()
        let ids = try postgres.psql("SELECT id FROM deployment_record").split(separator: "\n")
        for id in ids { #expect(noted.contains(id), "record \(id) is not in the notes") }
    }

    @Test func s3StoppedOrPostgreSQLRestartedMidReconcileFailsCleanlyAndTheNextConverges() throws {
        guard S3Server.available else { Issue.record(Comment(rawValue: S3Server.missing)); return }
        let s3 = try S3Server()
        defer { s3.stop() }
        try s3.createBucket("team-models")
        let postgres = try PostgresServer()
        let scratch = try ScratchRepository.example()
        let ports = try scratch.useFreePorts()
        defer { scratch.stopServers() }
        try Self.useSharedStores(scratch, s3: s3, postgres: postgres)
        #expect(try scratch.stagecraft(["reconcile", "--env", "dev"]).status == 0)
        let v1 = try #require(try GitOpsLoopTests.curlVersion(port: ports["dev"]!).version)
        /// What the state store records as serving `model` in dev.
        func serving(_ model: String) throws -> String {
            try postgres.psql("SELECT version FROM deployment WHERE environment = 'dev' AND model = '\(model)'")
        }
        /// The server's metadata of `model` (its loaded versions): it answers.
        func metadata(_ model: String) throws -> String {
            try ProcessRunner.run("curl", ["-sf", "http://127.0.0.1:\(ports["dev"]!)/v2/models/\(model)"]).stdout
        }
        #expect(try serving("breast-cancer") == v1)

        // S3 stops while a reconcile that must build and upload a new version is under way.
        try GitOpsLoopTests.makeWorseBreastCancer(scratch)
        let failed = try #require(try Self.interrupted(scratch, ["reconcile", "--env", "dev"], at: "before-build") { s3.stop() })
        #expect(failed.status == 1, "\(failed.stdout)\(failed.stderr)")
        let said = failed.stdout + failed.stderr
        #expect(said.contains("s3://team-models/stagecraft") && said.contains("attempts"), "\(said)")
        for secret in S3Server.credentials.values where secret.count > 12 { #expect(!said.contains(secret)) }
        #expect(try GitOpsLoopTests.curlVersion(port: ports["dev"]!).version == v1, "the serving version changed")
        #expect(try serving("breast-cancer") == v1)
        try s3.start()  // (moto comes back empty: the bucket is made again; the cache still holds v1)
        try s3.createBucket("team-models")
        let converged = try scratch.stagecraft(["reconcile", "--env", "dev"])
        #expect(converged.status == 0, "\(converged.stdout)\(converged.stderr)")
        let v2 = try serving("breast-cancer")
        #expect(v2.count == 64 && v2 != v1)
        #expect(try Self.remoteObjects(s3).keys.contains("stagecraft/\(v2)/build.json"))
        try Self.expectRecordsWhole(scratch, postgres)

        // PostgreSQL goes down while a reconcile of a new penguins version is under way (and comes back after it).
        let served = try serving("penguins")
        let loaded = try metadata("penguins")
        #expect(loaded.contains(served))
        let manifest = try scratch.directory.read("manifests/penguins.yaml")
        try scratch.commit(["manifests/penguins.yaml": manifest.replacingOccurrences(of: "trees: 100", with: "trees: 60")], message: "fewer trees")
        let cut = try #require(try Self.interrupted(scratch, ["reconcile", "--env", "dev"], at: "after-begin") { try postgres.stop() })
        #expect(cut.status == 1, "\(cut.stdout)\(cut.stderr)")
        #expect((cut.stdout + cut.stderr).contains("state store"), "\(cut.stdout)\(cut.stderr)")
        #expect(try metadata("penguins") == loaded, "the server no longer answers, or loaded something else")
        try postgres.start()
        #expect(try serving("penguins") == served)
        let again = try scratch.stagecraft(["reconcile", "--env", "dev"])
        #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
        #expect(try serving("penguins") != served)
        try Self.expectRecordsWhole(scratch, postgres)
    }
}

extension SharedStoresTests {
    @Test func dataInS3IsPinnedByItsBytesAndCached() throws {
        guard S3Server.available else { Issue.record(Comment(rawValue: S3Server.missing)); return }
        let s3 = try S3Server()
        defer { s3.stop() }
        try s3.createBucket("team-data")
        let scratch = try ScratchRepository.example()
        let train = Fixtures.packageRoot + "/data/penguins/train.csv"
        try s3.boto3("s3.upload_file(sys.argv[1], 'team-data', 'penguins/train v1.csv')", arguments: [train])
        let settings = try scratch.directory.read("stagecraft.yaml") + "  s3: {endpoint: \"\(s3.endpoint)\", pathStyle: true}\n"
        let manifest = try scratch.directory.read("manifests/penguins.yaml")
            .replacingOccurrences(of: "train: data/penguins/train.csv", with: "train: \"s3://team-data/penguins/train v1.csv\"")
        try scratch.commit(["stagecraft.yaml": settings, "manifests/penguins.yaml": manifest], message: "penguins' training data in S3")
        scratch.environment = s3.environment

        // validate asks S3 when it can, and says so when it cannot.
        #expect(try scratch.stagecraft(["validate"]).status == 0)
        let blind = try scratch.stagecraft(["validate"], environment: ["AWS_ACCESS_KEY_ID": "", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                                                                      "AWS_CONFIG_FILE": "/dev/null"])
        #expect(blind.status == 0 && blind.stderr.contains("not checked: no AWS credentials"), "\(blind.stderr)")

        // The build hashes the object's bytes, as it would a committed file's.
        let built = try scratch.stagecraft(["build", "penguins", "--output", "json"])
        #expect(built.status == 0, "\(built.stderr)")
        let digest = try #require((GitOpsLoopTests.json(built.stdout) as? [String: Any])?["digest"] as? String)
        let info = try #require(GitOpsLoopTests.json(try scratch.directory.read(".stagecraft/artifacts/\(digest)/build.json")) as? [String: Any])
        #expect((info["data"] as? [String: String])?["s3://team-data/penguins/train v1.csv"] == (try Self.sha256(train)))
        #expect((info["timings"] as? [String: Double])?["download"] != nil)
        // Warm cache: built again from scratch, nothing is downloaded.
        try FileManager.default.removeItem(atPath: scratch.directory.appending(".stagecraft/artifacts"))
        #expect(try scratch.stagecraft(["build", "penguins"]).status == 0)
        let again = try #require(GitOpsLoopTests.json(try scratch.directory.read(".stagecraft/artifacts/\(digest)/build.json")) as? [String: Any])
        #expect((again["timings"] as? [String: Double])?["download"] == nil, "the cached object was downloaded again")

        // New bytes at the same key are a new version.
        try s3.boto3("s3.put_object(Bucket='team-data', Key='penguins/train v1.csv', Body=b''.join(open(sys.argv[1], 'rb').readlines()[:-3]))",
                     arguments: [train])
        let changed = try scratch.stagecraft(["build", "penguins", "--output", "json"])
        #expect(changed.status == 0, "\(changed.stderr)")
        #expect((GitOpsLoopTests.json(changed.stdout) as? [String: Any])?["digest"] as? String != digest)

        // A missing object is a problem at the manifest's line and column.
        try scratch.commit(["manifests/penguins.yaml": manifest.replacingOccurrences(of: "train v1.csv", with: "train v2.csv")],
                           message: "a file never uploaded")
        let missing = try scratch.stagecraft(["validate"])
        #expect(missing.status == 1)
        #expect(missing.stdout.contains("manifests/penguins.yaml:8:") && missing.stdout.contains("does not exist"), "\(missing.stdout)")
    }
}

/// Results written by concurrent closures.
final class ConcurrentResults: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int: ProcessOutput] = [:]
    func set(_ index: Int, _ value: ProcessOutput?) { lock.withLock { values[index] = value } }
    func get(_ index: Int) -> ProcessOutput? { lock.withLock { values[index] } }
}
