import Foundation
import KServe
import Reconciler
import Registry
import StagecraftTesting
import Testing

/// KServe status documents, written by hand from KServe's documented status fields (the `Ready` condition;
/// `components.predictor.latestCreatedRevision`, `latestReadyRevision`, `latestRolledoutRevision`, `traffic[]`;
/// `modelStatus`), read into what serves, what is loaded, and health.
@Suite struct KServeStatusTests {
    static let old = testDigest("old")
    static let new = testDigest("new")

    /// An InferenceService Stagecraft applied with `new` as the spec's version, `old` rolled out before it.
    static func service(
        canary: Int?, route: String, loaded: [String], ready: String, reason: String? = nil, message: String? = nil,
        created: String = "churn-predictor-00002", readyRevision: String = "churn-predictor-00002",
        traffic: [(String, Int, String)], modelStatus: [String: Any]? = nil
    ) -> [String: Any] {
        var predictor: [String: Any] = ["model": ["storageUri": "s3://models/stagecraft/\(new)"]]
        if let canary { predictor["canaryTrafficPercent"] = canary }
        var condition: [String: Any] = ["type": "Ready", "status": ready]
        if let reason { condition["reason"] = reason }
        if let message { condition["message"] = message }
        var status: [String: Any] = [
            "url": "http://churn.stagecraft-qa.example.com",
            "conditions": [condition],
            "components": [
                "predictor": [
                    "latestCreatedRevision": created, "latestReadyRevision": readyRevision,
                    "latestRolledoutRevision": "churn-predictor-00001",
                    "traffic": traffic.map { revision, percent, tag in
                        ["revisionName": revision, "percent": percent, "tag": tag, "latestRevision": revision == readyRevision,
                         "url": "http://\(tag)-churn-predictor.stagecraft-qa.example.com"] as [String: Any]
                    },
                ]
            ],
        ]
        if let modelStatus { status["modelStatus"] = modelStatus }
        return [
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": [
                "name": "churn", "namespace": "stagecraft-qa",
                "annotations": [
                    "stagecraft.dev/version": new, "stagecraft.dev/source": "a1b2c3", "stagecraft.dev/rolled-out": old,
                    "stagecraft.dev/rolled-out-source": "d4e5f6", "stagecraft.dev/loaded": loaded.joined(separator: ","),
                    "stagecraft.dev/route": route,
                ],
            ],
            "spec": ["predictor": predictor], "status": status,
        ]
    }

    struct Case: CustomTestStringConvertible, @unchecked Sendable {
        var name: String
        var object: [String: Any]
        var route: ServerState.Route?
        var loaded: Set<String>
        var health: ModelStatus.Health
        var message: String?
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "ready: the latest revision has all traffic",
            object: service(
                canary: nil, route: new, loaded: [new], ready: "True", traffic: [("churn-predictor-00002", 100, "latest")]),
            route: ServerState.Route(defaultVersion: new, traffic: nil, shadow: nil), loaded: [new], health: .healthy),
        Case(
            name: "canary in progress: 90/10 between the rolled-out revision and the latest",
            object: service(
                canary: 10, route: "\(old) \(old):90,\(new):10", loaded: [old, new], ready: "True",
                traffic: [("churn-predictor-00001", 90, "prev"), ("churn-predictor-00002", 10, "latest")]),
            route: ServerState.Route(
                defaultVersion: old, traffic: [VersionShare(version: old, weight: 90), VersionShare(version: new, weight: 10)],
                shadow: nil),
            loaded: [old, new], health: .healthy),
        Case(
            name: "failed revision: traffic stays on the one before, the latest is not loaded",
            object: service(
                canary: nil, route: new, loaded: [old, new], ready: "False", reason: "RevisionFailed",
                message: "Revision \"churn-predictor-00002\" failed with message: container exited with code 1",
                readyRevision: "churn-predictor-00001", traffic: [("churn-predictor-00001", 100, "latest")]),
            route: ServerState.Route(defaultVersion: old, traffic: nil, shadow: nil), loaded: [old], health: .degraded,
            message: "revision churn-predictor-00002 (version \(new.prefix(12))) failed: RevisionFailed: Revision "
                + "\"churn-predictor-00002\" failed with message: container exited with code 1"),
        Case(
            name: "failed load reported by the model status",
            object: service(
                canary: 0, route: old, loaded: [old, new], ready: "False", readyRevision: "churn-predictor-00001",
                traffic: [("churn-predictor-00001", 100, "prev")],
                modelStatus: ["transitionStatus": "BlockedByFailedLoad",
                              "lastFailureInfo": ["reason": "ModelLoadFailed", "message": "no build.json in /mnt/models"]]),
            route: ServerState.Route(defaultVersion: old, traffic: nil, shadow: nil), loaded: [old], health: .degraded,
            message: "revision churn-predictor-00002 (version \(new.prefix(12))) failed: ModelLoadFailed: no build.json in /mnt/models"),
        Case(
            name: "rolled back: canaryTrafficPercent 0 puts all traffic on the rolled-out revision",
            object: service(
                canary: 0, route: old, loaded: [old], ready: "True",
                traffic: [("churn-predictor-00001", 100, "prev"), ("churn-predictor-00002", 0, "latest")]),
            route: ServerState.Route(defaultVersion: old, traffic: nil, shadow: nil), loaded: [old], health: .healthy),
        Case(
            name: "progressing: the latest revision is not ready yet, and has not failed",
            object: service(
                canary: 0, route: old, loaded: [old, new], ready: "Unknown", reason: "RevisionMissing",
                message: "Configuration \"churn-predictor\" is waiting for a Revision to become ready.",
                readyRevision: "churn-predictor-00001", traffic: [("churn-predictor-00001", 100, "prev")]),
            route: ServerState.Route(defaultVersion: old, traffic: nil, shadow: nil), loaded: [old, new], health: .progressing,
            message: "Configuration \"churn-predictor\" is waiting for a Revision to become ready."),
        Case(
            name: "a split edited by hand: KServe's shares win over the annotation",
            object: service(
                canary: 30, route: "\(old) \(old):90,\(new):10", loaded: [old, new], ready: "True",
                traffic: [("churn-predictor-00001", 70, "prev"), ("churn-predictor-00002", 30, "latest")]),
            route: ServerState.Route(
                defaultVersion: old, traffic: [VersionShare(version: old, weight: 70), VersionShare(version: new, weight: 30)],
                shadow: nil),
            loaded: [old, new], health: .healthy),
    ]

    @Test(arguments: cases) func statusReadsIntoActualState(_ example: Case) {
        let seen = KServeObservation(example.object)
        #expect(seen.route == example.route)
        #expect(seen.loaded == example.loaded)
        #expect(seen.health == example.health)
        #expect(seen.message == example.message)
        #expect(seen.applied?.latest.digest == Self.new && seen.applied?.rolledOut.digest == Self.old)
    }

    @Test func syncFollowsTheRouteAgainstTheDesiredOne() throws {
        // What `status` and `plan` compare: the route read back against the one the environment file asks for.
        let canary = KServeObservation(Self.cases[1].object)
        let wanted = ServerState.Route(
            defaultVersion: Self.old,
            traffic: [VersionShare(version: Self.old, weight: 90), VersionShare(version: Self.new, weight: 10)], shadow: nil)
        #expect(canary.route == wanted)
        let failed = KServeObservation(Self.cases[2].object)
        #expect(failed.route != ServerState.Route(defaultVersion: Self.new, traffic: nil, shadow: nil))
        #expect(failed.latestURL == "http://latest-churn-predictor.stagecraft-qa.example.com")
        // An InferenceService Stagecraft did not write is not read as one of its own.
        var foreign = Self.cases[0].object
        foreign["metadata"] = ["name": "churn"]
        #expect(KServeObservation(foreign).applied == nil)
        #expect(KServeObservation(["metadata": ["name": "x"]]).health == .progressing)
    }
}
