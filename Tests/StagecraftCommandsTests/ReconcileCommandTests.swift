import Foundation
import StagecraftCommands
import StagecraftTesting
import Testing

/// plan, reconcile, status and history run in-process; the servers they start are the real binary.
@Suite(.serialized) struct ReconcileCommandTests {
    init() { setenv("STAGECRAFT_EXECUTABLE", Fixtures.stagecraftBinary, 1) }

    func json(_ text: String) -> Any? { try? JSONSerialization.jsonObject(with: Data(text.utf8)) }

    @Test func planThenReconcileThenInSync() async throws {
        let scratch = try ScratchRepository.example()
        try scratch.useFreePorts()
        defer { scratch.stopServers() }
        let repo = ["--repo", scratch.path]

        let plan = await Stagecraft.execute(["plan", "--env", "dev", "--output", "json"] + repo)
        #expect(plan.exitCode == 2, "\(plan.errorOutput)")
        let actions = ((json(plan.output) as? [String: Any])?["plan"] as? [String: Any])?["actions"] as? [[String: Any]] ?? []
        #expect(actions.compactMap { $0["kind"] as? String } == ["start-server", "promote", "promote", "verify", "switch", "verify", "switch"])
        #expect(try scratch.gitLine(["rev-list", "--count", "HEAD"]) == "2", "plan must not commit")

        let text = await Stagecraft.execute(["plan", "--env", "dev"] + repo)
        #expect(text.output.contains("  + start-server: 127.0.0.1:"))
        #expect(text.output.contains("7 actions; apply with: stagecraft reconcile --env dev"))

        let reconcile = await Stagecraft.execute(["reconcile", "--env", "dev", "--output", "json"] + repo)
        #expect(reconcile.exitCode == 0, "\(reconcile.errorOutput)")
        let report = try #require(json(reconcile.output) as? [String: Any])
        #expect((report["promotions"] as? [Any])?.count == 2)
        #expect((report["records"] as? [[String: Any]])?.compactMap { $0["outcome"] as? String } == ["succeeded", "succeeded"])

        #expect(await Stagecraft.execute(["plan", "--env", "dev"] + repo).exitCode == 0)
        let again = await Stagecraft.execute(["reconcile", "--env", "dev"] + repo)
        #expect(again.exitCode == 0 && again.output.contains("dev is in sync at"))

        let status = await Stagecraft.execute(["status", "--check", "--output", "json"] + repo)
        #expect(status.exitCode == 0, "\(status.output)")
        let rows = json(status.output) as? [[String: Any]] ?? []
        #expect(rows.count == 6)
        #expect(rows.filter { $0["environment"] as? String == "dev" }.allSatisfy { $0["health"] as? String == "Healthy" && $0["sync"] as? String == "Synced" })

        let history = await Stagecraft.execute(["history", "--env", "dev", "--model", "penguins", "--output", "json"] + repo)
        let entries = json(history.output) as? [[String: Any]] ?? []
        #expect(entries.count == 1)
        #expect((entries.first?["records"] as? [[String: Any]])?.first?["model"] as? String == "penguins")
        let none = await Stagecraft.execute(["history", "--env", "qa", "--since", "2999-01-01"] + repo)
        #expect(none.output.hasPrefix("no changes to environments/qa.yaml"))
    }

    @Test func anOnlineGateMeasuredOnTheRealServerCanFail() async throws {
        let scratch = try ScratchRepository.example()
        try scratch.useFreePorts(relaxingLatencyGates: false)
        defer { scratch.stopServers() }
        let dev = try scratch.directory.read("environments/dev.yaml")
        try scratch.commit(["environments/dev.yaml": dev.replacingOccurrences(of: #"latencyP99Ms: "<= 50""#, with: #"latencyP99Ms: "<= 0.001""#)],
                           message: "dev: an impossible latency gate")
        let result = await Stagecraft.execute(["reconcile", "--env", "dev", "--output", "json", "--repo", scratch.path])
        #expect(result.exitCode == 1)
        let records = (json(result.output) as? [String: Any])?["records"] as? [[String: Any]] ?? []
        #expect(records.count == 2 && records.allSatisfy { $0["outcome"] as? String == "failed" })
        let latency = records.first?["gates"].flatMap { ($0 as? [[String: Any]])?.first { $0["metric"] as? String == "latencyP99Ms" } }
        #expect(latency?["passed"] as? Bool == false && (latency?["value"] as? Double ?? 0) > 0.001 && latency?["stage"] as? String == "online")
        #expect((records.first?["reason"] as? String)?.contains("gate failed: latencyP99Ms <= 0.001 (measured ") == true)
        // Nothing serves; the next reconcile tries again (and fails again) without promoting anything new.
        let commits = try scratch.gitLine(["rev-list", "--count", "HEAD"])
        let again = await Stagecraft.execute(["reconcile", "--env", "dev", "--repo", scratch.path])
        #expect(again.exitCode == 1)
        #expect(try scratch.gitLine(["rev-list", "--count", "HEAD"]) == commits)
        let status = await Stagecraft.execute(["status", "--env", "dev", "--check", "--repo", scratch.path])
        #expect(status.exitCode == 2 && status.output.contains("Missing"))
    }

    @Test func theLockHeldMeansExit3WithNoWait() async throws {
        let scratch = try ScratchRepository.example()
        try FileManager.default.createDirectory(atPath: scratch.directory.appending(".stagecraft/run"), withIntermediateDirectories: true)
        let holder = try BackgroundProcess("flock", [scratch.directory.appending(".stagecraft/run/qa.lock"), "sleep", "30"])
        defer { holder.stop() }
        usleep(300_000)
        let result = await Stagecraft.execute(["reconcile", "--env", "qa", "--no-wait", "--repo", scratch.path])
        #expect(result.exitCode == 3)
        #expect(result.errorOutput.contains("another reconcile of 'qa' is running"))
    }

    @Test func mistakesAreExplained() async throws {
        let scratch = try ScratchRepository.example()
        let unknown = await Stagecraft.execute(["plan", "--env", "staging", "--repo", scratch.path])
        #expect(unknown.exitCode == 64)
        #expect(unknown.errorOutput.contains("no environment 'staging'") && unknown.errorOutput.contains("environments: dev.yaml") == false)
        #expect(unknown.errorOutput.contains("environments: dev, prod, qa"))
        let interval = await Stagecraft.execute(["reconcile", "--env", "dev", "--watch", "--interval", "soon", "--repo", scratch.path])
        #expect(interval.exitCode == 64)
        #expect(interval.errorOutput.contains("'soon' is not a duration"))
        let since = await Stagecraft.execute(["history", "--since", "last week", "--repo", scratch.path])
        #expect(since.exitCode == 64)
        let rollback = await Stagecraft.execute(["rollback", "penguins", "--env", "qa", "--repo", scratch.path])
        #expect(rollback.exitCode == 1)
        #expect(rollback.errorOutput.contains("'qa' pins no version of 'penguins'"))
        let promote = await Stagecraft.execute(["promote", "penguins", "--to", "dev", "--repo", scratch.path])
        #expect(promote.exitCode == 1)
        #expect(promote.errorOutput.contains("'dev' has no upstream to promote from"))
    }
}
