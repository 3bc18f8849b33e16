import Foundation
import StagecraftCommands
import StagecraftTesting
import Testing

/// The operator's view, in-process: envs, status in pipeline order, describe (of a Degraded model too).
@Suite struct OperatorCommandTests {
    init() { setenv("STAGECRAFT_EXECUTABLE", Fixtures.stagecraftBinary, 1) }

    @Test func envsListsThePipelineInOrder() async throws {
        let scratch = try ScratchRepository.example()
        let ports = try scratch.useFreePorts()
        let prod = try scratch.directory.read("environments/prod.yaml")
        try scratch.commit(["environments/prod.yaml": prod.replacingOccurrences(
            of: "  upstream: qa\n", with: "  upstream: qa\n  approval: {approvers: [ada@example.com, bob@example.com]}\n")])
        let envs = await Stagecraft.execute(["envs", "--repo", scratch.path])
        #expect(envs.exitCode == 0)
        let lines = envs.output.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
        #expect(lines == [
            "ENVIRONMENT UPSTREAM URL SERVER TRACK APPROVAL PINNED",
            "dev - http://127.0.0.1:\(ports["dev"]!) stopped yes - 0/2",
            "qa dev http://127.0.0.1:\(ports["qa"]!) stopped no - 0/2",
            "prod qa http://127.0.0.1:\(ports["prod"]!) stopped no 1 of ada@example.com, bob@example.com 0/2",
        ])
        let json = await Stagecraft.execute(["envs", "--repo", scratch.path, "--output", "json"])
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [[String: Any]])
        #expect(rows.compactMap { $0["name"] as? String } == ["dev", "qa", "prod"])
        #expect((rows[2]["approval"] as? [String: Any])?["count"] as? Int == 1)
        // status lists environments in the same order, not alphabetically.
        let status = await Stagecraft.execute(["status", "--repo", scratch.path])
        let environments = status.output.split(separator: "\n").dropFirst().map { String($0.prefix { $0 != " " }) }
        #expect(environments == ["dev", "dev", "qa", "qa", "prod", "prod"])
    }

    @Test func describeOfADegradedModelNamesTheFailedGateAndItsValue() async throws {
        let scratch = try ScratchRepository.example()
        try scratch.useFreePorts()
        defer { scratch.stopServers() }
        let repo = ["--repo", scratch.path]
        #expect(await Stagecraft.execute(["reconcile", "--env", "dev"] + repo).exitCode == 0)
        #expect(await Stagecraft.execute(["promote", "breast-cancer", "--to", "qa"] + repo).exitCode == 0)
        #expect(await Stagecraft.execute(["reconcile", "--env", "qa"] + repo).exitCode == 0)
        // A new build of breast-cancer, pinned in qa under a gate it cannot meet: qa keeps serving the old one.
        let manifest = try scratch.directory.read("manifests/breast-cancer.yaml")
        try scratch.commit(["manifests/breast-cancer.yaml": manifest.replacingOccurrences(of: "seed: 42", with: "seed: 7")])
        let built = await Stagecraft.execute(["build", "breast-cancer", "--output", "json"] + repo)
        let digest = try #require((try JSONSerialization.jsonObject(with: Data(built.output.utf8)) as? [String: Any])?["digest"] as? String)
        let serving = try #require(try scratch.directory.read("environments/qa.yaml").components(separatedBy: "breast-cancer:\n      version: ")
            .last?.prefix(12))
        let source = try scratch.gitLine(["rev-parse", "HEAD"])
        try scratch.setPin("breast-cancer", version: digest, source: source, in: "qa")
        let qa = try scratch.directory.read("environments/qa.yaml")
        try scratch.commit(["environments/qa.yaml": qa.replacingOccurrences(of: "accuracy: \">= 0.90\"", with: "accuracy: \">= 0.999\"")])
        let failed = await Stagecraft.execute(["reconcile", "--env", "qa"] + repo)
        #expect(failed.exitCode == 1)

        let described = await Stagecraft.execute(["describe", "breast-cancer", "--env", "qa"] + repo)
        #expect(described.exitCode == 0, "\(described.errorOutput)")
        let lines = described.output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.contains("Desired:      \(digest.prefix(12)) from \(source.prefix(12))"))
        #expect(lines.contains { $0.hasPrefix("Serving:      \(serving) 100% (source ") })
        #expect(lines.contains("Status:       OutOfSync, Degraded"))
        let reason = try #require(lines.first { $0.hasPrefix("Reason:       ") })
        #expect(reason.contains("gate failed: accuracy >= 0.999 (measured 0.9"), "\(reason)")
        #expect(lines.contains("Gates (last measured on \(digest.prefix(12))):"))
        let gate = try #require(lines.first { $0.hasPrefix("  accuracy >= 0.999 ") })
        #expect(gate.hasSuffix("FAILED") && gate.contains(" 0.9"))
        #expect(lines.contains { $0.hasPrefix("Server:       http://127.0.0.1:") && $0.contains(", running (pid ") })
        #expect(lines.contains("Lock:         free"))
        #expect(lines.contains("Loaded:       \(serving)"))

        let json = await Stagecraft.execute(["describe", "breast-cancer", "--env", "qa", "--output", "json"] + repo)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
        #expect(object["health"] as? String == "Degraded" && object["lastOutcome"] as? String == "failed")
        let whole = await Stagecraft.execute(["describe", "env", "qa"] + repo)
        #expect(whole.output.components(separatedBy: "\nModel:        ").count == 3)

        let unknown = await Stagecraft.execute(["describe", "penguin", "--env", "qa"] + repo)
        #expect(unknown.exitCode == 1)
        #expect(unknown.errorOutput == "error: 'qa' has no model 'penguin'; did you mean 'penguins'? (models: breast-cancer, penguins)\n")
        let usage = await Stagecraft.execute(["describe", "penguins"] + repo)
        #expect(usage.exitCode == 64)
        #expect(usage.errorOutput.hasPrefix("Error: describe MODEL needs --env ENV (or: describe env ENV)\n"))
    }
}
