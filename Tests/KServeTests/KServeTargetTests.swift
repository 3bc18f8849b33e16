import Foundation
import GitStore
import KServe
import Manifests
import Reconciler
import Registry
import StagecraftTesting
import Testing

/// A stand-in for a cluster running KServe, for the target's unit tests: it keeps the applied objects and writes their
/// status as KServe documents it (a new revision when the predictor's spec changes; traffic by
/// `canaryTrafficPercent` between the rolled-out revision and the latest ready one; tag routing's `prev` and `latest`
/// URLs; a revision of a storage URI in `failing` fails and traffic stays where it was).
final class SimulatedKServe: KubernetesCluster {
    let context = "context simulated"
    private(set) var objects: [String: [String: Any]] = [:]
    /// Digests whose revision fails to start.
    var failing: Set<String> = []
    /// `apply name uri-suffix canary` per InferenceService applied, `delete name` per deletion.
    private(set) var log: [String] = []
    private var revisions: [String: Int] = [:]
    private var rolledOut: [String: String] = [:]
    private var uris: [String: String] = [:]

    func apply(_ documents: [Document]) throws {
        for document in documents {
            var object = try #require(try JSONSerialization.jsonObject(with: Data(document.json.utf8)) as? [String: Any])
            let metadata = object["metadata"] as? [String: Any] ?? [:]
            let name = try #require(metadata["name"] as? String)
            guard object["kind"] as? String == "InferenceService" else {
                objects["runtime/\(name)"] = object
                continue
            }
            let predictor = (object["spec"] as? [String: Any])?["predictor"] as? [String: Any] ?? [:]
            let uri = try #require((predictor["model"] as? [String: Any])?["storageUri"] as? String)
            let canary = predictor["canaryTrafficPercent"] as? Int
            let before = ((objects["isvc/\(name)"]?["status"] as? [String: Any])?["components"] as? [String: Any])?["predictor"]
                as? [String: Any] ?? [:]
            var created = before["latestCreatedRevision"] as? String
            var ready = before["latestReadyRevision"] as? String
            if created.map({ uris[$0] != uri }) ?? true {
                let number = revisions[name, default: 0] + 1
                revisions[name] = number
                let revision = "\(name)-predictor-" + String(repeating: "0", count: 5 - String(number).count) + String(number)
                uris[revision] = uri
                created = revision
                if !failing.contains(where: { uri.hasSuffix($0) }) { ready = revision }
            }
            func entry(_ revision: String, _ percent: Int, _ tag: String) -> [String: Any] {
                ["revisionName": revision, "percent": percent, "tag": tag, "latestRevision": revision == ready,
                 "url": "http://\(tag)-\(name)-predictor.stagecraft-qa.example.com"]
            }
            var traffic: [[String: Any]] = []
            if let ready {
                if canary == nil || rolledOut[name] == nil { rolledOut[name] = ready }
                let stable = rolledOut[name]!
                if let canary, ready != stable {
                    traffic = [entry(stable, 100 - canary, "prev"), entry(ready, canary, "latest")]
                } else {
                    traffic = [entry(stable, 100, "latest")]
                }
            }
            let failed = created != ready
            var condition: [String: Any] = ["type": "Ready", "status": failed ? "False" : "True"]
            if failed {
                condition["reason"] = "RevisionFailed"
                condition["message"] = "Revision \"\(created!)\" failed with message: container exited with code 1."
            }
            var predictorStatus: [String: Any] = ["latestCreatedRevision": created!, "traffic": traffic]
            if let ready { predictorStatus["latestReadyRevision"] = ready }
            if let stable = rolledOut[name] { predictorStatus["latestRolledoutRevision"] = stable }
            object["status"] = [
                "url": "http://\(name).stagecraft-qa.example.com", "conditions": [condition],
                "components": ["predictor": predictorStatus],
            ] as [String: Any]
            objects["isvc/\(name)"] = object
            log.append("apply \(name) \(uri.suffix(64).prefix(12)) \(canary.map(String.init) ?? "-")")
        }
    }

