import Foundation
import GitStore
import Manifests
import Reconciler
import Registry
import StagecraftTesting
import Testing

/// The planner and the executor against in-memory implementations of the seams (git, state store, serving target,
/// builds, gates): every action kind, a failure at each step, the report and the failure classes.
@Suite struct EngineTests {
    /// `churn` pinned at `version` (built from `source`), with optional extra YAML lines.
    static func pin(_ version: String?, model: String = "churn", source: String = "a1b2c3d4e5f6", extra: String = "") -> String {
        "    \(model):\n      version: \(version.map { String($0.prefix(12)) } ?? "~")\n      source: \(version == nil ? "~" : source)\n"
            + extra
    }

    /// A project whose qa serves `old` of churn (built, routed, recorded).
    static func serving(_ old: String, running: Bool = true) throws -> InMemoryProject {
        let project = InMemoryProject(running: running)
        project.builds.add(old, model: "churn")
        project.environment(pin(old))
        let report = try project.reconciler().reconcile()
        #expect(!report.failed, "\(report.actions)")
        #expect(project.target.server.routes["churn"]?.defaultVersion == old)
        project.target.running = running
        return project
    }

    static func kinds(_ actions: [PlannedAction]) -> [PlannedAction.Kind] { actions.map(\.kind) }

    // MARK: Planner

    @Test func planListsEveryActionKindInOrder() throws {
        let old = testDigest("old")
        let new = testDigest("new")
        let canary = testDigest("canary")
        let project = try Self.serving(old)
        project.builds.add(canary, model: "churn")
        // An extra version of churn is loaded, and `legacy` is routed but no longer pinned.
        project.target.server.versions["churn"]?.insert(testDigest("stray"))
        project.target.server.versions["legacy"] = [testDigest("legacy")]
        project.target.server.routes["legacy"] = ServerState.Route(defaultVersion: testDigest("legacy"), traffic: nil, shadow: nil)
        project.environment(
            Self.pin(new, extra: "      traffic:\n        - {version: \(new.prefix(12)), weight: 90}\n"
                + "        - {version: \(canary.prefix(12)), weight: 10}\n"))
        let plan = try project.reconciler().plan()
        #expect(Self.kinds(plan.actions) == [.build, .verify, .verify, .switch, .unload, .unload, .remove])
        #expect(plan.actions[0].source == "a1b2c3d4e5f6" && plan.actions[0].version == String(new.prefix(12)))
        #expect(plan.actions[1].isDefault == true && plan.actions[2].isDefault == false && plan.actions[2].version == canary)
        #expect(plan.actions[1].gates?.map(\.description) == ["auc >= 0.9"])
        #expect(plan.actions[3].route?.traffic?.map(\.weight) == [90, 10])
        #expect(Set(plan.actions[4...5].compactMap(\.version)) == [old, testDigest("stray")])
        #expect(plan.actions[6].model == "legacy")
        #expect(!plan.inSync)
        #expect(project.target.calls.filter { !$0.hasPrefix("load") && !$0.hasPrefix("route") }.isEmpty, "plan changed something")
    }

    @Test func planStartsAStoppedServerAndPromotesForATrackEnvironment() throws {
        let project = InMemoryProject(running: false)
        project.environment(Self.pin(nil), track: true)
        let plan = try project.reconciler().plan()
        #expect(Self.kinds(plan.actions) == [.startServer, .promote, .verify, .switch])
        let head = try project.git.resolve("main").hex
        #expect(plan.actions[1].source == head)
        #expect(plan.actions[2].version == project.builds.digest(model: "churn", at: head))
        #expect(project.builds.builds.isEmpty, "plan trained")
    }

    @Test func aTrackPromotionKeepsTheSplitItsCommitKeeps() throws {
        let old = testDigest("old")
        let canary = testDigest("canary")
        let project = try Self.serving(old)
        project.builds.add(canary, model: "churn")
        project.environment(
            Self.pin(old, extra: "      traffic:\n        - {version: \(old.prefix(12)), weight: 80}\n"
                + "        - {version: \(canary.prefix(12)), weight: 20}\n"), track: true)
        let plan = try project.reconciler().plan()
        let route = try #require(plan.actions.first { $0.kind == .switch }?.route)
        #expect(route.traffic?.map(\.weight) == [80, 20])
    }

