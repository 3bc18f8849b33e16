import Foundation
import LoopbackHTTP
import StagecraftTesting
import Synchronization
import Testing

/// Crashes, concurrent reconciles and switches under load, with the real binary and real servers.
@Suite(.serialized)
struct ReconcileSafetyTests {
    /// Sends single-row requests to `model`'s default route from `connections` keep-alive connections until
    /// stopped; counts answers that were not 200 (and connections that failed).
    final class Load: @unchecked Sendable {
        let stopFlag = Atomic<Bool>(false)
        let ok = Atomic<Int>(0)
        let failed = Atomic<Int>(0)
        let versions = Mutex<Set<String>>([])
        private var threads: [Thread] = []

        init(port: Int, model: String, body: String, connections: Int = 2) {
            for _ in 0..<connections {
                let thread = Thread { [self] in
                    var connection = try? HTTPConnection(port: port, timeout: 10)
                    while !stopFlag.load(ordering: .relaxed) {
                        do {
                            if connection == nil { connection = try HTTPConnection(port: port, timeout: 10) }
                            let response = try connection!.send("POST", "/v2/models/\(model)/infer", body: Data(body.utf8))
                            if response.status == 200 {
                                ok.add(1, ordering: .relaxed)
                                if let version = response.json["model_version"] as? String { versions.withLock { _ = $0.insert(version) } }
                            } else {
                                failed.add(1, ordering: .relaxed)
                            }
                        } catch {
                            failed.add(1, ordering: .relaxed)
                            connection = nil
                        }
                    }
                }
                threads.append(thread)
                thread.start()
            }
        }

        func stop() {
            stopFlag.store(true, ordering: .relaxed)
            while threads.contains(where: { !$0.isFinished }) { usleep(10_000) }
        }
    }

    static func penguinsBody() -> String {
        #"{"inputs":[{"name":"island","datatype":"BYTES","shape":[1],"data":["Biscoe"]},{"name":"bill_length_mm","datatype":"FP64","shape":[1],"data":[45.2]},{"name":"bill_depth_mm","datatype":"FP64","shape":[1],"data":[14.8]},{"name":"flipper_length_mm","datatype":"FP64","shape":[1],"data":[212]},{"name":"body_mass_g","datatype":"FP64","shape":[1],"data":[5200]},{"name":"sex","datatype":"BYTES","shape":[1],"data":["female"]}]}"#
    }

    static func records(_ scratch: ScratchRepository) throws -> [[String: Any]] {
        let history = try scratch.stagecraft(["history", "--output", "json"])
        let entries = try JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [[String: Any]] ?? []
        return entries.flatMap { $0["records"] as? [[String: Any]] ?? [] }
    }

    /// Every record id in `refs/notes/stagecraft`, as the git CLI reads them (duplicates kept).
    static func notedIDs(_ scratch: ScratchRepository) throws -> [String] {
        let list = try scratch.git(["notes", "--ref", "stagecraft", "list"]).split(separator: "\n")
        var ids: [String] = []
        for line in list {
            let commit = String(line.split(separator: " ")[1])
            for record in try scratch.git(["notes", "--ref", "stagecraft", "show", commit]).split(separator: "\n") {
                if let object = try JSONSerialization.jsonObject(with: Data(record.utf8)) as? [String: Any], let id = object["id"] as? String { ids.append(id) }
            }
        }
        return ids
    }

    @Test(arguments: ["after-promotion", "after-begin", "after-load", "after-switch", "after-finish"])
    func aReconcileKilledAtAnyPointIsCompletedByTheNext(failpoint: String) throws {
        let scratch = try ScratchRepository.example()
        let ports = try scratch.useFreePorts()
        defer { scratch.stopServers() }
        let first = try scratch.stagecraft(["reconcile", "--env", "dev"])
        #expect(first.status == 0, "\(first.stderr)")
        // A new penguins version on main; dev (track) will promote and deploy it.
        let oldVersion = try #require(HTTPConnection(port: ports["dev"]!).send("POST", "/v2/models/penguins/infer", body: Data(Self.penguinsBody().utf8)).json["model_version"] as? String)
        let manifest = try scratch.directory.read("manifests/penguins.yaml")
        let change = try scratch.commit(["manifests/penguins.yaml": manifest.replacingOccurrences(of: "learningRate: 0.1", with: "learningRate: 0.2")], message: "penguins: another learning rate")

        let load = Load(port: ports["dev"]!, model: "penguins", body: Self.penguinsBody())
        let killed = try scratch.stagecraft(["reconcile", "--env", "dev"], environment: ["STAGECRAFT_FAILPOINT": failpoint])
        #expect(killed.status == 9, "reconcile was not killed at \(failpoint): \(killed.stderr)")
        let next = try scratch.stagecraft(["reconcile", "--env", "dev"])
        usleep(100_000)
        load.stop()
        #expect(next.status == 0, "\(next.stderr)\(next.stdout)")
        #expect(load.failed.load(ordering: .relaxed) == 0, "requests failed while reconciling")
        #expect(load.ok.load(ordering: .relaxed) > 0)
        #expect(try scratch.stagecraft(["plan", "--env", "dev"]).status == 0)

        // One promotion commit for the new version, one succeeded record for it, nothing left in progress, and
        // every finished record exactly once in the notes.
        let since = try scratch.gitLine(["log", "--format=%s", "\(change)..HEAD"])
        #expect(since.components(separatedBy: "\n").filter { $0.hasPrefix("Promote penguins") }.count == 1, "\(since)")
        let records = try Self.records(scratch)
        let penguins = records.filter { $0["model"] as? String == "penguins" }
        let newVersion = try #require(penguins.compactMap { $0["version"] as? String }.first { $0 != oldVersion })
        #expect(penguins.filter { $0["version"] as? String == newVersion && $0["outcome"] as? String == "succeeded" }.count == 1)
        #expect(!records.contains { $0["outcome"] as? String == "in-progress" })
        let noted = try Self.notedIDs(scratch)
        #expect(noted.count == Set(noted).count, "a record was noted twice")
        #expect(Set(noted) == Set(records.compactMap { $0["id"] as? String }))
        let served = try HTTPConnection(port: ports["dev"]!).send("POST", "/v2/models/penguins/infer", body: Data(Self.penguinsBody().utf8))
        #expect(served.json["model_version"] as? String == newVersion)
    }

