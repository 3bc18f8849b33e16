import ExternalModels
import Foundation
import Learning
import StagecraftTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The V2 requests Stagecraft forwards to a model's own server, and the answers it reads.
@Suite struct ServerProtocolTests {
    @Test func aRequestHasOneInputPerColumnAsPandasReadsThem() throws {
        let rows = Dataset(
            names: ["size", "island"],
            columns: [.numeric([1.5, .nan]), .categorical(codes: [1, -1], levels: ["Biscoe", "Dream \"north\""])])
        let body = ServerProtocol.request(rows, task: .binaryClassification, id: "r-1")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        #expect(json["id"] as? String == "r-1")
        #expect((json["parameters"] as? [String: String]) == ["content_type": "pd"])
        let inputs = try #require(json["inputs"] as? [[String: Any]])
        #expect(inputs.map { $0["name"] as? String } == ["size", "island"])
        #expect(inputs[0]["datatype"] as? String == "FP64" && (inputs[0]["shape"] as? [Int]) == [2])
        #expect((inputs[0]["data"] as? [Any])?.first as? Double == 1.5 && (inputs[0]["data"] as? [Any])?.last is NSNull)
        #expect(inputs[1]["datatype"] as? String == "BYTES" && (inputs[1]["parameters"] as? [String: String]) == ["content_type": "str"])
        #expect((inputs[1]["data"] as? [Any])?.first as? String == "Dream \"north\"" && (inputs[1]["data"] as? [Any])?.last is NSNull)
        #expect((json["outputs"] as? [[String: String]]) == [["name": "predict_proba"]])
        let regression = try JSONSerialization.jsonObject(with: Data(ServerProtocol.request(rows, task: .regression))) as? [String: Any]
        #expect((regression?["outputs"] as? [[String: String]]) == [["name": "predict"]])
    }

