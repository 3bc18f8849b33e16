import Foundation
import LoopbackHTTP
import StagecraftTesting
import Testing

/// The GitOps loop through the real binary on real temporary repositories, checked with the git CLI and curl.
@Suite(.serialized)
struct GitOpsLoopTests {
    /// A worse breast-cancer version: two features, no search (holdout accuracy 0.90, auc 0.968).
    static func makeWorseBreastCancer(_ scratch: ScratchRepository) throws {
        var text = try scratch.directory.read("manifests/breast-cancer.yaml")
        text = text.replacingOccurrences(of: "  # No features list: every other column is an input, types inferred (all 30 are numeric).\n",
                                         with: "  features:\n    - {name: mean_radius, type: numeric}\n    - {name: mean_texture, type: numeric}\n")
        text = text.replacingOccurrences(of: "    search: {folds: 5, metric: auc, grid: {l2: [0.001, 0.01, 0.1, 1.0]}}\n", with: "")
        try scratch.commit(["manifests/breast-cancer.yaml": text], message: "breast-cancer: two features only")
    }

    static func json(_ text: String) -> Any? { try? JSONSerialization.jsonObject(with: Data(text.utf8)) }

    static func inferBody() throws -> String {
        let header = try String(contentsOfFile: Fixtures.packageRoot + "/data/breast-cancer/test.csv", encoding: .utf8).split(separator: "\n")
        let names = header[0].split(separator: ","), values = header[1].split(separator: ",")
        let inputs = zip(names, values).filter { $0.0 != "diagnosis" }.map { #"{"name":"\#($0.0)","datatype":"FP64","shape":[1],"data":[\#($0.1)]}"# }
        return #"{"id":"e2e","inputs":[\#(inputs.joined(separator: ","))]}"#
    }

    /// curl's answer from a model's default route: (model_version, Stagecraft-Source header).
    static func curlVersion(port: Int, model: String = "breast-cancer") throws -> (version: String?, source: String?) {
        let output = try ProcessRunner.run("curl", ["-s", "-i", "-X", "POST", "-H", "Content-Type: application/json",
                                                    "--data-binary", try inferBody(), "http://127.0.0.1:\(port)/v2/models/\(model)/infer"])
        let parts = output.stdout.components(separatedBy: "\r\n\r\n")
        let source = parts.first?.components(separatedBy: "\r\n").first { $0.lowercased().hasPrefix("stagecraft-source:") }
            .map { $0.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces) }
        let body = json(parts.dropFirst().joined()) as? [String: Any]
        return (body?["model_version"] as? String, source)
    }

