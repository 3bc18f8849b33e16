import Foundation
import StagecraftCommands
import StagecraftTesting
import Testing

/// The operator's view, in-process: envs, status in pipeline order, describe (of a Degraded model too).
@Suite struct OperatorCommandTests {
    init() { setenv("STAGECRAFT_EXECUTABLE", Fixtures.stagecraftBinary, 1) }

    /// The `version` and `source` of `model` in an environment file (12 digits each; comments after them left out).
    static func pin(_ model: String, in scratch: ScratchRepository, environment: String) throws -> (version: String, source: String) {
        let lines = try scratch.directory.read("environments/\(environment).yaml").split(separator: "\n").map(String.init)
        let entry = try #require(lines.firstIndex(of: "    \(model):"))
        func value(_ line: String) -> String { String(line.split(separator: ":", maxSplits: 1)[1].drop { $0 == " " }.prefix(12)) }
        return (value(lines[entry + 1]), value(lines[entry + 2]))
    }

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
        let digest = try await builtDigest("breast-cancer", in: scratch)
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

    @Test func aliasesDiffsAndCompareWhereverAVersionIs() async throws {
        let scratch = try ScratchRepository.example()
        let ports = try scratch.useFreePorts()
        defer { scratch.stopServers() }
        let repo = ["--repo", scratch.path]
        #expect(await Stagecraft.execute(["reconcile", "--env", "dev"] + repo).exitCode == 0)
        let (first, source) = try Self.pin("breast-cancer", in: scratch, environment: "dev")
        let penguins = try Self.pin("penguins", in: scratch, environment: "dev").version

        // An alias, listed, and refused when malformed.
        let tagged = await Stagecraft.execute(["tag", first, "champion"] + repo)
        #expect(tagged.exitCode == 0, "\(tagged.errorOutput)")
        #expect(tagged.output == "✓ @champion is breast-cancer \(first) (tag stagecraft/breast-cancer/champion on \(source))\n")
        #expect(try scratch.gitLine(["cat-file", "-t", "stagecraft/breast-cancer/champion"]) == "tag")
        let listed = await Stagecraft.execute(["tag"] + repo)
        #expect(listed.output == "MODEL          ALIAS      VERSION\nbreast-cancer  @champion  \(first)\n")
        let bad = await Stagecraft.execute(["tag", first, "Champion!"] + repo)
        #expect(bad.exitCode == 64)
        #expect(bad.errorOutput.hasPrefix("Error: 'Champion!' is not an alias: 1 to 63 of a-z, 0-9, '.', '_' and '-', a letter or digit first\n"))
        let unknown = await Stagecraft.execute(["promote", "breast-cancer", "--to", "qa", "--version", "@challenger"] + repo)
        #expect(unknown.exitCode == 1)
        #expect(unknown.errorOutput == "error: no alias @challenger of 'breast-cancer' (aliases: @champion); name a version with: stagecraft "
            + "tag VERSION challenger\n")

