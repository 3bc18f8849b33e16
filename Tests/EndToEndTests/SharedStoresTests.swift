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

        try GitOpsLoopTests.walkthrough(first, ports: ports) { _ = try postgres.psql("TRUNCATE deployment_record") }

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

/// Results written by concurrent closures.
final class ConcurrentResults: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int: ProcessOutput] = [:]
    func set(_ index: Int, _ value: ProcessOutput?) { lock.withLock { values[index] = value } }
    func get(_ index: Int) -> ProcessOutput? { lock.withLock { values[index] } }
}