    @Test func twoConcurrentReconcilesApplyOnce() throws {
        let scratch = try ScratchRepository.example()
        try scratch.useFreePorts()
        defer { scratch.stopServers() }
        let outputs = Mutex<[ProcessOutput?]>([])
        let threads = (0..<2).map { _ in
            Thread {
                let output = try? scratch.stagecraft(["reconcile", "--env", "dev", "--output", "json"])
                outputs.withLock { $0.append(output) }
            }
        }
        threads.forEach { $0.start() }
        while outputs.withLock({ $0.count }) < 2 { usleep(20_000) }
        let results = outputs.withLock { $0 }.compactMap { $0 }
        #expect(results.count == 2)
        #expect(results.allSatisfy { $0.status == 0 }, "\(results.map(\.stderr))")
        let reports = results.compactMap { try? JSONSerialization.jsonObject(with: Data($0.stdout.utf8)) as? [String: Any] }
        let applied = reports.filter { ($0["records"] as? [Any])?.isEmpty == false }
        #expect(applied.count == 1, "both reconciles applied")
        #expect(reports.filter { $0["wasInSync"] as? Bool == true }.count == 1)
        #expect(try scratch.gitLine(["log", "--format=%s"]).components(separatedBy: "\n").filter { $0.hasPrefix("Promote") }.count == 2)
        let records = try Self.records(scratch)
        #expect(records.count == 2 && records.allSatisfy { $0["outcome"] as? String == "succeeded" })

        // With --no-wait, a reconcile that finds the lock held exits 3 at once.
        let holder = try BackgroundProcess("flock", [scratch.directory.appending(".stagecraft/run/dev.lock"), "sleep", "30"])
        defer { holder.stop() }
        usleep(300_000)
        let refused = try scratch.stagecraft(["reconcile", "--env", "dev", "--no-wait"])
        #expect(refused.status == 3, "\(refused.stderr)")
        #expect(refused.stderr.contains("another reconcile of 'dev' is running"))
    }

    @Test func twentySwitchesUnderLoadLoseNoRequest() throws {
        let scratch = try ScratchRepository.example()
        let ports = try scratch.useFreePorts()
        defer { scratch.stopServers() }
        // Two versions of penguins, built from two commits.
        let one = try scratch.gitLine(["rev-parse", "HEAD"])
        let manifest = try scratch.directory.read("manifests/penguins.yaml")
        try scratch.commit(["manifests/penguins.yaml": manifest.replacingOccurrences(of: "learningRate: 0.1", with: "learningRate: 0.2")], message: "penguins: another learning rate")
        let two = try scratch.gitLine(["rev-parse", "HEAD"])
        var versions: [(digest: String, source: String)] = []
        for source in [one, two] {
            let built = try scratch.stagecraft(["build", "penguins", "--ref", source, "--output", "json"])
            let report = try JSONSerialization.jsonObject(with: Data(built.stdout.utf8)) as? [String: Any]
            versions.append((try #require(report?["digest"] as? String), source))
        }
        #expect(versions[0].digest != versions[1].digest)
        try scratch.setPin("penguins", version: versions[0].digest, source: one, in: "qa")
        #expect(try scratch.stagecraft(["reconcile", "--env", "qa"]).status == 0)

        let load = Load(port: ports["qa"]!, model: "penguins", body: Self.penguinsBody())
        for switchNumber in 1...20 {
            let next = versions[switchNumber % 2]
            try scratch.setPin("penguins", version: next.digest, source: next.source, in: "qa")
            let result = try scratch.stagecraft(["reconcile", "--env", "qa"])
            #expect(result.status == 0, "switch \(switchNumber): \(result.stderr)")
        }
        usleep(100_000)
        load.stop()
        #expect(load.failed.load(ordering: .relaxed) == 0)
        #expect(load.ok.load(ordering: .relaxed) > 100)
        #expect(load.versions.withLock { $0 } == Set(versions.map(\.digest)))
        let records = try Self.records(scratch).filter { $0["environment"] as? String == "qa" }
        #expect(records.count == 21 && records.allSatisfy { $0["outcome"] as? String == "succeeded" })
    }
}
