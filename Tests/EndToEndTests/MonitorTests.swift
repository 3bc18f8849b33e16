import Foundation
import LoopbackHTTP
import StagecraftTesting
import Testing

/// Drift and feedback on a served model, an alarm, a retrain commit, and dev serving the retrained version.
@Suite(.serialized)
struct MonitorTests {
    @Test func driftedTrafficAndWrongLabelsTriggerARetrainThatDevServes() throws {
        let scratch = try ScratchRepository.example()
        let ports = try scratch.useFreePorts()
        defer { scratch.stopServers() }
        // A webhook receiver on 127.0.0.1 that keeps what it is sent.
        let hookPort = try Loopback.freePort()
        let hookFile = scratch.directory.appending("webhook.jsonl")
        let receiver = try BackgroundProcess("python3", ["-c", """
            import http.server, sys
            class H(http.server.BaseHTTPRequestHandler):
                def do_POST(self):
                    body = self.rfile.read(int(self.headers["Content-Length"]))
                    open(sys.argv[2], "ab").write(body + b"\\n")
                    self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
                def log_message(self, *a): pass
            http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
            """, String(hookPort), hookFile])
        defer { receiver.stop() }
        let dev = try scratch.directory.read("environments/dev.yaml")
        try scratch.commit(["environments/dev.yaml": dev.replacingOccurrences(of: "  models:\n", with: """
              monitor:
                window: 200
                psi: "<= 0.25"
                accuracy: ">= 0.9"
                minLabels: 20
                newRows: ">= 50"
                webhook: http://127.0.0.1:\(hookPort)/alerts
              models:

            """)], message: "dev: monitor drift and live accuracy")
        #expect(try scratch.stagecraft(["reconcile", "--env", "dev"]).status == 0)
        let client = try HTTPConnection(port: ports["dev"]!)
        func version() throws -> String? { try client.send("GET", "/v2/models/penguins").json["versions"].flatMap { ($0 as? [String])?.first } }
        let before = try version()

        // Traffic whose bill length is 12 mm longer than the training data's; every label sent back is wrong.
        var labels = "id,label\n"
        for (index, request) in try PenguinRequests.make(count: 120, idPrefix: "q", billLengthShift: 12).enumerated() {
            let answer = try client.send("POST", "/v2/models/penguins/infer", body: request.body)
            #expect(answer.status == 200)
            if index < 60 { labels += "\(request.id),\(request.species == "Gentoo" ? "Adelie" : "Gentoo")\n" }
        }
        try scratch.directory.write(labels, to: "labels.csv")
        #expect(try scratch.stagecraft(["feedback", "--env", "dev", "--model", "penguins", "--file", "labels.csv"]).status == 0)
        // Capture and feedback files are written off the request path: wait until they hold everything.
        func lines(_ relative: String) -> Int {
            let folder = scratch.directory.appending(relative)
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) else { return 0 }
            let files = isFolder.boolValue ? ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).map { folder + "/" + $0 } : [folder]
            return files.reduce(0) { $0 + (((try? String(contentsOfFile: $1, encoding: .utf8)) ?? "").split(separator: "\n").count) }
        }
        let settled = Date().addingTimeInterval(10)
        while (lines(".stagecraft/capture/dev/penguins") < 120 || lines(".stagecraft/feedback/dev/penguins.jsonl") < 60) && Date() < settled {
            usleep(20_000)
        }

        // monitor: an alarm on exactly the shifted feature and on live accuracy; the webhook hears of it.
        let report = try scratch.stagecraft(["monitor", "--env", "dev", "--output", "json", "--html", "report.html"])
        #expect(report.status == 1, "\(report.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as? [String: Any])
        let penguins = try #require((json["models"] as? [[String: Any]])?.first { $0["model"] as? String == "penguins" })
        let triggers = penguins["triggers"] as? [[String: Any]] ?? []
        #expect(Set(triggers.filter { $0["kind"] as? String == "psi" }.compactMap { $0["subject"] as? String }).isSubset(of: ["bill_length_mm", "prediction"]))
        #expect(triggers.contains { $0["kind"] as? String == "psi" && $0["subject"] as? String == "bill_length_mm" })
        #expect(triggers.contains { $0["kind"] as? String == "accuracy" && ($0["measured"] as? Double ?? 1) < 0.9 })
        #expect(triggers.contains { $0["kind"] as? String == "newRows" && $0["measured"] as? Double == 60 })
        #expect(report.stderr.contains(#""message":"monitor alarm""#))
        #expect(try scratch.directory.read("webhook.jsonl").contains("psi(bill_length_mm)"))
        #expect(try scratch.directory.read(".stagecraft/monitor/dev.prom").contains("stagecraft_monitor_alarm{environment=\"dev\",model=\"penguins\""))
        let page = try scratch.directory.read("report.html")
        #expect(page.hasPrefix("<!doctype html>") && page.contains("<svg") && page.contains("bill_length_mm"))

        // --retrain: one commit by stagecraft with the trigger, a new data file with the labelled rows, the manifest pointing at it.
        let retrain = try scratch.stagecraft(["monitor", "--env", "dev", "--retrain"])
        #expect(retrain.status == 1)
        #expect(retrain.stdout.contains("retrain penguins: 60 labelled rows → data/penguins/train-retrain-"))
        #expect(try scratch.gitLine(["log", "-1", "--format=%an"]) == "stagecraft")
        let message = try scratch.git(["log", "-1", "--format=%B"])
        #expect(message.contains("Stagecraft-Trigger: ") && message.contains("psi(bill_length_mm)"))
        let changed = try scratch.gitLine(["show", "--name-only", "--format=", "HEAD"]).split(separator: "\n").map(String.init)
        #expect(changed.count == 2 && changed.contains("manifests/penguins.yaml"))
        let newData = try #require(changed.first { $0.hasPrefix("data/penguins/train-retrain-") })
        let oldRows = try String(contentsOfFile: Fixtures.packageRoot + "/data/penguins/train.csv", encoding: .utf8).split(separator: "\n").count
        #expect(try scratch.directory.read(newData).split(separator: "\n").count == oldRows + 60)
        #expect(try scratch.directory.read("manifests/penguins.yaml").contains("train: \(newData)"))

        // reconcile dev builds, verifies and serves the retrained version; history shows why it came.
        let reconcile = try scratch.stagecraft(["reconcile", "--env", "dev"])
        #expect(reconcile.status == 0, "\(reconcile.stderr)\(reconcile.stdout)")
        #expect(try version() != before)
        let history = try scratch.stagecraft(["history", "--env", "dev", "--model", "penguins", "--output", "json"])
        let newest = try #require((try JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [[String: Any]])?.first)
        let trailers = newest["trailers"] as? [[String: String]] ?? []
        #expect(trailers.contains { $0["key"] == "Stagecraft-Trigger" && ($0["value"] ?? "").contains("psi(bill_length_mm)") })
        #expect((newest["records"] as? [[String: Any]])?.first?["outcome"] as? String == "succeeded")

        // --watch evaluates again and again (here every 200 ms), rewriting the alarm metric each time.
        let metricFile = scratch.directory.appending(".stagecraft/monitor/dev.prom")
        try FileManager.default.removeItem(atPath: metricFile)
        let watcher = try BackgroundProcess(Fixtures.stagecraftBinary, ["monitor", "--env", "dev", "--watch", "--interval", "200ms"], in: scratch.path)
        defer { watcher.stop() }
        var evaluations = 0
        var seen: Date?
        let deadline = Date().addingTimeInterval(30)
        while evaluations < 3 && Date() < deadline {
            if let modified = (try? FileManager.default.attributesOfItem(atPath: metricFile))?[.modificationDate] as? Date, modified != seen {
                seen = modified
                evaluations += 1
            }
            usleep(20_000)
        }
        #expect(evaluations == 3, "monitor --watch did not keep evaluating: \(watcher.log)")
    }
}
