import Foundation
import LoopbackHTTP
import StagecraftTesting
import Testing

/// `stagecraft queue` with several real worker processes on one folder.
@Suite(.serialized)
struct QueueTests {
    func names(_ folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    @Test func aThousandFilesWithPoisonedOnesAndAWorkerKilledMidRun() throws {
        let scratch = try ScratchRepository.example()
        let built = try scratch.stagecraft(["build", "penguins", "--output", "json"])
        let digest = try #require((try JSONSerialization.jsonObject(with: Data(built.stdout.utf8)) as? [String: Any])?["digest"] as? String)
        try scratch.pin("penguins", version: digest)
        let queue = scratch.directory.appending("queue")
        let staging = scratch.directory.appending("staging")
        try FileManager.default.createDirectory(atPath: queue + "/inbox", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)

        let test = try String(contentsOfFile: Fixtures.packageRoot + "/data/penguins/test.csv", encoding: .utf8).split(separator: "\n")
        let header = test[0]
        var poisoned: Set<String> = []
        func drop(_ index: Int) throws {
            let name = String(format: "file-%04d.csv", index)
            var rows = (0..<3).map { String(test[1 + (index + $0) % (test.count - 1)]) }
            if index % 20 == 7 {  // 5%: a word where a number belongs
                var fields = rows[1].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                fields[2] = "oops"
                rows[1] = fields.joined(separator: ",")
                poisoned.insert(name)
            }
            try ([String(header)] + rows).joined(separator: "\n").write(toFile: staging + "/" + name, atomically: false, encoding: .utf8)
            guard rename(staging + "/" + name, queue + "/inbox/" + name) == 0 else { throw LoopbackError(message: "rename") }
        }
        let arguments = ["queue", "--env", "dev", "--model", "penguins", "--dir", queue, "--retries", "2", "--backoff", "20ms", "--lease", "1s", "--poll", "5ms"]
        let first = try BackgroundProcess(Fixtures.stagecraftBinary, arguments, in: scratch.path)
        let second = try BackgroundProcess(Fixtures.stagecraftBinary, arguments, in: scratch.path)
        defer { first.stop(); second.stop() }
        for index in 0..<500 { try drop(index) }
        // Kill one worker once work is under way, whatever it is doing.
        let deadline = Date().addingTimeInterval(60)
        while names(queue + "/done").count < 150 && Date() < deadline { usleep(5_000) }
        kill(first.process.processIdentifier, SIGKILL)
        for index in 500..<1_000 { try drop(index) }
        let third = try BackgroundProcess(Fixtures.stagecraftBinary, arguments + ["--once"], in: scratch.path)
        defer { third.stop() }
        while names(queue + "/done").count + names(queue + "/dead-letter").filter({ !$0.hasSuffix(".error.json") }).count < 1_000 && Date() < deadline {
            usleep(20_000)
        }

        let done = names(queue + "/done"), outbox = names(queue + "/outbox")
        let dead = names(queue + "/dead-letter").filter { !$0.hasSuffix(".error.json") }
        #expect(poisoned.count == 50)
        #expect(Set(done).count == 950 && Set(done).isDisjoint(with: poisoned))
        #expect(outbox == done, "every good file has exactly one result, named after it")
        #expect(Set(dead) == poisoned)
        #expect(names(queue + "/inbox").isEmpty && names(queue + "/processing").isEmpty)
        for name in dead.prefix(5) {
            let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: queue + "/dead-letter/" + name + ".error.json"))) as? [String: Any]
            // A file that does not parse is not retried: one attempt, and the report says why.
            #expect(report?["attempts"] as? Int == 1)
            #expect((report?["retried"] as? String)?.hasPrefix("no: ") == true)
            #expect((report?["error"] as? String)?.contains("\(name):3:3") == true, "\(report ?? [:])")
        }
        let result = try String(contentsOfFile: queue + "/outbox/" + done[0], encoding: .utf8).split(separator: "\n")
        #expect(result.count == 4)
        #expect(result[0].hasSuffix(",prediction,probability_Adelie,probability_Chinstrap,probability_Gentoo,model_version"))
        #expect(result[1].hasSuffix("," + digest))
    }
}

/// `stagecraft feedback` against a server that reconcile started.
@Suite(.serialized)
struct FeedbackCommandTests {
    @Test func labelsFromACSVGiveLiveMetrics() throws {
        let scratch = try ScratchRepository.example()
        let ports = try scratch.useFreePorts()
        defer { scratch.stopServers() }
        #expect(try scratch.stagecraft(["reconcile", "--env", "dev"]).status == 0)
        let test = try String(contentsOfFile: Fixtures.packageRoot + "/data/penguins/test.csv", encoding: .utf8).split(separator: "\n")
        let names = test[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let client = try HTTPConnection(port: ports["dev"]!)
        var labels = "id,label\n"
        for row in 1...10 {
            let values = test[row].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            let inputs = zip(names, values).filter { $0.0 != "species" && $0.0 != "year" && !$0.1.isEmpty }.map { name, value in
                Double(value).map { #"{"name":"\#(name)","datatype":"FP64","shape":[1],"data":[\#($0)]}"# } ?? #"{"name":"\#(name)","datatype":"BYTES","shape":[1],"data":["\#(value)"]}"#
            }
            let answer = try client.send("POST", "/v2/models/penguins/infer", body: Data(#"{"id":"p\#(row)","inputs":[\#(inputs.joined(separator: ","))]}"#.utf8))
            #expect(answer.status == 200, "\(answer.text)")
            labels += "p\(row),\(values[0])\n"
        }
        labels += "unknown-id,Adelie\n"
        try scratch.directory.write(labels, to: "labels.csv")
        let result = try scratch.stagecraft(["feedback", "--env", "dev", "--model", "penguins", "--file", "labels.csv"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("10 rows labelled; 1 ids matched no prediction"))
        #expect(result.stdout.contains("accuracy 1") && result.stdout.contains("labels 10"))
        let status = try scratch.stagecraft(["status", "--env", "dev"])
        #expect(status.stdout.contains("accuracy 1 (10 labels)"), "\(status.stdout)")
        var kept = 0  // the server appends them off the request path
        for _ in 0..<100 where kept < 11 {
            kept = ((try? scratch.directory.read(".stagecraft/feedback/dev/penguins.jsonl")) ?? "").split(separator: "\n").count
            usleep(10_000)
        }
        #expect(kept == 11, "every label is kept, the unmatched one too")
    }
}
