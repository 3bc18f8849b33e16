import Foundation
import StagecraftTesting
import Testing

/// `serve --model-dir`: one version's folder served with no repository and no state store, as a SageMaker inference
/// container or a KServe predictor runs it. Checked on the real binary with curl.
@Suite struct ModelFolderServingTests {
    @Test func sageMakerContractAnswersWhatPredictGives() throws {
        let scratch = try ScratchRepository.example()
        let built = try scratch.stagecraft(["build", "breast-cancer", "--output", "json"])
        #expect(built.status == 0, "\(built.stderr)")
        let info = try #require(try JSONSerialization.jsonObject(with: Data(built.stdout.utf8)) as? [String: Any])
        let digest = try #require(info["digest"] as? String)
        try scratch.pin("breast-cancer", version: digest)
        // The holdout rows without the target, and what `stagecraft predict` makes of them.
        let lines = try scratch.directory.read("data/breast-cancer/test.csv").split(separator: "\n").map(String.init)
        let header = lines[0].split(separator: ",").map(String.init)
        let target = try #require(header.firstIndex(of: "diagnosis"))
        let rows = lines.dropFirst().map { line in line.split(separator: ",", omittingEmptySubsequences: false).enumerated().filter { $0.offset != target }.map { String($0.element) } }
        let columns = header.enumerated().filter { $0.offset != target }.map(\.element)
        let csv = ([columns] + rows).map { $0.joined(separator: ",") }.joined(separator: "\n") + "\n"
        try scratch.directory.write(csv, to: "rows.csv")
        let predicted = try scratch.stagecraft(["predict", "breast-cancer", "--env", "dev", "--input", "rows.csv"])
        #expect(predicted.status == 0, "\(predicted.stderr)")
        let scored = predicted.stdout.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        let column = try #require(scored.first?.firstIndex(of: "prediction"))
        let expected = scored.dropFirst().map { $0[column] }
        #expect(expected.count == rows.count && rows.count > 100)

        // The folder alone, moved out of the repository, as a container gets it.
        let folder = NSTemporaryDirectory() + "stagecraft-model-\(UUID().uuidString.prefix(8))"
        try FileManager.default.copyItem(atPath: scratch.directory.appending(".stagecraft/artifacts/\(digest)"), toPath: folder)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let port = try Loopback.freePort()
        let grpcPort = try Loopback.freePort()
        let variables = ["SAGEMAKER_BIND_TO_PORT": "\(port)", "SAGEMAKER_SAFE_PORT_RANGE": "\(grpcPort)-\(grpcPort)"]
        let server = try BackgroundProcess(
            Fixtures.stagecraftBinary, ["serve", "--model-dir", folder, "--grpc-port", "\(grpcPort)"], in: NSTemporaryDirectory(),
            environment: variables)
        defer { server.stop() }
        try Loopback.waitForListener(port: port)

        let ping = try curl(["-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/ping"])
        #expect(ping == "200")
        let fromCSV = try predictions(try curl(["-H", "Content-Type: text/csv", "--data-binary", "@\(scratch.path)/rows.csv",
                                                "http://127.0.0.1:\(port)/invocations"]))
        #expect(fromCSV == expected)
        let split: [String: Any] = ["dataframe_split": ["columns": columns, "data": rows.map { $0.map { Double($0)! } }]]
        try JSONSerialization.data(withJSONObject: split).write(to: URL(fileURLWithPath: scratch.path + "/rows.json"))
        let fromJSON = try predictions(try curl(["-H", "Content-Type: application/json", "--data-binary", "@\(scratch.path)/rows.json",
                                                 "http://127.0.0.1:\(port)/invocations"]))
        #expect(fromJSON == expected)
        // The V2 metadata names the version from the folder's build.json.
        let metadata = try curl(["http://127.0.0.1:\(port)/v2/models/breast-cancer"])
        #expect(metadata.contains(digest))
        try Loopback.waitForListener(port: grpcPort)
        server.stop()
        #expect(server.log.contains("serving breast-cancer version \(digest.prefix(12)) from \(folder)"))
    }

    @Test func badFoldersAndPortsAreRefusedClearly() throws {
        let empty = NSTemporaryDirectory() + "stagecraft-empty-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let noBuild = try ProcessRunner.run(Fixtures.stagecraftBinary, ["serve", "--model-dir", empty, "--port", "\(try Loopback.freePort())"])
        #expect(noBuild.status == 1)
        #expect(noBuild.stderr == "error: \(empty) holds no build.json: it must be one version's folder (model.json, metrics.json, build.json)\n")
        let outside = try ProcessRunner.run(
            Fixtures.stagecraftBinary, ["serve", "--model-dir", empty, "--grpc-port", "9000"],
            environment: ["SAGEMAKER_BIND_TO_PORT": "8080", "SAGEMAKER_SAFE_PORT_RANGE": "20000-20999"])
        #expect(outside.status == 64)
        #expect(outside.stderr == "error: --grpc-port 9000 is outside SAGEMAKER_SAFE_PORT_RANGE (20000-20999); pick a port in it\n")
        let badRange = try ProcessRunner.run(
            Fixtures.stagecraftBinary, ["serve", "--model-dir", empty], environment: ["SAGEMAKER_SAFE_PORT_RANGE": "20999-20000"])
        #expect(badRange.status == 64)
        #expect(badRange.stderr == "error: SAGEMAKER_SAFE_PORT_RANGE is '20999-20000', expected LOW-HIGH (e.g. 20000-20999)\n")
        let both = try ProcessRunner.run(Fixtures.stagecraftBinary, ["serve", "--env", "dev", "--model-dir", empty])
        #expect(both.status == 64)
        #expect(both.stderr.contains("give --env or --model-dir, not both"))
    }

    private func curl(_ arguments: [String]) throws -> String {
        let run = try ProcessRunner.run("curl", ["-sS", "--max-time", "30"] + arguments)
        guard run.status == 0 else { throw ProcessFailure(command: "curl", output: run) }
        return run.stdout
    }

    private func predictions(_ body: String) throws -> [String] {
        let json = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
        return (json?["predictions"] as? [String]) ?? []
    }

    /// `serve --deployed` when the state store records a version the artifact store does not have (a lost cache, or a
    /// database shared with another project): one line naming the version and what to do, not a file-system error.
    @Test func aDeployedVersionMissingFromTheStoreIsNamed() throws {
        let scratch = try ScratchRepository.example()
        try scratch.useFreePorts()
        defer { scratch.stopServers() }
        #expect(try scratch.stagecraft(["reconcile", "--env", "dev"]).status == 0)
        scratch.stopServers()
        let artifacts = scratch.directory.appending(".stagecraft/artifacts")
        let versions = try FileManager.default.contentsOfDirectory(atPath: artifacts).filter { !$0.hasPrefix(".") }
        for version in versions { try FileManager.default.moveItem(atPath: artifacts + "/" + version, toPath: artifacts + "/." + version + ".aside") }
        let served = try ProcessRunner.run(
            "/usr/bin/timeout", ["20", Fixtures.stagecraftBinary, "serve", "--env", "dev", "--deployed"], in: scratch.path)
        #expect(served.status == 1, "\(served.stdout)\(served.stderr)")
        #expect(served.stderr.contains("as serving in dev, but it is not in the artifact store"), "\(served.stderr)")
        #expect(served.stderr.contains("stagecraft build "), "\(served.stderr)")
        #expect(!served.stderr.contains("NSCocoaErrorDomain"), "\(served.stderr)")
    }
}