    // MARK: Executor

    @Test func aChainBuildsVerifiesSwitchesAndUnloadsAndTheReportListsWhatRan() throws {
        let old = testDigest("old")
        let project = try Self.serving(old)
        let head = try project.git.resolve("main").hex
        let new = project.builds.digest(model: "churn", at: head)
        project.environment(Self.pin(new, source: head))
        let report = try project.reconciler().reconcile()
        #expect(report.actions.map(\.kind) == [.build, .verify, .switch, .unload])
        #expect(report.actions.allSatisfy { $0.outcome == .succeeded && $0.seconds >= 0 })
        #expect(!report.failed && report.failure == nil)
        #expect(project.target.server.routes["churn"]?.defaultVersion == new)
        #expect(project.target.server.versions["churn"] == [new])
        #expect(report.records.map(\.outcome) == [.succeeded])
        #expect(try project.state.served(environment: "qa")["churn"]?.version == new)
        #expect(project.state.builds[new] != nil)
        // Every finished record is in the notes, once.
        #expect(project.git.noteLines.count == 2)
    }

    /// The version qa serves before each failure, and that it still serves after.
    @Test(arguments: ["build", "digest", "load", "gate", "probe", "route"])
    func aFailureAtEachStepLeavesThePreviousVersionServing(step: String) throws {
        let old = testDigest("old")
        let project = try Self.serving(old)
        let head = try project.git.resolve("main").hex
        var new = project.builds.digest(model: "churn", at: head)
        switch step {
        case "build": project.builds.failing = ["churn"]
        case "digest": new = testDigest("pinned elsewhere")
        case "load": project.target.failing = [.load]
        case "gate": project.gates.failingVersions = [new]
        case "probe": project.gates.unreachableVersions = [new]
        default: project.target.failing = [.route]
        }
        project.environment(Self.pin(new, source: head))
        let report = try project.reconciler().reconcile()
        #expect(report.failed)
        #expect(project.target.server.routes["churn"]?.defaultVersion == old, "\(step)")
        #expect(project.target.server.versions["churn"] == [old], "what this run loaded is unloaded")
        #expect(try project.state.served(environment: "qa")["churn"]?.version == old)
        let failed = try #require(report.actions.last)
        #expect(failed.outcome == .failed && failed.error != nil)
        #expect(report.actions.dropLast().allSatisfy { $0.outcome == .succeeded })
        let expected: [String: (PlannedAction.Kind, FailureClass)] = [
            "build": (.build, .stalled), "digest": (.build, .stalled), "load": (.verify, .transient),
            "gate": (.verify, .stalled), "probe": (.verify, .transient), "route": (.switch, .transient),
        ]
        #expect(failed.kind == expected[step]!.0, "only what ran is listed: \(report.actions.map(\.description))")
        #expect(report.failure == expected[step]!.1)
        let record = try #require(report.records.last)
        #expect(record.outcome == .failed && record.reason != nil)
        if step == "gate" { #expect(record.gates.contains { !$0.passed }) }
    }

    @Test func aServerThatDoesNotStartStopsTheRunAsTransient() throws {
        let project = InMemoryProject(running: false)
        let version = testDigest("v")
        project.builds.add(version, model: "churn")
        project.environment(Self.pin(version))
        project.target.failing = [.start]
        let report = try project.reconciler().reconcile()
        #expect(report.actions.map(\.kind) == [.startServer])
        #expect(report.failure == .transient)
        #expect(try project.state.records(environment: "qa", model: nil).isEmpty)
    }

    @Test func oneModelsFailureDoesNotStopAnother() throws {
        let project = InMemoryProject(models: ["churn", "fraud"])
        let head = try project.git.resolve("main").hex
        project.builds.failing = ["churn"]
        project.environment(
            Self.pin(project.builds.digest(model: "churn", at: head), model: "churn", source: head)
                + Self.pin(project.builds.digest(model: "fraud", at: head), model: "fraud", source: head))
        let report = try project.reconciler().reconcile()
        #expect(report.actions.map(\.kind) == [.build, .build, .verify, .switch])
        #expect(report.records.map(\.outcome) == [.failed, .succeeded])
        #expect(project.target.server.routes["fraud"] != nil && project.target.server.routes["churn"] == nil)
    }

    @Test func aModelNoLongerPinnedIsRemovedAndRecorded() throws {
        let old = testDigest("old")
        let project = try Self.serving(old)
        project.environment("")
        let report = try project.reconciler().reconcile()
        #expect(report.actions.map(\.kind) == [.remove])
        #expect(report.records.map(\.outcome) == [.removed])
        #expect(project.target.server.routes.isEmpty)
        #expect(try project.state.served(environment: "qa").isEmpty)
    }

    @Test func aTrackEnvironmentPromotesByACommitWithEvidenceThenDeploys() throws {
        let project = InMemoryProject()
        project.environment(Self.pin(nil), track: true)
        let head = try project.git.resolve("main")
        let report = try project.reconciler().reconcile()
        #expect(report.actions.map(\.kind) == [.promote, .verify, .switch])
        #expect(report.promotions.count == 1)
        let promotion = try project.git.commit(try project.git.resolve("main"))
        #expect(promotion.parents == [head])
        #expect(promotion.trailer("Stagecraft-Evidence") == "build holdout: auc 0.99")
        let digest = project.builds.digest(model: "churn", at: head.hex)
        #expect(project.git.text("environments/qa.yaml")?.contains("version: \(digest.prefix(12))") == true)
        #expect(report.commit == promotion.id.hex)
        #expect(report.records.first?.environmentCommit == promotion.id.hex)
        #expect(try project.reconciler().plan().inSync)
    }

    @Test func aVersionThatFailedItsGatesIsNotPromotedAgain() throws {
        let project = InMemoryProject()
        project.environment(Self.pin(nil), track: true)
        let head = try project.git.resolve("main").hex
        project.gates.failingVersions = [project.builds.digest(model: "churn", at: head)]
        let first = try project.reconciler().reconcile()
        #expect(first.failure == .stalled)
        // The promotion commit is in git; the failed version does not serve, and is not promoted again.
        let second = try project.reconciler().reconcile()
        #expect(!second.actions.contains { $0.kind == .promote })
    }

    @Test func anInvalidEnvironmentFileIsAStalledFailureNeverInSync() throws {
        let project = InMemoryProject()
        // rmse on a binary classifier: validate rejects it; so must plan and reconcile.
        project.environment(Self.pin(nil), gates: "rmse: \"<= 0.3\"")
        #expect(throws: InvalidProject.self) { try project.reconciler().plan() }
        do {
            _ = try project.reconciler().reconcile()
            Issue.record("reconcile accepted an invalid environment file")
        } catch {
            #expect(FailureClass(error) == .stalled)
            #expect(String(describing: error).contains("environments/qa.yaml:"))
        }
    }

    @Test func failureClasses() {
        #expect(FailureClass(ReconcileError(.locked, "held")) == .waiting)
        #expect(FailureClass(ReconcileError(.refused, "upstream not verified")) == .waiting)
        #expect(FailureClass(ReconcileError(.gate, "gate")) == .stalled)
        #expect(FailureClass(ReconcileError(.build, "digest")) == .stalled)
        #expect(FailureClass(ReconcileError(.server, "did not start")) == .transient)
        #expect(FailureClass(CocoaError(.fileReadNoSuchFile)) == .transient)
    }

    @Test func aRollbackLeavesStatusHealthy() throws {
        let old = testDigest("old")
        let project = try Self.serving(old)
        let head = try project.git.resolve("main").hex
        let bad = project.builds.digest(model: "churn", at: head)
        project.gates.failingVersions = [bad]
        project.environment(Self.pin(bad, source: head))
        #expect(try project.reconciler().reconcile().failed)
        #expect(try project.reconciler().status().models.first?.health == .degraded)
        project.environment(Self.pin(old))  // the rollback: pin the old version again
        #expect(try project.reconciler().reconcile().wasInSync)
        let status = try project.reconciler().status().models.first
        #expect(status?.health == .healthy && status?.sync == .synced)
    }
}