        // diff --env: the file against what serves (equal), and two environments (different).
        let same = await Stagecraft.execute(["diff", "--env", "dev"] + repo)
        #expect(same.exitCode == 0)
        let head = String(try scratch.gitLine(["rev-parse", "HEAD"]).prefix(12))
        #expect(same.output == "--- environments/dev.yaml at \(head)\n+++ serving in dev (127.0.0.1:\(ports["dev"]!), running)\n"
            + "  breast-cancer  \(first)  \(first)\n  penguins       \(penguins)  \(penguins)\nno difference\n")
        let sides = await Stagecraft.execute(["diff", "--env", "dev", "--env", "qa"] + repo)
        #expect(sides.exitCode == 1)
        #expect(sides.output.contains("\n≠ breast-cancer        \(first)"))
        #expect(sides.output.contains("\n≠ breast-cancer gates  accuracy >= 0.85, latencyP99Ms <= 5000  accuracy >= 0.9, auc >= 0.97, "
            + "latencyP99Ms <= 5000\n"), "\(sides.output)")

        // promote --version @champion.
        let promoted = await Stagecraft.execute(["promote", "breast-cancer", "--to", "qa", "--version", "@champion"] + repo)
        #expect(promoted.exitCode == 0, "\(promoted.errorOutput)")
        #expect(try Self.pin("breast-cancer", in: scratch, environment: "qa").version == first)

        // A second build: diff and builds compare name what differs; the file now differs from what serves.
        let manifest = try scratch.directory.read("manifests/breast-cancer.yaml")
        try scratch.commit(["manifests/breast-cancer.yaml": manifest.replacingOccurrences(of: "seed: 42", with: "seed: 7")])
        let reconciled = await Stagecraft.execute(["reconcile", "--env", "dev"] + repo)
        #expect(reconciled.exitCode == 0, "\(reconciled.errorOutput)")
        let second = try Self.pin("breast-cancer", in: scratch, environment: "dev").version
        #expect(second != first)
        let versions = await Stagecraft.execute(["diff", "@champion", second] + repo)
        #expect(versions.exitCode == 1)
        let lines = versions.output.split(separator: "\n").map(String.init)
        #expect(lines.prefix(2) == ["--- \(first) (breast-cancer)", "+++ \(second) (breast-cancer)"])
        #expect(lines.contains { $0.hasPrefix("≠ spec (sha256) ") })
        #expect(lines.contains { $0.hasPrefix("  params.l2 ") && $0.hasSuffix("0.01") })
        #expect(lines.contains { $0.hasPrefix("  data data/breast-cancer/train.csv ") })
        #expect(lines.contains { $0.hasPrefix("≠ runs in ") && $0.hasSuffix("  dev") })
        let compared = await Stagecraft.execute(["builds", "compare", "@champion", second] + repo)
        #expect(compared.exitCode == 1 && compared.output == versions.output)
        #expect(await Stagecraft.execute(["diff", first, "@champion"] + repo).exitCode == 0)

        // rollback --to: an alias, a record id; a version that never passed there is refused.
        let rolled = await Stagecraft.execute(["rollback", "breast-cancer", "--env", "dev", "--to", "@champion"] + repo)
        #expect(rolled.exitCode == 0, "\(rolled.errorOutput)")
        #expect(try Self.pin("breast-cancer", in: scratch, environment: "dev").version == first)
        #expect(try scratch.git(["log", "-1", "--format=%(trailers)"]).contains("Stagecraft-Rollback-Of: "))
        let state = await Stagecraft.execute(["history", "--env", "dev", "--model", "breast-cancer", "--output", "json"] + repo)
        #expect(state.exitCode == 0)
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(state.output.utf8)) as? [[String: Any]])
        let records = entries.flatMap { ($0["records"] as? [[String: Any]]) ?? [] }
        let id = try #require(records.first {
            ($0["version"] as? String)?.hasPrefix(second) == true && $0["outcome"] as? String == "succeeded"
        }?["id"] as? String)
        let byRecord = await Stagecraft.execute(["rollback", "breast-cancer", "--env", "dev", "--to", id] + repo)
        #expect(byRecord.exitCode == 0, "\(byRecord.errorOutput)")
        #expect(try Self.pin("breast-cancer", in: scratch, environment: "dev").version == second)
        let never = await Stagecraft.execute(["rollback", "penguins", "--env", "dev", "--to", second] + repo)
        #expect(never.exitCode == 1)
        let usage = await Stagecraft.execute(["rollback", "penguins", "--env", "dev", "--to", "yesterday"] + repo)
        #expect(usage.exitCode == 64)
        #expect(usage.errorOutput == "error: 'yesterday' is not a version: give a digest (12 or more hex digits), @alias, or a deployment "
            + "record's id\n")
        let diffUsage = await Stagecraft.execute(["diff", first] + repo)
        #expect(diffUsage.exitCode == 64)
    }

    @Test func logsShowTheServerLogAndAnAccessLogOfInferRequests() async throws {
        let scratch = try ScratchRepository.example()
        let ports = try scratch.useFreePorts()
        defer { scratch.stopServers() }
        let repo = ["--repo", scratch.path]
        let none = await Stagecraft.execute(["logs", "--env", "dev"] + repo)
        #expect(none.exitCode == 1)
        #expect(none.errorOutput == "error: no log for 'dev' yet (\(scratch.directory.appending(".stagecraft/run/dev.log"))); its server "
            + "writes it once started: stagecraft reconcile --env dev\n")
        #expect(await Stagecraft.execute(["reconcile", "--env", "dev"] + repo).exitCode == 0)
        // A follower started now sees the requests that come next.
        let follower = try BackgroundProcess(Fixtures.stagecraftBinary, ["logs", "--env", "dev", "--access", "--follow"], in: scratch.path)
        defer { follower.stop() }
        let connection = try HTTPConnectionForTests(port: ports["dev"]!)
        for index in 0..<3 {
            let numbers = [("bill_length_mm", 40.1), ("bill_depth_mm", 18.2), ("flipper_length_mm", 190.0), ("body_mass_g", 3800.0)]
                .map { #"{"name": "\#($0.0)", "shape": [1], "datatype": "FP64", "data": [\#($0.1)]}"# }
            let text = [("island", "Dream"), ("sex", "male")]
                .map { #"{"name": "\#($0.0)", "shape": [1], "datatype": "BYTES", "data": ["\#($0.1)"]}"# }
            let body = #"{"id": "request-\#(index)", "inputs": ["# + (numbers + text).joined(separator: ", ") + "]}"
            let answer = try connection.post("/v2/models/penguins/infer", body: body)
            #expect(answer.contains("\"id\":\"request-\(index)\""), "\(answer)")
        }
        usleep(1_000_000)
        let access = await Stagecraft.execute(["logs", "--env", "dev", "--access"] + repo)
        let lines = access.output.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let asked = lines.filter { ($0["id"] as? String)?.hasPrefix("request-") == true }
        #expect(asked.map { $0["id"] as? String } == ["request-0", "request-1", "request-2"])
        #expect(asked.allSatisfy { $0["model"] as? String == "penguins" && $0["status"] as? Int == 200 && $0["protocol"] as? String == "http"
            && ($0["latencyMs"] as? Double).map { $0 > 0 } == true && ($0["version"] as? String)?.count == 64 && $0["time"] is String })
        #expect(follower.log.contains("\"id\":\"request-2\""), "\(follower.log)")
        // reconcile's verification probes are there too, marked as such; live requests are not.
        #expect(lines.contains { $0["probe"] as? Bool == true && ($0["id"] as? String)?.hasPrefix("verify-") == true })
        #expect(asked.allSatisfy { $0["probe"] == nil })
        follower.stop()
        #expect(!follower.process.isRunning)
        // The server's own log, and --since.
        let server = await Stagecraft.execute(["logs", "--env", "dev"] + repo)
        #expect(server.output.contains("\"message\":\"serving\""))
        usleep(1_200_000)
        let recent = await Stagecraft.execute(["logs", "--env", "dev", "--access", "--since", "1s"] + repo)
        #expect(recent.exitCode == 0 && recent.output.isEmpty, "\(recent.output)")
        let bad = await Stagecraft.execute(["logs", "--env", "dev", "--since", "lately"] + repo)
        #expect(bad.exitCode == 64)
    }
}