    func list(_ kind: String, namespace: String, selector: String) throws -> [[String: Any]] {
        let (key, value) = try #require(selector.split(separator: "=").map(String.init).pairs)
        return objects.filter { $0.key.hasPrefix("isvc/") }.map(\.value).filter { object in
            let metadata = object["metadata"] as? [String: Any]
            return metadata?["namespace"] as? String == namespace && (metadata?["labels"] as? [String: String])?[key] == value
        }
    }

    func get(_ kind: String, name: String, namespace: String?) throws -> [String: Any]? {
        objects[(kind.hasPrefix("inferenceservices") ? "isvc/" : "runtime/") + name]
    }

    func delete(_ kind: String, name: String, namespace: String) throws {
        objects["isvc/\(name)"] = nil
        revisions[name] = nil
        rolledOut[name] = nil
        log.append("delete \(name)")
    }
}

extension Array where Element == String {
    fileprivate var pairs: (String, String)? { count == 2 ? (self[0], self[1]) : nil }
}

/// The reconcile engine driving the KServe target (against ``SimulatedKServe``): a first rollout, a 90/10 canary, its
/// promotion, a revision that fails, a rollback during a canary, and removal; each reconcile ends in sync.
@Suite struct KServeTargetTests {
    final class Probes {
        var urls: [String] = []
    }

    static func project() -> (InMemoryProject, SimulatedKServe, KServeTarget, Probes) {
        let project = InMemoryProject()
        let cluster = SimulatedKServe()
        let builds = project.builds
        let target = KServeTarget(
            cluster: cluster,
            settings: KServeSettings(environment: "qa", namespace: "stagecraft-qa", image: "stagecraft:1", storagePrefix: "s3://m/s"),
            environmentCommit: "e1", build: { pin in builds.resolve(pin).flatMap { builds.built[$0] } })
        target.pollInterval = 0
        target.readyTimeout = 5
        let probes = Probes()
        target.post = { url, _ in
            probes.urls.append(url)
            return (200, Data("{}".utf8))
        }
        return (project, cluster, target, probes)
    }

    static func reconcile(_ project: InMemoryProject, _ target: KServeTarget) throws -> ReconcileReport {
        let seams = ReconcileSeams(git: project.git, state: project.state, target: target, builds: project.builds, gates: project.gates)
        let reconciler = EnvironmentReconciler(seams: seams, environment: "qa", ref: "HEAD", branch: "main", actor: "test")
        let report = try reconciler.reconcile()
        if !report.failed {
            let plan = try reconciler.plan()
            #expect(plan.inSync, "\(plan.actions)")
        }
        return report
    }

    static func pin(_ version: String, extra: String = "") -> String {
        "    churn:\n      version: \(version.prefix(12))\n      source: a1b2c3d4e5f6\n" + extra
    }

