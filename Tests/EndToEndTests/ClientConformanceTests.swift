import Foundation
import StagecraftTesting
import Testing

/// The real clients of the field, unchanged, against the real server (HTTP and gRPC): tritonclient's HTTP client (binary
/// and JSON tensors) and gRPC client, the protocol's own gRPC stub (typed contents), `requests` posting MLflow's formats
/// and V1, and the kserve SDK's REST (V2, V1) and gRPC clients. Every answer equals `stagecraft predict` on the same rows.
@Suite struct ClientConformanceTests {
    @Test func everyClientGetsWhatPredictGives() throws {
        guard let python = Fixtures.clientsPython else {
            Issue.record(Comment(rawValue: Fixtures.clientsMissing))
            return
        }
        let scratch = try ScratchRepository.example()
        let ports = try scratch.useFreePorts()
        defer { scratch.stopServers() }
        // dev serves gRPC beside HTTP.
        let grpcPort = try Loopback.freePort()
        let dev = try scratch.directory.read("environments/dev.yaml")
        try scratch.commit(["environments/dev.yaml": dev.replacingOccurrences(of: "port: \(ports["dev"]!)}", with: "port: \(ports["dev"]!), grpcPort: \(grpcPort)}")])
        let reconciled = try scratch.stagecraft(["reconcile", "--env", "dev"])
        #expect(reconciled.status == 0, "\(reconciled.stderr)")
        var cases: [String] = []
        for (model, target) in [("penguins", "species"), ("breast-cancer", "diagnosis")] {
            // The holdout rows without missing values (a binary BYTES tensor has no null), the target and year left out.
            let lines = try scratch.directory.read("data/\(model)/test.csv").split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            let keep = lines[0].indices.filter { lines[0][$0] != target && lines[0][$0] != "year" }
            let rows = lines.dropFirst().filter { row in keep.allSatisfy { !["", "NA", "?"].contains(row[$0]) } }
            let features = ([keep.map { lines[0][$0] }] + rows.map { row in keep.map { row[$0] } }).map { $0.joined(separator: ",") }.joined(separator: "\n") + "\n"
            try scratch.directory.write(features, to: "conformance/\(model).csv")
            let predicted = try scratch.stagecraft(["predict", model, "--env", "dev", "--input", "conformance/\(model).csv",
                                                    "--output", "conformance/\(model)-expected.csv"])
            #expect(predicted.status == 0, "\(predicted.stderr)")
            cases += ["--case", "\(model):\(scratch.directory.appending("conformance/\(model).csv")):\(scratch.directory.appending("conformance/\(model)-expected.csv"))"]
        }
        let token = try scratch.directory.read(".stagecraft/admin-token").trimmingCharacters(in: .whitespacesAndNewlines)
        let run = try ProcessRunner.run(python, [Fixtures.packageRoot + "/Tests/Conformance/clients.py", "--url", "127.0.0.1:\(ports["dev"]!)",
                                                 "--grpc", "127.0.0.1:\(grpcPort)", "--token", token] + cases)
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(run.stdout.hasSuffix("every client check passed\n"))
        #expect(run.stdout.components(separatedBy: "\nok ").count > 60)
        #expect(run.stdout.components(separatedBy: "gRPC bad request:").count > 20)
        #expect(run.stdout.contains("ok  gRPC load of the serving version answers OK and it stays ready"))
        // The kserve SDK's clients, in a process of their own (they cannot share one with tritonclient's gRPC module).
        let kserve = try ProcessRunner.run(python, [Fixtures.packageRoot + "/Tests/Conformance/kserve_clients.py", "--url", "127.0.0.1:\(ports["dev"]!)",
                                                    "--grpc", "127.0.0.1:\(grpcPort)"] + cases)
        #expect(kserve.status == 0, "\(kserve.stdout)\(kserve.stderr)")
        #expect(kserve.stdout.hasSuffix("every kserve client check passed\n"))
        #expect(kserve.stdout.components(separatedBy: "\nok ").count >= 10)
    }
}