extension OperatorCommandTests {
    @Test func statusWideAndWatch() async throws {
        let scratch = try ScratchRepository.example()
        let ports = try scratch.useFreePorts()
        defer { scratch.stopServers() }
        let repo = ["--repo", scratch.path]
        #expect(await Stagecraft.execute(["reconcile", "--env", "dev"] + repo).exitCode == 0)
        let (version, _) = try Self.pin("breast-cancer", in: scratch, environment: "dev")
        let wide = await Stagecraft.execute(["status", "-o", "wide"] + repo)
        let lines = wide.output.split(separator: "\n").map(String.init)
        #expect(lines[0].hasSuffix("  CHANGED                   SERVER"), "\(lines[0])")
        let row = try #require(lines.first { $0.hasPrefix("dev          breast-cancer") })
        #expect(row.contains(" \(version)") && row.range(of: #" [0-9a-f]{64} "#, options: .regularExpression) != nil, "\(row)")
        #expect(row.hasSuffix("127.0.0.1:\(ports["dev"]!), running"))
        #expect(lines.contains { $0.hasPrefix("prod ") && $0.hasSuffix("127.0.0.1:\(ports["prod"]!), not running") })
        let json = await Stagecraft.execute(["status", "--watch", "-o", "json"] + repo)
        #expect(json.exitCode == 64)
        #expect(json.errorOutput.hasPrefix("Error: --watch redraws a table: use -o text or -o wide\n"))
        // --watch redraws until interrupted (off a terminal: one table after another).
        let watcher = try BackgroundProcess(Fixtures.stagecraftBinary, ["status", "--watch", "--interval", "300ms"], in: scratch.path)
        usleep(1_500_000)
        watcher.stop()
        #expect(watcher.log.components(separatedBy: "Every 300ms: stagecraft status  ").count >= 3, "\(watcher.log)")
        #expect(watcher.log.components(separatedBy: "\ndev          breast-cancer  ").count >= 3)
        #expect(!watcher.process.isRunning && watcher.process.terminationStatus == 0)
    }
}