    @Test func canaryPromotionFailureAndRollback() throws {
        let (project, cluster, target, probes) = Self.project()
        let v1 = testDigest("v1")
        let v2 = testDigest("v2")
        let v3 = testDigest("v3")
        let v4 = testDigest("v4")
        for version in [v1, v2, v3, v4] { project.builds.add(version, model: "churn") }

        // First rollout: the runtime, then one revision with all traffic.
        project.environment(Self.pin(v1))
        #expect(!(try Self.reconcile(project, target)).failed)
        #expect(cluster.objects["runtime/stagecraft"] != nil)
        #expect(cluster.log == ["apply churn \(v1.prefix(12)) -"])
        #expect(try target.state().routes["churn"] == ServerState.Route(defaultVersion: v1, traffic: nil, shadow: nil))
        #expect(probes.urls.last == "http://latest-churn-predictor.stagecraft-qa.example.com/v2/models/churn/infer")

        // A 90/10 canary: the new revision comes up with no traffic (verified at its own address), then gets 10%.
        project.environment(Self.pin(v1, extra: "      traffic:\n        - {version: \(v1.prefix(12)), weight: 90}\n"
            + "        - {version: \(v2.prefix(12)), source: a1b2c3d4e5f6, weight: 10}\n"))
        #expect(!(try Self.reconcile(project, target)).failed)
        #expect(cluster.log.suffix(2) == ["apply churn \(v2.prefix(12)) 0", "apply churn \(v2.prefix(12)) 10"])
        let split = try #require(try target.observe("churn"))
        #expect(split.route?.traffic == [VersionShare(version: v1, weight: 90), VersionShare(version: v2, weight: 10)])
        #expect(try project.state.served(environment: "qa")["churn"]?.traffic?.map(\.weight) == [90, 10])

        // Promotion: the canary takes all traffic (canaryTrafficPercent dropped) and becomes the rolled-out revision.
        project.environment(Self.pin(v2))
        #expect(!(try Self.reconcile(project, target)).failed)
        #expect(cluster.log.last?.hasPrefix("apply churn \(v2.prefix(12)) -") == true)
        let promoted = try #require(try target.observe("churn"))
        #expect(promoted.route == ServerState.Route(defaultVersion: v2, traffic: nil, shadow: nil))
        #expect(promoted.applied?.rolledOut.digest == v2 && promoted.loaded == [v2])

        // A revision that fails: the reconcile fails with KServe's reason, v2 keeps all traffic.
        cluster.failing = [v3]
        project.environment(Self.pin(v3))
        let failed = try Self.reconcile(project, target)
        #expect(failed.failed)
        let record = try #require(try project.state.records(environment: "qa", model: "churn").last)
        #expect(record.outcome == .failed && record.version == v3 && record.target == "kserve:stagecraft-qa")
        #expect(record.reason?.contains("RevisionFailed: Revision \"churn-predictor-00003\" failed with message") == true, "\(record.reason ?? "")")
        let after = try #require(try target.observe("churn"))
        #expect(after.route == ServerState.Route(defaultVersion: v2, traffic: nil, shadow: nil))
        #expect(after.health == .degraded)
        #expect(try project.state.served(environment: "qa")["churn"]?.version == v2)

        // A canary of v4 rolled back: canaryTrafficPercent 0 puts all traffic back on v2.
        cluster.failing = []
        project.environment(Self.pin(v2, extra: "      traffic:\n        - {version: \(v2.prefix(12)), weight: 80}\n"
            + "        - {version: \(v4.prefix(12)), source: a1b2c3d4e5f6, weight: 20}\n"))
        #expect(!(try Self.reconcile(project, target)).failed)
        #expect(try target.observe("churn")?.route?.traffic?.map(\.weight) == [80, 20])
        project.environment(Self.pin(v2))
        #expect(!(try Self.reconcile(project, target)).failed)
        #expect(cluster.log.last == "apply churn \(v4.prefix(12)) 0")
        let rolledBack = try #require(try target.observe("churn"))
        #expect(rolledBack.route == ServerState.Route(defaultVersion: v2, traffic: nil, shadow: nil))
        #expect(rolledBack.loaded == [v2])

        // Removal deletes the InferenceService.
        project.environment("")
        #expect(!(try Self.reconcile(project, target)).failed)
        #expect(cluster.log.last == "delete churn")
        #expect(try target.state().routes.isEmpty)
    }

    @Test func aThirdVersionDuringACanaryIsRefused() throws {
        let (project, _, target, _) = Self.project()
        let v1 = testDigest("v1")
        let v2 = testDigest("v2")
        let v3 = testDigest("v3")
        for version in [v1, v2, v3] { project.builds.add(version, model: "churn") }
        project.environment(Self.pin(v1))
        _ = try Self.reconcile(project, target)
        project.environment(Self.pin(v1, extra: "      traffic:\n        - {version: \(v1.prefix(12)), weight: 90}\n"
            + "        - {version: \(v2.prefix(12)), source: a1b2c3d4e5f6, weight: 10}\n"))
        _ = try Self.reconcile(project, target)
        #expect(throws: KServeError.self) { try target.load(model: "churn", version: v3) }
        do {
            try target.load(model: "churn", version: v3)
        } catch let error as KServeError {
            #expect(error.message == "'churn' splits traffic between two revisions on KServe; a third version cannot be loaded beside "
                + "them: end the split first (pin one version)")
        }
    }
}
