import Foundation
import LoopbackHTTP
import StagecraftTesting
import Testing

/// The real `stagecraft` binary, run as a user runs it.
@Suite struct CommandLineTests {
    let binary = Fixtures.stagecraftBinary

    @Test func versionHelpAndUsage() throws {
        #expect(try ProcessRunner.run(binary, ["--version"]).stdout == "0.1.0\n")
        let help = try ProcessRunner.run(binary, ["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("stagecraft init my-models"))
        #expect(help.stdout.contains("validate"))
        let usage = try ProcessRunner.run(binary, ["validate", "--nope"])
        #expect(usage.status == 64)
        #expect(usage.stderr.contains("Unknown option '--nope'"))
    }

    @Test func initThenValidateThenBreakIt() throws {
        let scratch = try ScratchDirectory()
        let repo = scratch.appending("models")
        let initialized = try ProcessRunner.run(binary, ["init", repo])
        #expect(initialized.status == 0, "\(initialized.stderr)")
        // Plain output when not on a terminal: no colour codes.
        #expect(!initialized.stdout.contains("\u{1B}["))
        #expect(try ProcessRunner.run("git", ["-C", repo, "fsck", "--strict"]).status == 0)

        let valid = try ProcessRunner.run(binary, ["validate", "--output", "json"], in: repo)
        #expect(valid.status == 0)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(valid.stdout.utf8)) as? [String: Any])
        #expect(report["valid"] as? Bool == true)
        #expect(report["models"] as? [String] == ["example"])
        // The example passes the gates it ships with (dev: accuracy >= 0.70; qa and prod: accuracy >= 0.75, auc >= 0.80).
        let built = try ProcessRunner.run(binary, ["build", "example", "--output", "json"], in: repo)
        let metrics = (try JSONSerialization.jsonObject(with: Data(built.stdout.utf8)) as? [String: Any])?["metrics"] as? [String: Double]
        #expect((metrics?["accuracy"] ?? 0) >= 0.75 && (metrics?["auc"] ?? 0) >= 0.80, "\(metrics ?? [:])")

        // An edit committed with git is what validate reads.
        let manifest = try String(contentsOfFile: repo + "/manifests/example.yaml", encoding: .utf8)
        try manifest.replacingOccurrences(of: "task: binary-classification", with: "task: clasification")
            .write(toFile: repo + "/manifests/example.yaml", atomically: true, encoding: .utf8)
        #expect(try ProcessRunner.run(binary, ["validate"], in: repo).status == 0)  // not committed yet
        try ProcessRunner.run("git", ["-C", repo, "commit", "-qam", "typo"])
        let invalid = try ProcessRunner.run(binary, ["validate"], in: repo)
        #expect(invalid.status == 1)
        #expect(invalid.stdout.hasPrefix("manifests/example.yaml:6:9: unknown task 'clasification'"))
    }
}

/// `build` and `builds` through the real binary, on a copy of the example.
@Suite struct BuildEndToEndTests {
    let binary = Fixtures.stagecraftBinary

    @Test func buildTheExampleTwiceAndListTheBuilds() throws {
        let scratch = try ScratchRepository.example()
        for model in ["breast-cancer", "penguins"] {
            let first = try ProcessRunner.run(binary, ["build", model, "--output", "json"], in: scratch.path)
            #expect(first.status == 0, "\(first.stderr)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any])
            #expect(report["reused"] as? Bool == false)
            let metrics = try #require(report["metrics"] as? [String: Double])
            #expect(metrics["accuracy"]! >= 0.95)
            let again = try ProcessRunner.run(binary, ["build", model], in: scratch.path)
            #expect(again.status == 0)
            #expect(again.stdout.contains(" reused: the artifact store has it"))
            // Off a terminal there is no progress line and no colour.
            #expect(again.stderr == "")
            #expect(!again.stdout.contains("\u{1B}["))
        }
        let builds = try ProcessRunner.run(binary, ["builds", "--output", "json"], in: scratch.path)
        let list = try #require(try JSONSerialization.jsonObject(with: Data(builds.stdout.utf8)) as? [[String: Any]])
        #expect(Set(list.compactMap { $0["model"] as? String }) == ["breast-cancer", "penguins"])
        #expect(list.allSatisfy { ($0["source"] as? String) == (try? scratch.gitLine(["rev-parse", "HEAD"])) })
    }
}

/// `serve` through the real binary: build, pin the version in an environment, serve, call it with curl, stop it.
@Suite struct ServeEndToEndTests {
    let binary = Fixtures.stagecraftBinary

    @Test func serveAPinnedVersionAndStopOnSIGTERM() throws {
        let scratch = try ScratchRepository.example()
        let built = try ProcessRunner.run(binary, ["build", "penguins", "--output", "json"], in: scratch.path)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(built.stdout.utf8)) as? [String: Any])
        let digest = try #require(report["digest"] as? String)
        try scratch.pin("penguins", version: digest)

        let port = try Loopback.freePort()
        let server = try BackgroundProcess(binary, ["serve", "--env", "dev", "--port", "\(port)"], in: scratch.path)
        defer { server.stop() }
        try Loopback.waitForListener(port: port)
        let body = #"{"id": "e2e", "inputs": [{"name": "island", "shape": [1], "datatype": "BYTES", "data": ["Biscoe"]}, {"name": "bill_length_mm", "shape": [1], "datatype": "FP64", "data": [47.5]}, {"name": "bill_depth_mm", "shape": [1], "datatype": "FP64", "data": [14.2]}, {"name": "flipper_length_mm", "shape": [1], "datatype": "FP64", "data": [217]}, {"name": "body_mass_g", "shape": [1], "datatype": "FP64", "data": [4875]}, {"name": "sex", "shape": [1], "datatype": "BYTES", "data": ["female"]}]}"#
        let reply = try ProcessRunner.run("curl", ["-s", "-X", "POST", "http://127.0.0.1:\(port)/v2/models/penguins/infer", "--data-binary", body])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(reply.stdout.utf8)) as? [String: Any])
        #expect(json["id"] as? String == "e2e")
        #expect(json["model_version"] as? String == digest)
        let outputs = try #require(json["outputs"] as? [[String: Any]])
        #expect(outputs.first?["data"] as? [String] == ["Gentoo"])
        // The server's start line is a JSON log record.
        #expect(server.log.contains(#""environment":"dev""#))

        server.process.terminate()
        server.process.waitUntilExit()
        #expect(server.process.terminationStatus == 0)
    }

    @Test func detachThenStop() throws {
        let scratch = try ScratchRepository.example()
        let port = try Loopback.freePort()
        let started = try ProcessRunner.run(binary, ["serve", "--env", "dev", "--port", "\(port)", "--detach"], in: scratch.path)
        #expect(started.status == 0, "\(started.stderr)")
        let pid = try scratch.directory.read(".stagecraft/run/dev.pid").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(started.stdout.contains("serving dev at http://127.0.0.1:\(port) (pid \(pid))"))
        #expect(try ProcessRunner.run("curl", ["-s", "http://127.0.0.1:\(port)/v2/health/live"]).stdout == #"{"live":true}"#)
        #expect(try scratch.directory.read(".stagecraft/run/dev.log").contains(#""message":"serving""#))

        let again = try ProcessRunner.run(binary, ["serve", "--env", "dev", "--port", "\(port)", "--detach"], in: scratch.path)
        #expect(again.status == 1)
        #expect(again.stderr == "error: environment 'dev' is already served (pid \(pid)); stop it first: stagecraft stop --env dev\n")

        let stopped = try ProcessRunner.run(binary, ["stop", "--env", "dev"], in: scratch.path)
        #expect(stopped.status == 0)
        #expect(stopped.stdout == "✓ stopped dev (pid \(pid))\n")
        #expect(try ProcessRunner.run("curl", ["-s", "http://127.0.0.1:\(port)/v2/health/live"]).status != 0)
        #expect(!FileManager.default.fileExists(atPath: scratch.directory.appending(".stagecraft/run/dev.pid")))
        #expect(try ProcessRunner.run(binary, ["stop", "--env", "dev"], in: scratch.path).stdout == "no server is running for 'dev'\n")
    }

    @Test func httpAnswersEqualStagecraftPredict() throws {
        let scratch = try ScratchRepository.example()
        let built = try ProcessRunner.run(binary, ["build", "penguins", "--output", "json"], in: scratch.path)
        let digest = try #require((try JSONSerialization.jsonObject(with: Data(built.stdout.utf8)) as? [String: Any])?["digest"] as? String)
        try scratch.pin("penguins", version: digest)
        let scored = scratch.directory.appending("scored.csv")
        #expect(try ProcessRunner.run(binary, ["predict", "penguins", "--env", "dev", "--input", "data/penguins/test.csv", "--output", scored], in: scratch.path).status == 0)

        // The same rows as one request: the CSV's own text for numbers, so both paths read the same decimals.
        let lines = try String(contentsOfFile: scored, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        let header = lines[0], rows = Array(lines.dropFirst())
        let features = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]
        let inputs = features.map { feature -> String in
            let column = header.firstIndex(of: feature)!
            let categorical = feature == "island" || feature == "sex"
            let values = rows.map { row -> String in row[column].isEmpty ? "null" : categorical ? "\"\(row[column])\"" : row[column] }
            return #"{"name": "\#(feature)", "shape": [\#(rows.count)], "datatype": "\#(categorical ? "BYTES" : "FP64")", "data": [\#(values.joined(separator: ","))]}"#
        }
        let body = #"{"inputs": ["# + inputs.joined(separator: ",") + "]}"

        let port = try Loopback.freePort()
        let server = try BackgroundProcess(binary, ["serve", "--env", "dev", "--port", "\(port)"], in: scratch.path)
        defer { server.stop() }
        try Loopback.waitForListener(port: port)
        let reply = try HTTPConnection(port: port).send("POST", "/v2/models/penguins/infer", body: Data(body.utf8))
        #expect(reply.status == 200, "\(reply.text)")
        let outputs = try #require(reply.json["outputs"] as? [[String: Any]])
        #expect(outputs.first?["data"] as? [String] == rows.map { $0[header.firstIndex(of: "prediction")!] })
        // Probabilities, read exactly from both texts.
        let text = reply.text
        let start = text.range(of: "\"data\":[", range: text.range(of: "predict_proba")!.upperBound..<text.endIndex)!.upperBound
        let http = text[start..<text[start...].firstIndex(of: "]")!].split(separator: ",").map { Double($0)! }
        let probabilityColumns = ["probability_Adelie", "probability_Chinstrap", "probability_Gentoo"].map { header.firstIndex(of: $0)! }
        let batch = rows.flatMap { row in probabilityColumns.map { Double(row[$0])! } }
        #expect(http == batch)
    }
}
