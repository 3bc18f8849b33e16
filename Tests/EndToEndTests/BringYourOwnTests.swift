import Foundation
import LoopbackHTTP
import StagecraftTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A team's own trainer (train.py, scikit-learn) and model server (MLServer 1.7) through the whole loop, with the
/// real binary, the real packages from the package index, checked with git, scikit-learn and `ps`.
@Suite(.serialized)
struct BringYourOwnTests {
    static func json(_ text: String) -> Any? { try? JSONSerialization.jsonObject(with: Data(text.utf8)) }

    /// The pids of the model servers running a version's folder of `scratch` (`mlserver start …/<digest>/model`): the
    /// same version built in another test's repository has the same digest.
    static func serverPids(_ digest: String, in scratch: ScratchRepository) throws -> [Int32] {
        let output = try ProcessRunner.run("pgrep", ["-f", "mlserver start \(scratch.path)/.*/\(digest)/model"])
        return output.stdout.split(separator: "\n").compactMap { Int32($0) }
    }

    /// The loopback port a model server process was told to listen on.
    static func port(of pid: Int32) -> String? {
        guard let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return nil }
        return environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            .first { $0.hasPrefix("MLSERVER_HTTP_PORT=") }.map { String($0.dropFirst("MLSERVER_HTTP_PORT=".count)) }
    }

    /// Sends `count` single-row V2 requests (the test set's rows in turn) from `threads` connections; returns the
    /// answering versions, statuses and the `Retry-After` of every 503, as the Python client saw them.
    static func drive(port: Int, count: Int = 0, seconds: Double = 0, threads: Int = 4, killAfter: Double? = nil, kill pid: Int32? = nil)
        throws -> [String: Any]
    {
        let script = #"""
            import csv, json, sys, threading, time, http.client, collections, os, signal
            port, count, seconds, threads, kill_after, pid = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
            rows = list(csv.DictReader(open(sys.argv[7])))
            bodies = [json.dumps({"inputs": [{"name": k, "shape": [1], "datatype": "FP64", "data": [float(v)]} for k, v in r.items() if k != "diagnosis"]}) for r in rows]
            lock = threading.Lock(); versions = collections.Counter(); statuses = collections.Counter(); retry = collections.Counter(); sent = [0]
            end = time.time() + seconds
            def more():
                with lock:
                    if count and sent[0] >= count: return None
                    if seconds and time.time() > end: return None
                    sent[0] += 1; return sent[0]
            def worker():
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                while (n := more()) is not None:
                    try:
                        c.request("POST", "/v2/models/tumor/infer", body=bodies[n % len(bodies)], headers={"Content-Type": "application/json"})
                        r = c.getresponse(); body = r.read()
                    except Exception as e:
                        with lock: statuses[type(e).__name__] += 1
                        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30); continue
                    with lock:
                        statuses[str(r.status)] += 1
                        if r.status == 200: versions[json.loads(body)["model_version"]] += 1
                        if r.status == 503: retry[str(r.getheader("Retry-After"))] += 1
            ts = [threading.Thread(target=worker) for _ in range(threads)]
            [t.start() for t in ts]
            if pid > 0: time.sleep(kill_after); os.kill(pid, signal.SIGKILL)
            [t.join() for t in ts]
            print(json.dumps({"versions": versions, "statuses": statuses, "retryAfter": retry}))
            """#
        let output = try ProcessRunner.run(
            "python3",
            ["-c", script, String(port), String(count), String(seconds), String(threads), String(killAfter ?? 0), String(pid ?? 0),
             Fixtures.packageRoot + "/data/breast-cancer/test.csv"])
        guard output.status == 0, let result = json(output.stdout) as? [String: Any] else {
            throw ProcessFailure(command: "python3 (load)", output: output)
        }
        return result
    }

    /// Sets `C` in the manifest (a new version of the same code) by a commit.
    static func setC(_ value: String, _ scratch: ScratchRepository) throws {
        let text = try scratch.directory.read("manifests/tumor.yaml").replacingOccurrences(of: "params: {C: 1.0}", with: "params: {C: \(value)}")
        try scratch.commit(["manifests/tumor.yaml": text], message: "tumor: C \(value)")
    }

    @Test func buildPromoteCanaryShadowRollbackAndHistory() throws {
        guard let bin = Fixtures.byoBin else {
            Issue.record(Comment(rawValue: Fixtures.byoMissing))
            return
        }
        let scratch = try ScratchRepository.byoExample(bin: bin)
        let ports = try scratch.useFreePorts()
        defer { scratch.stopServers() }

        // build: the trainer ran, its output is in the version's model/ folder with each file's sha256, and the gate
        // metrics are the served answers' (scikit-learn scores the same artifact the same).
        let build = try scratch.stagecraft(["build", "tumor", "--output", "json"])
        #expect(build.status == 0, "\(build.stderr)")
        let report = try #require(Self.json(build.stdout) as? [String: Any])
        let v1 = try #require(report["digest"] as? String)
        let artifact = try #require(report["artifact"] as? String)
        let info = try #require(Self.json(try String(contentsOfFile: artifact + "/build.json", encoding: .utf8)) as? [String: Any])
        let outputs = try #require(info["outputs"] as? [String: String])
        #expect(Set(outputs.keys).isSuperset(of: ["model.joblib", "model-settings.json", "features/ratios.py"]))
        let joblib = try Data(contentsOf: URL(fileURLWithPath: artifact + "/model/model.joblib"))
        #expect(outputs["model.joblib"] == Self.sha256(joblib))
        #expect(try String(contentsOfFile: artifact + "/train.log", encoding: .utf8).contains("trained on 456 rows, C=1.0"))
        let accuracy = try #require((info["metrics"] as? [String: Any])?["accuracy"] as? Double)
        let sklearn = try ProcessRunner.run(
            bin + "/python",
            ["-c", "import sys, joblib, pandas as pd; sys.path.insert(0, sys.argv[1]); m = joblib.load(sys.argv[1] + '/model.joblib'); "
                + "t = pd.read_csv(sys.argv[2]); print(m.score(t.drop(columns='diagnosis'), t['diagnosis']))",
             artifact + "/model", scratch.directory.appending("data/breast-cancer/test.csv")])
        #expect(Double(sklearn.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).map { abs($0 - accuracy) < 1e-12 } == true, "\(sklearn.stderr)")
        #expect(try Self.serverPids(v1, in: scratch).isEmpty, "the build's scoring server was left running")

        // dev: track promotes and serves it through its own MLServer behind Stagecraft's server.
        let dev = try scratch.stagecraft(["reconcile", "--env", "dev"])
        #expect(dev.status == 0, "\(dev.stderr)\(dev.stdout)")
        let devServers = try Self.serverPids(v1, in: scratch)
        #expect(devServers.count == 1)
        let first = try Self.drive(port: ports["dev"]!, count: 20)
        #expect((first["versions"] as? [String: Int]) == [v1: 20], "\(first)")
        // Over gRPC too: the reconcile's probe (grpc-swift) and tritonclient's gRPC client get the model's answer.
        let devHistory = try scratch.stagecraft(["history", "--env", "dev", "--output", "json"])
        let devGates = (Self.json(devHistory.stdout) as? [[String: Any]] ?? []).flatMap { $0["records"] as? [[String: Any]] ?? [] }
            .flatMap { $0["gates"] as? [[String: Any]] ?? [] }
        #expect(devGates.contains { $0["gate"] as? String == "its own server answers over gRPC" && $0["passed"] as? Bool == true }, "\(devGates)")
        #expect(devGates.contains { $0["gate"] as? String == "its own server answers every probe" && $0["passed"] as? Bool == true })
        if let python = Fixtures.clientsPython {
            let grpcPort = try #require(
                try scratch.directory.read("environments/dev.yaml").firstMatch(of: /grpcPort: (\d+)/).map { String($0.1) })
            let triton = try ProcessRunner.run(
                python,
                ["-c", "import csv, sys, numpy as np, tritonclient.grpc as g\n"
                    + "row = next(csv.DictReader(open(sys.argv[2])))\n"
                    + "inputs = []\n"
                    + "for name, value in row.items():\n"
                    + "    if name == 'diagnosis': continue\n"
                    + "    i = g.InferInput(name, [1], 'FP64'); i.set_data_from_numpy(np.array([float(value)])); inputs.append(i)\n"
                    + "answer = g.InferenceServerClient(url='127.0.0.1:' + sys.argv[1]).infer('tumor', inputs)\n"
                    + "print(answer.as_numpy('predict').ravel()[0].decode(), answer.get_response().model_version)",
                 grpcPort, scratch.directory.appending("data/breast-cancer/test.csv")])
            #expect(triton.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "malignant \(v1)", "\(triton.stdout)\(triton.stderr)")
        }

        // qa: promoted by a commit with dev's evidence, verified with the gates computed from served answers.
        let promote = try scratch.stagecraft(["promote", "tumor", "--to", "qa"])
        #expect(promote.status == 0, "\(promote.stderr)")
        #expect(try scratch.git(["log", "-1", "--format=%B"]).contains("Stagecraft-Evidence: dev passed accuracy >= 0.9"))
        let qa = try scratch.stagecraft(["reconcile", "--env", "qa"])
        #expect(qa.status == 0, "\(qa.stderr)\(qa.stdout)")

        // A second version of the same code (another C) as a 90/10 canary in qa, with v1 also shadowed by... itself
        // is no shadow: the canary's split, then a shadow of v2 while v1 takes everything.
        try Self.setC("0.05", scratch)
        let second = try scratch.stagecraft(["build", "tumor", "--output", "json"])
        #expect(second.status == 0, "\(second.stderr)")
        let v2 = try #require((Self.json(second.stdout) as? [String: Any])?["digest"] as? String)
        #expect(v2 != v1)
        let head = try scratch.gitLine(["rev-parse", "--short=12", "HEAD"])
        var qaFile = try scratch.directory.read("environments/qa.yaml")
        qaFile = qaFile.replacingOccurrences(
            of: "      source: \(try #require(qaFile.components(separatedBy: "      source: ").last?.prefix(12)))\n",
            with: "      source: \(head)\n      traffic:\n        - {version: \(v1.prefix(12)), weight: 90}\n"
                + "        - {version: \(v2.prefix(12)), weight: 10}\n")
        try scratch.commit(["environments/qa.yaml": qaFile], message: "qa: canary tumor 90/10\n\nStagecraft-Forced: a canary in a test")
        let canary = try scratch.stagecraft(["reconcile", "--env", "qa"])
        #expect(canary.status == 0, "\(canary.stderr)\(canary.stdout)")

        // Two versions loaded: two processes on two ports (besides dev's).
        let qaV1 = try Self.serverPids(v1, in: scratch).filter { !devServers.contains($0) }
        let qaV2 = try Self.serverPids(v2, in: scratch)
        #expect(qaV1.count == 1 && qaV2.count == 1, "v1 \(qaV1), v2 \(qaV2)")
        if let a = qaV1.first, let b = qaV2.first {
            #expect(Self.port(of: a) != nil && Self.port(of: a) != Self.port(of: b))
        }
        let split = try Self.drive(port: ports["qa"]!, count: 5_000, threads: 4)
        let versions = split["versions"] as? [String: Int] ?? [:]
        let share = Double(versions[v2] ?? 0) / 5_000
        #expect((versions[v1] ?? 0) + (versions[v2] ?? 0) == 5_000, "\(split)")
        #expect(abs(share - 0.10) <= 0.03, "v2 answered \(share * 100)% of 5,000 requests: \(split)")

        // Shadow: v1 answers, v2 gets a copy; the capture holds both, the shadow's marked.
        qaFile = try scratch.directory.read("environments/qa.yaml")
        qaFile = qaFile.replacingOccurrences(
            of: "      traffic:\n        - {version: \(v1.prefix(12)), weight: 90}\n        - {version: \(v2.prefix(12)), weight: 10}\n",
            with: "      shadow: {version: \(v2.prefix(12))}\n")
        try scratch.commit(["environments/qa.yaml": qaFile], message: "qa: shadow tumor v2\n\nStagecraft-Forced: a shadow in a test")
        let shadow = try scratch.stagecraft(["reconcile", "--env", "qa"])
        #expect(shadow.status == 0, "\(shadow.stderr)\(shadow.stdout)")
        let shadowed = try Self.drive(port: ports["qa"]!, count: 50, threads: 1)
        #expect((shadowed["versions"] as? [String: Int]) == [v1: 50], "\(shadowed)")
        var shadowLines = 0
        let deadline = Date().addingTimeInterval(20)
        while shadowLines < 50 && Date() < deadline {
            usleep(200_000)
            let folder = scratch.directory.appending(".stagecraft/capture/qa/tumor")
            let files = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
            shadowLines = files.reduce(0) { total, name in
                let text = (try? String(contentsOfFile: folder + "/" + name, encoding: .utf8)) ?? ""
                return total + text.split(separator: "\n").filter { $0.contains("\"shadow\":true") && $0.contains(v2) }.count
            }
        }
        #expect(shadowLines >= 50, "shadow answers captured: \(shadowLines)")

        // v2 takes everything (v1's qa process stops when it is unloaded), then a rollback puts v1 back (v2's stops).
        qaFile = try scratch.directory.read("environments/qa.yaml")
        qaFile = qaFile.replacingOccurrences(of: "      shadow: {version: \(v2.prefix(12))}\n", with: "")
            .replacingOccurrences(of: "      version: \(v1.prefix(12))\n", with: "      version: \(v2.prefix(12))\n")
        try scratch.commit(["environments/qa.yaml": qaFile], message: "qa: tumor v2\n\nStagecraft-Forced: v2 in a test")
        let full = try scratch.stagecraft(["reconcile", "--env", "qa"])
        #expect(full.status == 0, "\(full.stderr)\(full.stdout)")
        #expect(try Self.waitUntilGone { try Self.serverPids(v1, in: scratch).filter { !devServers.contains($0) } }, "v1's qa server still runs after it was unloaded")
        #expect((try Self.drive(port: ports["qa"]!, count: 10, threads: 1)["versions"] as? [String: Int]) == [v2: 10])
        let rollback = try scratch.stagecraft(["rollback", "tumor", "--env", "qa"])
        #expect(rollback.status == 0, "\(rollback.stderr)")
        #expect(try scratch.git(["log", "-1", "--format=%B"]).contains("Stagecraft-Rollback-Of: \(v2)"))
        let back = try scratch.stagecraft(["reconcile", "--env", "qa"])
        #expect(back.status == 0, "\(back.stderr)\(back.stdout)")
        #expect(try Self.waitUntilGone { try Self.serverPids(v2, in: scratch) }, "v2's server still runs after it was unloaded")
        #expect((try Self.drive(port: ports["qa"]!, count: 10, threads: 1)["versions"] as? [String: Int]) == [v1: 10])

        // History: qa's changes as git lists them, with their records.
        let history = try scratch.stagecraft(["history", "--env", "qa", "--output", "json"])
        #expect(history.status == 0, "\(history.stderr)")
        let entries = try #require(Self.json(history.stdout) as? [[String: Any]])
        let gitLog = try scratch.gitLine(["log", "--format=%H", "--", "environments/qa.yaml"]).split(separator: "\n").map(String.init)
        #expect(entries.compactMap { $0["commit"] as? String } == gitLog)
        #expect(entries.flatMap { $0["records"] as? [[String: Any]] ?? [] }.contains { $0["outcome"] as? String == "succeeded" })

        // Stopping the servers stops every model server they started.
        scratch.stopServers()
        #expect(try Self.waitUntilGone { try Self.serverPids(v1, in: scratch) + Self.serverPids(v2, in: scratch) })
    }

    /// Waits up to 10 s for `pids` to be empty; whether it became so.
    static func waitUntilGone(_ pids: () throws -> [Int32]) throws -> Bool {
        let deadline = Date().addingTimeInterval(10)
        while try !pids().isEmpty {
            guard Date() < deadline else { return false }
            usleep(100_000)
        }
        return true
    }

    /// The example in a scratch repository on free ports, reconciled in dev (nil, recorded, without `.venv-byo`).
    static func servingInDev() throws -> (ScratchRepository, [String: Int])? {
        guard let bin = Fixtures.byoBin else {
            Issue.record(Comment(rawValue: Fixtures.byoMissing))
            return nil
        }
        let scratch = try ScratchRepository.byoExample(bin: bin)
        let ports = try scratch.useFreePorts()
        let dev = try scratch.stagecraft(["reconcile", "--env", "dev"])
        #expect(dev.status == 0, "\(dev.stderr)\(dev.stdout)")
        return (scratch, ports)
    }

    @Test func failingTrainersLeaveTheOldVersionServingAndNoProcess() throws {
        guard let (scratch, ports) = try Self.servingInDev() else { return }
        defer { scratch.stopServers() }
        let serving = try Self.drive(port: ports["dev"]!, count: 5, threads: 1)["versions"] as? [String: Int]
        let v1 = try #require(serving?.keys.first)

        // predict and queue start the version's own server for the batch and stop it.
        let predict = try scratch.stagecraft(["predict", "tumor", "--env", "dev", "--input", "data/breast-cancer/test.csv"])
        #expect(predict.status == 0, "\(predict.stderr)")
        let scored = predict.stdout.split(separator: "\n")
        #expect(scored.first?.hasSuffix(",diagnosis,prediction,probability_benign,probability_malignant") == true)
        #expect(scored.count == 114 && scored.dropFirst().allSatisfy { $0.split(separator: ",")[30] == $0.split(separator: ",")[31] })
        let inbox = scratch.directory.appending("q/inbox")
        try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: scratch.directory.appending("data/breast-cancer/test.csv"), toPath: inbox + "/batch.csv")
        let queue = try scratch.stagecraft(["queue", "--env", "dev", "--model", "tumor", "--dir", "q", "--once"])
        #expect(queue.status == 0, "\(queue.stderr)")
        #expect(try scratch.directory.read("q/outbox/batch.csv").split(separator: "\n").count == 114)
        #expect(try Self.serverPids(v1, in: scratch).count == 1, "predict or queue left its model server running")

        // build --verify: the example rebuilds to the same bytes; a trainer that stamps its output does not.
        let verify = try scratch.stagecraft(["build", "tumor", "--verify"])
        #expect(verify.status == 0 && verify.stdout.contains("reproducible: 5 files identical"), "\(verify.stdout)\(verify.stderr)")
        let original = try scratch.directory.read("manifests/tumor.yaml")
        try scratch.commit(
            ["manifests/tumor.yaml": original.replacingOccurrences(
                of: #"command: [python3, train.py, --C, "{C}"]"#,
                with: #"command: [sh, -c, "python3 train.py --C {C} && head -c 16 /dev/urandom > $STAGECRAFT_OUTPUT/stamp.bin"]"#)],
            message: "tumor: a stamped output")
        let stamped = try scratch.stagecraft(["build", "tumor", "--verify"])
        #expect(stamped.status == 1 && stamped.stdout.contains("not reproducible: stamp.bin differs"), "\(stamped.stdout)\(stamped.stderr)")

        // Each trainer leaves a marker process of its own group behind if it is not killed: `ps` must not find it.
        let marker = "stagecraft-byo-\(UUID().uuidString.prefix(8))"
        let cases: [(label: String, script: String, timeout: String, expected: String)] = [
            ("exits 1", "import sys; print('loading data'); print('ValueError: bad column', file=sys.stderr); sys.exit(1)", "1m",
             "exited with status 1"),
            ("hangs", "import subprocess, time; print('training forever'); subprocess.Popen(['sh', '-c', 'sleep 300; echo \(marker)']); time.sleep(300)", "2s",
             "ran past its timeout of 2s"),
            ("writes nothing", "print('done, nothing saved')", "1m", "wrote nothing into $STAGECRAFT_OUTPUT"),
        ]
        for failing in cases {
            let manifest = original.replacingOccurrences(of: "timeout: 10m", with: "timeout: \(failing.timeout)")
                .replacingOccurrences(of: #"command: [python3, train.py, --C, "{C}"]"#, with: "command: [python3, broken.py]")
                .replacingOccurrences(of: "code: [train.py,", with: "code: [broken.py, train.py,")
            try scratch.commit(["manifests/tumor.yaml": manifest, "broken.py": failing.script + "\n"], message: "tumor: a trainer that \(failing.label)")
            let reconcile = try scratch.stagecraft(["reconcile", "--env", "dev"])
            #expect(reconcile.status != 0, "\(failing.label): \(reconcile.stdout)")
            let said = reconcile.stdout + reconcile.stderr
            #expect(said.contains(failing.expected), "\(failing.label): \(said)")
            #expect(said.contains("its log ends:"), "\(failing.label): \(said)")
            if failing.label == "exits 1" { #expect(said.contains("ValueError: bad column"), "\(said)") }
            if failing.label == "hangs" { #expect(said.contains("training forever"), "\(said)") }
            let left = try ProcessRunner.run("pgrep", ["-f", "broken.py|\(marker)"])
            #expect(left.stdout.isEmpty, "\(failing.label): processes left: \(left.stdout)")
            let still = try Self.drive(port: ports["dev"]!, count: 5, threads: 1)["versions"] as? [String: Int]
            #expect(still == [v1: 5], "\(failing.label): \(String(describing: still))")
        }
    }

    @Test func aModelServerKilledUnderLoadIsRestartedAndOnly503sFail() throws {
        guard let (scratch, ports) = try Self.servingInDev() else { return }
        defer { scratch.stopServers() }
        let digest = try #require(
            (try Self.drive(port: ports["dev"]!, count: 1, threads: 1)["versions"] as? [String: Int])?.keys.first)
        let before = try #require(try Self.serverPids(digest, in: scratch).first)
        let load = try Self.drive(port: ports["dev"]!, seconds: 10, threads: 4, killAfter: 2, kill: before)
        let statuses = load["statuses"] as? [String: Int] ?? [:]
        let refused = statuses["503"] ?? 0
        let retry = load["retryAfter"] as? [String: Int] ?? [:]
        print("model server SIGKILLed under load: \(statuses["200"] ?? 0) answered, \(refused) refused with 503 + Retry-After")
        #expect(Set(statuses.keys).isSubset(of: ["200", "503"]), "other failures: \(statuses)")
        #expect(refused > 0 && retry["None"] == nil && retry.values.reduce(0, +) == refused, "\(load)")
        #expect((statuses["200"] ?? 0) > 0)
        let after = try Self.serverPids(digest, in: scratch)
        #expect(after.count == 1 && after.first != before, "restarted: \(after) (was \(before))")
        #expect((try Self.drive(port: ports["dev"]!, count: 5, threads: 1)["statuses"] as? [String: Int]) == ["200": 5])

        // Stagecraft's server SIGKILLed: its model server dies with it (parent-death signal), nothing is left.
        let server = try #require(Int32(try scratch.directory.read(".stagecraft/run/dev.pid").trimmingCharacters(in: .whitespacesAndNewlines)))
        kill(server, SIGKILL)
        #expect(try Self.waitUntilGone { try Self.serverPids(digest, in: scratch) }, "the model server outlived its SIGKILLed parent")
    }

    @Test func aVersionInS3CarriesItsModelFolderToAnotherMachine() throws {
        guard let bin = Fixtures.byoBin else {
            Issue.record(Comment(rawValue: Fixtures.byoMissing))
            return
        }
        guard S3Server.available else {
            Issue.record(Comment(rawValue: S3Server.missing))
            return
        }
        let s3 = try S3Server()
        defer { s3.stop() }
        try s3.createBucket("team-models")
        let first = try ScratchRepository.byoExample(bin: bin)
        let ports = try first.useFreePorts()
        let settings = try first.directory.read("stagecraft.yaml").replacingOccurrences(
            of: "artifacts: .stagecraft/artifacts",
            with: "artifacts: s3://team-models/stagecraft\n  s3: {endpoint: \"\(s3.endpoint)\", pathStyle: true}")
        try first.commit(["stagecraft.yaml": settings], message: "artifacts in S3")
        first.environment.merge(s3.environment) { $1 }
        let build = try first.stagecraft(["build", "tumor", "--output", "json"])
        #expect(build.status == 0, "\(build.stderr)")
        let report = try #require(Self.json(build.stdout) as? [String: Any])
        let digest = try #require(report["digest"] as? String)
        let artifact = try #require(report["artifact"] as? String)
        // Every output file is in the bucket, as boto3 reads it.
        let objects = try SharedStoresTests.remoteObjects(s3)
        let joblib = try Data(contentsOf: URL(fileURLWithPath: artifact + "/model/model.joblib"))
        #expect(objects["stagecraft/\(digest)/model/model.joblib"] == Self.sha256(joblib), "\(objects.keys.sorted())")
        #expect(objects["stagecraft/\(digest)/model/features/ratios.py"] != nil)

        // Another machine (a clone, an empty cache) fetches the version with its model folder and serves it.
        let second = try ScratchRepository(cloning: first)
        defer { second.stopServers() }
        let dev = try second.stagecraft(["reconcile", "--env", "dev"])
        #expect(dev.status == 0, "\(dev.stderr)\(dev.stdout)")
        #expect((try Self.drive(port: ports["dev"]!, count: 5, threads: 1)["versions"] as? [String: Int]) == [digest: 5])
        #expect(try Self.serverPids(digest, in: second).count == 1)
    }

    @Test func validateNamesCodeThatIsNotAtTheRef() throws {
        let scratch = try ScratchRepository.byoExample(bin: "/usr/bin")
        let manifest = try scratch.directory.read("manifests/tumor.yaml")
            .replacingOccurrences(of: "code: [train.py, features/,", with: "code: [train.py, featurse/,")
            .replacingOccurrences(of: "environment: requirements.txt", with: "environment: requirements.lock")
        try scratch.commit(["manifests/tumor.yaml": manifest], message: "tumor: typos")
        let validate = try scratch.stagecraft(["validate"])
        #expect(validate.status != 0)
        #expect(validate.stdout.contains("manifests/tumor.yaml:14:22: code path 'featurse' does not exist at HEAD"), "\(validate.stdout)")
        #expect(validate.stdout.contains("manifests/tumor.yaml:15:18: environment file 'requirements.lock' does not exist at HEAD"), "\(validate.stdout)")
    }

    static func sha256(_ data: Data) -> String {
        let output = try? ProcessRunner.run("sha256sum", [], input: data)
        return String(output?.stdout.prefix(64) ?? "")
    }
}
