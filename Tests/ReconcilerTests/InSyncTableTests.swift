import Foundation
import GitStore
import Reconciler
import Registry
import StagecraftTesting
import Testing

/// `plan`, `status` and `reconcile` agree on "in sync" (the planner's one definition) over a table of situations.
@Suite struct InSyncTableTests {
    struct Situation: CustomStringConvertible, Sendable {
        var name: String
        var inSync: Bool
        var setUp: @Sendable (InMemoryProject) throws -> Void
        var description: String { name }
    }

    static let old = testDigest("old")
    static let canary = testDigest("canary")

    /// qa serves `old` of churn, reconciled.
    static func serveOld(_ project: InMemoryProject, extra: String = "") throws {
        project.builds.add(old, model: "churn")
        project.builds.add(canary, model: "churn")
        project.environment(EngineTests.pin(old, extra: extra))
        let report = try project.reconciler().reconcile()
        #expect(!report.failed)
    }

    static let split = "      traffic:\n        - {version: \(old.prefix(12)), weight: 90}\n"
        + "        - {version: \(canary.prefix(12)), weight: 10}\n"

    static let situations: [Situation] = [
        Situation(name: "nothing pinned, no server", inSync: true) { project in
            project.target.running = false
            project.environment(EngineTests.pin(nil))
        },
        Situation(name: "pinned and served", inSync: true) { try serveOld($0) },
        Situation(name: "pinned, served, server stopped", inSync: false) { project in
            try serveOld(project)
            project.target.running = false
        },
        Situation(name: "pinned, not built", inSync: false) { project in
            project.environment(EngineTests.pin(testDigest("never built")))
        },
        Situation(name: "pin changed to a built version", inSync: false) { project in
            try serveOld(project)
            project.environment(EngineTests.pin(canary))
        },
        Situation(name: "split asked, default routed", inSync: false) { project in
            try serveOld(project)
            project.environment(EngineTests.pin(old, extra: split))
        },
        Situation(name: "split asked and routed", inSync: true) { try serveOld($0, extra: split) },
        Situation(name: "shadow asked, not routed", inSync: false) { project in
            try serveOld(project)
            project.environment(EngineTests.pin(old, extra: "      shadow: {version: \(canary.prefix(12))}\n"))
        },
        Situation(name: "a version loaded that nothing pins", inSync: false) { project in
            try serveOld(project)
            project.target.server.versions["churn"]?.insert(canary)
        },
        Situation(name: "a model routed that is no longer pinned", inSync: false) { project in
            try serveOld(project)
            project.environment("")
        },
        Situation(name: "track: the branch head builds to a new version", inSync: false) { project in
            project.builds.add(old, model: "churn")
            project.environment(EngineTests.pin(old), track: true)
        },
        Situation(name: "track: promoted and served", inSync: true) { project in
            project.environment(EngineTests.pin(nil), track: true)
            let report = try project.reconciler().reconcile()
            #expect(!report.failed)
        },
        Situation(name: "track: the promoted version failed its gates", inSync: false) { project in
            try serveOld(project)
            project.environment(EngineTests.pin(old), track: true)
            let head = try project.git.resolve("main").hex
            project.gates.failingVersions = [project.builds.digest(model: "churn", at: head)]
            let report = try project.reconciler().reconcile()
            #expect(report.failed)
        },
        Situation(name: "a pinned version failed its gates", inSync: false) { project in
            try serveOld(project)
            let head = try project.git.resolve("main").hex
            let bad = project.builds.digest(model: "churn", at: head)
            project.gates.failingVersions = [bad]
            project.environment(EngineTests.pin(bad, source: head))
            let report = try project.reconciler().reconcile()
            #expect(report.failed)
        },
        Situation(name: "rolled back to the serving version", inSync: true) { project in
            try serveOld(project)
            let head = try project.git.resolve("main").hex
            let bad = project.builds.digest(model: "churn", at: head)
            project.gates.failingVersions = [bad]
            project.environment(EngineTests.pin(bad, source: head))
            _ = try project.reconciler().reconcile()
            project.environment(EngineTests.pin(old))
        },
    ]

    @Test(arguments: situations)
    func planStatusAndReconcileAgree(_ situation: Situation) throws {
        let project = InMemoryProject()
        try situation.setUp(project)
        let reconciler = project.reconciler()
        let plan = try reconciler.plan()
        #expect(plan.inSync == situation.inSync, "plan: \(plan.actions.map(\.description))")
        let (_, models) = try reconciler.status()
        let statusInSync = models.allSatisfy { $0.sync == .synced }
        #expect(statusInSync == situation.inSync, "status: \(models.map { "\($0.model) \($0.sync)" })")
        let report = try reconciler.reconcile()
        #expect(report.wasInSync == situation.inSync, "reconcile: \(report.actions.map(\.description))")
        #expect(situation.inSync || report.actions.isEmpty == false)
    }
}