extension OperatorCommandTests {
    @Test func approveAndRejectInProcess() async throws {
        let scratch = try ScratchRepository.example()
        let repo = ["--repo", scratch.path]
        let qa = try scratch.directory.read("environments/qa.yaml")
        try scratch.commit(["environments/qa.yaml": qa.replacingOccurrences(
            of: "  upstream: dev\n", with: "  upstream: dev\n  approval: {approvers: [ada@example.com, bob@example.com], count: 2}\n")])
        let digest = try await builtDigest("penguins", in: scratch)
        let short = String(digest.prefix(12))
        func be(_ name: String) throws {
            try scratch.git(["config", "user.name", name])
            try scratch.git(["config", "user.email", "\(name.lowercased())@example.com"])
        }
        try be("Carol")
        let promoted = await Stagecraft.execute(["promote", "penguins", "--to", "qa", "--version", short, "--force"] + repo)
        #expect(promoted.exitCode == 0, "\(promoted.errorOutput)")
        #expect(promoted.output.hasPrefix("✓ promoted penguins \(short) to qa (forced), waiting for approval: commit "))
        try be("Ada")
        let first = await Stagecraft.execute(["approve", "penguins", "--env", "qa"] + repo)
        #expect(first.exitCode == 0)
        #expect(first.output == "✓ approved penguins \(short) for qa as Ada <ada@example.com>: 1 of 2; 1 more needed\n")
        let again = await Stagecraft.execute(["approve", "penguins", "--env", "qa"] + repo)
        #expect(again.exitCode == 1)
        #expect(again.errorOutput == "error: Ada <ada@example.com> has already approved \(short) of 'penguins'\n")
        let listed = await Stagecraft.execute(["approve", "--env", "qa"] + repo)
        #expect(listed.output == "penguins \(short) promoted by Carol <carol@example.com>: 1 of 2 approval(s) (Ada <ada@example.com>) on "
            + "stagecraft/promote/qa/penguins/\(short)\n")
        try be("Bob")
        let rejected = await Stagecraft.execute(["reject", "penguins", "--env", "qa", "--reason", "not this week"] + repo)
        #expect(rejected.exitCode == 0)
        #expect(rejected.output == "✓ rejected penguins \(short) for qa (promoted by Carol <carol@example.com>): not this week\n")
        let empty = await Stagecraft.execute(["approve", "--env", "qa"] + repo)
        #expect(empty.output == "no promotion to qa waits for approval\n")
        try be("Dave")
        #expect(await Stagecraft.execute(["promote", "penguins", "--to", "qa", "--version", short, "--force"] + repo).exitCode == 0)
        let outsider = await Stagecraft.execute(["reject", "penguins", "--env", "qa", "--reason", "no"] + repo)
        #expect(outsider.exitCode == 0, "the promoter may withdraw it")
        let blank = await Stagecraft.execute(["reject", "penguins", "--env", "qa", "--reason", " "] + repo)
        #expect(blank.exitCode == 64)
    }
}

extension OperatorCommandTests {
    @Test func aServerStartedByHandWritesItsAccessLogToo() async throws {
        let scratch = try ScratchRepository.example()
        let digest = try await builtDigest("breast-cancer", in: scratch)
        try scratch.pin("breast-cancer", version: digest)
        #expect(!FileManager.default.fileExists(atPath: scratch.directory.appending(".stagecraft/run")))
        let port = try Loopback.freePort()
        let server = try BackgroundProcess(Fixtures.stagecraftBinary, ["serve", "--env", "dev", "--port", "\(port)"], in: scratch.path)
        defer { server.stop() }
        try Loopback.waitForListener(port: port)
        _ = try HTTPConnectionForTests(port: port).post("/v2/models/breast-cancer/infer", body: #"{"id": "by-hand", "inputs": []}"#)
        usleep(600_000)
        let logged = try scratch.directory.read(".stagecraft/run/dev.access.log")
        #expect(logged.contains("\"status\":400,") && logged.contains("\"id\":\"by-hand\""), "\(logged)")
    }
}

/// A keep-alive HTTP/1.1 connection to a test server on 127.0.0.1.
struct HTTPConnectionForTests {
    let port: Int
    init(port: Int) throws { self.port = port }

    func post(_ path: String, body: String) throws -> String {
        let run = try ProcessRunner.run("curl", ["-sS", "--max-time", "10", "-d", body, "http://127.0.0.1:\(port)\(path)"])
        return run.stdout
    }
}