    @Test func initReconcilePromoteFailRollbackAndAudit() throws {
        let scratch = try ScratchRepository.example()
        let ports = try scratch.useFreePorts()
        defer { scratch.stopServers() }
        try Self.walkthrough(scratch, ports: ports) {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: scratch.directory.appending(".stagecraft/state.db" + suffix)) }
        }
    }

    /// The README's walkthrough; `dropState` empties the state store (step 7 rebuilds it from the notes).
    static func walkthrough(_ scratch: ScratchRepository, ports: [String: Int], dropState: () throws -> Void) throws {

        // 1. reconcile dev: track builds both models at main's head and promotes them by commits from `stagecraft`.
        let dev = try scratch.stagecraft(["reconcile", "--env", "dev"])
        #expect(dev.status == 0, "\(dev.stderr)\(dev.stdout)")
        #expect(try scratch.gitLine(["log", "-2", "--format=%an"]) == "stagecraft\nstagecraft")
        let autoPromotion = try scratch.git(["log", "-1", "--format=%B"])
        #expect(autoPromotion.contains("Stagecraft-To: dev") && autoPromotion.contains("Stagecraft-Evidence: build holdout:"))
        #expect(try scratch.stagecraft(["plan", "--env", "dev"]).status == 0)

        // 2. promote to qa: one commit changing exactly the two scalars, comments kept, trailers with dev's evidence.
        let before = try scratch.directory.read("environments/qa.yaml")
        let promote = try scratch.stagecraft(["promote", "breast-cancer", "--to", "qa", "--output", "json"])
        #expect(promote.status == 0, "\(promote.stderr)")
        let promotion = try #require(Self.json(promote.stdout) as? [String: Any])
        let v1 = try #require(promotion["version"] as? String)
        #expect(try scratch.gitLine(["diff", "--numstat", "HEAD~1", "HEAD"]) == "2\t2\tenvironments/qa.yaml")
        let after = try scratch.directory.read("environments/qa.yaml")
        #expect(after.contains("# for every model here; a model may override"))
        #expect(before.components(separatedBy: "\n").count == after.components(separatedBy: "\n").count)
        let message = try scratch.git(["log", "-1", "--format=%B"])
        for trailer in ["Stagecraft-Model: breast-cancer", "Stagecraft-Version: \(v1)", "Stagecraft-From: dev", "Stagecraft-To: qa", "Stagecraft-Evidence: dev passed accuracy >= 0.85"] {
            #expect(message.contains(trailer), "\(trailer) missing in:\n\(message)")
        }
        #expect(try scratch.gitLine(["log", "-1", "--format=%an"]) == "Test Author")

        // 3. reconcile qa; curl gets the promoted version.
        let qa = try scratch.stagecraft(["reconcile", "--env", "qa", "--junit", scratch.directory.appending("gates.xml")])
        #expect(qa.status == 0, "\(qa.stderr)\(qa.stdout)")
        let answer = try Self.curlVersion(port: ports["qa"]!)
        #expect(answer.version == v1)
        #expect(answer.source?.count == 40)
        let junit = try scratch.directory.read("gates.xml")
        #expect(junit.contains(#"name="breast-cancer \#(v1.prefix(12)): auc &gt;= 0.97""#) && junit.contains(#"failures="0""#))

        // 4. a worse version reaches dev; qa's gate is tightened; promoting it to qa fails there and v1 keeps serving.
        try Self.makeWorseBreastCancer(scratch)
        #expect(try scratch.stagecraft(["reconcile", "--env", "dev"]).status == 0)
        let qaText = try scratch.directory.read("environments/qa.yaml")
        try scratch.commit(["environments/qa.yaml": qaText.replacingOccurrences(of: #"gates: {auc: ">= 0.97"}"#, with: #"gates: {auc: ">= 0.99"}"#)],
                           message: "qa: breast-cancer needs auc >= 0.99")
        let promote2 = try scratch.stagecraft(["promote", "breast-cancer", "--to", "qa", "--output", "json"])
        #expect(promote2.status == 0, "\(promote2.stderr)")
        let v2 = try #require((Self.json(promote2.stdout) as? [String: Any])?["version"] as? String)
        #expect(v2 != v1)
        let failing = try scratch.stagecraft(["reconcile", "--env", "qa", "--junit", scratch.directory.appending("gates.xml")])
        #expect(failing.status == 1)
        #expect(failing.stdout.contains("gate failed: auc >= 0.99 (measured 0.9678)"), "\(failing.stdout)")
        #expect(try Self.curlVersion(port: ports["qa"]!).version == v1)
        #expect(try scratch.directory.read("gates.xml").contains(#"<failure message="auc &gt;= 0.99 not met: measured 0.9678"/>"#))
        let status = try scratch.stagecraft(["status", "--env", "qa", "--check"])
        #expect(status.status == 2)
        #expect(status.stdout.contains("OutOfSync") && status.stdout.contains("Degraded"))
        // The version that failed in qa is refused for prod (qa's downstream) without --force.
        let refused = try scratch.stagecraft(["promote", "breast-cancer", "--to", "prod", "--version", String(v2.prefix(12))])
        #expect(refused.status == 1 && refused.stderr.contains("its verification in 'qa' failed"), "\(refused.stderr)")

        // 5. rollback pins v1 again by a commit naming what it took out; reconcile is then in sync.
        let rollback = try scratch.stagecraft(["rollback", "breast-cancer", "--env", "qa"])
        #expect(rollback.status == 0, "\(rollback.stderr)")
        #expect(try scratch.git(["log", "-1", "--format=%B"]).contains("Stagecraft-Rollback-Of: \(v2)"))
        #expect(try scratch.stagecraft(["reconcile", "--env", "qa"]).status == 0)
        #expect(try scratch.stagecraft(["status", "--env", "qa", "--check"]).status == 0)

        // 6. history: every change to qa, newest first, as `git log` lists them, joined with the records.
        let history = try scratch.stagecraft(["history", "--env", "qa", "--output", "json"])
        #expect(history.status == 0, "\(history.stderr)")
        let entries = try #require(Self.json(history.stdout) as? [[String: Any]])
        let gitLog = try scratch.gitLine(["log", "--format=%H", "--", "environments/qa.yaml"]).split(separator: "\n").map(String.init)
        #expect(entries.compactMap { $0["commit"] as? String } == gitLog)
        let records = entries.flatMap { $0["records"] as? [[String: Any]] ?? [] }
        #expect(records.compactMap { $0["outcome"] as? String }.sorted() == ["failed", "succeeded"])
        let failed = try #require(records.first { $0["outcome"] as? String == "failed" })
        #expect(failed["version"] as? String == v2)
        #expect(failed["actor"] as? String == "Test Author")
        let failedGates = failed["gates"] as? [[String: Any]] ?? []
        #expect(failedGates.contains { $0["gate"] as? String == "auc >= 0.99" && $0["passed"] as? Bool == false && ($0["value"] as? Double).map { abs($0 - 0.9678) < 1e-4 } == true })
        let served = try #require(entries.first { ($0["records"] as? [[String: Any]])?.first?["outcome"] as? String == "succeeded" })
        #expect((served["commitToServingSeconds"] as? Double).map { $0 >= 0 && $0 < 60 } == true)

        // The git notes hold the same records, on the environment-file commits; git reads them.
        for record in records {
            let commit = try #require(entries.first { ($0["records"] as? [[String: Any]] ?? []).contains { $0["id"] as? String == record["id"] as? String } }?["commit"] as? String)
            let note = try scratch.git(["notes", "--ref", "stagecraft", "show", commit])
            #expect(note.contains(record["id"] as! String))
        }
        let allHistory = try scratch.stagecraft(["history", "--output", "json"]).stdout

        // 7. without the state store, history rebuilds the same records from the notes.
        try dropState()
        let rebuilt = try scratch.stagecraft(["history", "--output", "json"])
        #expect(rebuilt.status == 0)
        #expect(rebuilt.stdout == allHistory)
        if rebuilt.stdout != allHistory {
            try allHistory.write(toFile: "/tmp/history-db.json", atomically: true, encoding: .utf8)
            try rebuilt.stdout.write(toFile: "/tmp/history-notes.json", atomically: true, encoding: .utf8)
        }
    }
}
