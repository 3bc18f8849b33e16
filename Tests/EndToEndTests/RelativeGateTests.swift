import Foundation
import StagecraftTesting
import Testing

/// Champion / challenger gates: `auc: ">= serving - 0.005"` re-scores the serving version on the candidate's holdout
/// set; a worse candidate fails with both values in the record and in `history`, a good one passes.
@Suite struct RelativeGateTests {
    @Test func aWorseCandidateFailsAgainstTheServingVersionAndABetterOnePasses() throws {
        let scratch = try ScratchRepository.example()
        let ports = try scratch.useFreePorts()
        defer { scratch.stopServers() }
        let dev = try scratch.directory.read("environments/dev.yaml")
            .replacingOccurrences(of: "    accuracy: \">= 0.85\"\n", with: "    accuracy: \">= 0.85\"\n    auc: \">= serving - 0.005\"\n")
        try scratch.commit(["environments/dev.yaml": dev], message: "dev: no worse than what serves")
        #expect(try scratch.stagecraft(["validate"]).status == 0)

        // Nothing serves yet: the gate passes and says so.
        let first = try scratch.stagecraft(["reconcile", "--env", "dev"])
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        #expect(first.stdout.contains("auc >= serving - 0.005 [1; no other version serves yet: passes]"), "\(first.stdout)")
        let champion = try #require(try GitOpsLoopTests.curlVersion(port: ports["dev"]!).version)

        // A worse challenger (two features): its auc on its holdout is below the champion's on the same rows.
        try GitOpsLoopTests.makeWorseBreastCancer(scratch)
        let worse = try scratch.stagecraft(["reconcile", "--env", "dev"])
        #expect(worse.status == 1)
        #expect(worse.stdout.contains("auc >= serving - 0.005 [0.9678 vs serving \(champion.prefix(12)) 1] FAILED"), "\(worse.stdout)")
        #expect(try GitOpsLoopTests.curlVersion(port: ports["dev"]!).version == champion)
        let history = try scratch.stagecraft(["history", "--env", "dev", "--model", "breast-cancer", "--output", "json"])
        let records = (GitOpsLoopTests.json(history.stdout) as? [[String: Any]] ?? []).flatMap { $0["records"] as? [[String: Any]] ?? [] }
        let failed = try #require(records.first { $0["outcome"] as? String == "failed" })
        let gate = try #require((failed["gates"] as? [[String: Any]])?.first { $0["gate"] as? String == "auc >= serving - 0.005" })
        #expect(gate["serving"] as? Double == 1 && gate["servingVersion"] as? String == champion && gate["passed"] as? Bool == false)
        #expect((gate["value"] as? Double).map { abs($0 - 0.9678) < 1e-4 } == true)
        let text = try scratch.stagecraft(["history", "--env", "dev"]).stdout
        #expect(text.contains("auc >= serving - 0.005 [0.9678 vs serving \(champion.prefix(12)) 1] FAILED"), "\(text)")

        // A challenger as good as the champion on its holdout (all features back, another l2): it passes and serves.
        let manifest = try String(contentsOfFile: Fixtures.packageRoot + "/manifests/breast-cancer.yaml", encoding: .utf8)
        try scratch.commit(
            ["manifests/breast-cancer.yaml": manifest.replacingOccurrences(of: "l2: [0.001, 0.01, 0.1, 1.0]", with: "l2: [0.001, 0.01, 0.1]")],
            message: "breast-cancer: all features, a smaller grid")
        let better = try scratch.stagecraft(["reconcile", "--env", "dev"])
        #expect(better.status == 0, "\(better.stdout)\(better.stderr)")
        #expect(better.stdout.contains("vs serving \(champion.prefix(12)) 1]"), "\(better.stdout)")
    }
}