    @Test func probabilitiesGiveLabelsAndAWrongAnswerIsNamed() throws {
        let answer = #"{"outputs":[{"name":"predict_proba","shape":[2,3],"datatype":"FP64","data":[0.1,0.7,0.2,0.5,0.3,0.2]}]}"#
        let predictions = try ServerProtocol.predictions(Data(answer.utf8), rows: 2, classes: ["a", "b", "c"])
        #expect(predictions.labels == ["b", "a"])
        #expect(predictions.probabilities == [0.1, 0.7, 0.2, 0.5, 0.3, 0.2])
        let values = try ServerProtocol.predictions(Data(#"{"outputs":[{"name":"predict","data":[1.5,2]}]}"#.utf8), rows: 2, classes: nil)
        #expect(values.values == [1.5, 2])
        #expect(throws: ExternalModelError.self) { try ServerProtocol.predictions(Data(answer.utf8), rows: 3, classes: ["a", "b", "c"]) }
        do {
            _ = try ServerProtocol.predictions(Data(#"{"outputs":[{"name":"other","data":[1]},{"name":"x","data":[2]}]}"#.utf8), rows: 1, classes: ["a", "b"])
            Issue.record("no error")
        } catch let error as ExternalModelError {
            #expect(error.message == "the model server answered no 'predict_proba' output (outputs: other, x)")
        }
        #expect(throws: ExternalModelError.self) { try ServerProtocol.predictions(Data("not json".utf8), rows: 1, classes: nil) }
    }
}

/// A trainer's or server's process: its own group, its status, its log, and stopping all of it.
@Suite struct ChildProcessTests {
    @Test func stopEndsTheWholeGroupAndTheStatusIsKept() async throws {
        let scratch = try ScratchDirectory("child")
        let marker = "child-\(UUID().uuidString.prefix(8))"
        let log = URL(fileURLWithPath: scratch.appending("out.log"))
        let process = try await ChildProcess.start(
            ["sh", "-c", "echo started in $(pwd); sleep 300 & sleep 301; echo \(marker)"], in: URL(fileURLWithPath: scratch.path),
            environment: [:], log: log)
        #expect(getpgid(process.pid) == process.pid)
        var waited = 0
        while !ChildProcess.tail(of: log).contains("started in") && waited < 200 {
            usleep(10_000)
            waited += 1
        }
        #expect(process.tail().contains("started in \(scratch.path)"))
        #expect(try ProcessRunner.run("pgrep", ["-g", String(process.pid)]).stdout.split(separator: "\n").count >= 2)
        await process.stop(grace: 1)
        #expect(process.exitStatus() == 128 + SIGTERM)
        #expect(try ProcessRunner.run("pgrep", ["-g", String(process.pid)]).stdout.isEmpty)

        let failing = try await ChildProcess.start(["sh", "-c", "echo oops >&2; exit 3"], in: URL(fileURLWithPath: scratch.path), environment: [:], log: log)
        while failing.isRunning { usleep(5_000) }
        #expect(failing.exitStatus() == 3)
        #expect(failing.tail(1) == "oops")
        #expect(throws: ExternalModelError.self) {
            try ChildProcess.start([], in: URL(fileURLWithPath: scratch.path), environment: [:], log: log)
        }
    }

    /// A pipe another thread has open without close-on-exec while a server starts must not stay open in the server:
    /// whoever reads it would wait as long as the server runs (a test run hung on exactly that).
    @Test func itKeepsNoFileOfThisProcessOpen() async throws {
        let scratch = try ScratchDirectory("child")
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        defer {
            close(ends[0])
            close(ends[1])
        }
        let log = URL(fileURLWithPath: scratch.appending("fds.log"))
        let process = try await ChildProcess.start(
            ["sh", "-c", "ls /proc/$$/fd; echo listed; sleep 300"], in: URL(fileURLWithPath: scratch.path), environment: [:], log: log)
        var waited = 0
        while !ChildProcess.tail(of: log).contains("listed") && waited < 500 {
            try await _Concurrency.Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        let open = Set(process.tail(20).split(separator: "\n").map(String.init).filter { Int($0) != nil })
        await process.stop(grace: 1)
        #expect(open.contains("1") && !open.contains(String(ends[0])) && !open.contains(String(ends[1])), "\(open)")
    }
}

/// A supervised model server: a small V2 server in Python (a real process on a real port) started, killed and
/// restarted.
@Suite(.serialized) struct ModelServerTests {
    static let server = #"""
        import json, os, sys
        from http.server import BaseHTTPRequestHandler, HTTPServer
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path == "/ready" else 404); self.send_header("Content-Length", "0"); self.end_headers()
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                n = body["inputs"][0]["shape"][0]
                data = json.dumps({"outputs": [{"name": "predict_proba", "shape": [n, 2], "data": [0.25, 0.75] * n, "pid": os.getpid()}]}).encode()
                self.send_response(200); self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
            def log_message(self, *args): pass
        print("listening on", sys.argv[1], flush=True)
        HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
        """#

    static func configuration(_ scratch: ScratchDirectory, command: [String]? = nil) throws -> ModelServer.Configuration {
        try scratch.write(server, to: "model/server.py")
        return ModelServer.Configuration(
            model: "m", version: "v1", server: ExternalEstimator(command: command ?? ["python3", "server.py", "{port}"], environment: [:], ready: "/ready"),
            folder: URL(fileURLWithPath: scratch.appending("model")), log: URL(fileURLWithPath: scratch.appending("server.log")), readyTimeout: 20)
    }

    @Test func killedItIsRestartedAndMeanwhileSaysWhenToRetry() async throws {
        let scratch = try ScratchDirectory("model-server")
        let server = try await ModelServer.start(try Self.configuration(scratch))
        let rows = Dataset(names: ["x"], columns: [.numeric([1, 2])])
        let first = try await server.predict(rows, classes: ["no", "yes"], task: .binaryClassification)
        #expect(first.labels == ["yes", "yes"] && first.probabilities == [0.25, 0.75, 0.25, 0.75])
        let pid = try #require(server.pid)
        kill(pid, SIGKILL)
        var refused: ExternalModelError?
        for _ in 0..<200 where refused == nil {
            do { _ = try await server.predict(rows, classes: ["no", "yes"], task: .binaryClassification) } catch let error as ExternalModelError {
                refused = error
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(refused?.code == .unavailable && (refused?.retryAfter ?? 0) >= 1, "\(String(describing: refused))")
        var answered = false
        for _ in 0..<200 where !answered {
            answered = (try? await server.predict(rows, classes: ["no", "yes"], task: .binaryClassification)) != nil
            if !answered { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(answered && server.restarts == 1 && server.pid != pid && server.refused >= 1)
        let restarted = try #require(server.pid)
        await server.stop()
        #expect(kill(restarted, 0) != 0)
    }

    @Test func aServerThatExitsBeforeItIsReadyIsAnErrorWithItsLog() async throws {
        let scratch = try ScratchDirectory("model-server")
        do {
            _ = try await ModelServer.start(try Self.configuration(scratch, command: ["sh", "-c", "echo cannot load model.joblib; exit 2"]))
            Issue.record("it started")
        } catch let error as ExternalModelError {
            #expect(error.code == .notReady)
            // Its status is 2, unless something else in this (shared) test process collected it first, which ChildProcess
            // reports as -1; either way the error says it exited and shows its log.
            #expect(
                (error.message.contains("exited with status 2 before it was ready")
                    || error.message.contains("exited with status -1 before it was ready"))
                    && error.message.contains("cannot load model.joblib"), "\(error.message)")
        }
    }
}
