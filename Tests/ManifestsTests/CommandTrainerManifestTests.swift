import Foundation
import Manifests
import Testing

/// `trainer.command` and `server`: a team's own trainer and model server, and what is wrong with them, at its place.
@Suite struct CommandTrainerManifestTests {
    static let valid = """
        apiVersion: stagecraft/v1
        kind: Model
        metadata:
          name: tumor
        spec:
          task: binary-classification
          data: {train: data/train.csv, test: data/test.csv, target: diagnosis}
          trainer:
            command: [python3, train.py, --C, "{C}", --penalty, "{penalty}"]
            code: [train.py, ./features/, model-settings.json]
            environment: requirements.txt
            params: {C: 0.5, penalty: l2, balanced: true}
            timeout: 90s
          server:
            command: [mlserver, start, "{model}"]
            environment: {MLSERVER_HTTP_PORT: "{port}", MLSERVER_GRPC_PORT: "{grpcPort}"}
            ready: /v2/health/ready

        """

    static func problems(replacing old: String, with new: String) -> [String] {
        #expect(valid.contains(old), "the fixture has no '\(old)'")
        return ModelManifest.decode(valid.replacingOccurrences(of: old, with: new), file: "manifests/tumor.yaml").1.map(\.description)
    }

    @Test func theValidFixtureDecodes() throws {
        let (manifest, diagnostics) = ModelManifest.decode(Self.valid, file: "manifests/tumor.yaml")
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        let trainer = try #require(manifest?.trainer.command)
        #expect(manifest?.trainer.algorithm == nil)
        #expect(trainer.command == ["python3", "train.py", "--C", "{C}", "--penalty", "{penalty}"])
        #expect(trainer.code == ["train.py", "features", "model-settings.json"])
        #expect(trainer.environment == "requirements.txt")
        #expect(trainer.timeout == 90)
        #expect(manifest?.trainer.params == ["C": .number(0.5), "penalty": .string("l2"), "balanced": .bool(true)])
        #expect(manifest?.server == ServerSpec(
            command: ["mlserver", "start", "{model}"], environment: ["MLSERVER_HTTP_PORT": "{port}", "MLSERVER_GRPC_PORT": "{grpcPort}"],
            ready: "/v2/health/ready"))
        #expect(TrainerCommand.substitute("--C={C} {unknown}", ["C": "0.5"]) == "--C=0.5 {unknown}")
    }

    @Test(arguments: [
        ("{C}\", --penalty", "{alpha}\", --penalty",
         "manifests/tumor.yaml:9:14: '{alpha}' in spec.trainer.command is not a param (params: C, balanced, penalty)"),
        ("    command: [python3, train.py, --C, \"{C}\", --penalty, \"{penalty}\"]\n", "    algorithm: logistic-regression\n    command: [python3]\n",
         "manifests/tumor.yaml:10:14: 'spec.trainer' takes an algorithm or a command, not both"),
        ("code: [train.py, ./features/, model-settings.json]", "code: [train.py, ../secrets]",
         "manifests/tumor.yaml:10:22: code path '../secrets' must stay inside the repository: it must not climb above the root with '..'"),
        ("environment: requirements.txt", "environment: /etc/passwd",
         "manifests/tumor.yaml:11:18: environment file '/etc/passwd' must be relative to the repository root, not absolute"),
        ("timeout: 90s", "timeout: soon",
         "manifests/tumor.yaml:13:14: expected a duration for 'spec.trainer.timeout' such as 90s, 30m or 2h, found 'soon'"),
        ("    timeout: 90s\n", "    timeout: 90s\n    search: {folds: 5, metric: auc, grid: {C: [0.1, 1]}}\n",
         "manifests/tumor.yaml:14:5: 'spec.trainer.search' is not run for a trainer command yet: search inside the training code, or give the chosen values in params"),
        ("\"{model}\"]", "\"{model}\", --port, \"{prot}\"]",
         "manifests/tumor.yaml:15:51: '{prot}' in spec.server.command is not known (expected one of: {model}, {port}, {grpcPort}, {name})"),
        ("ready: /v2/health/ready", "ready: health",
         "manifests/tumor.yaml:17:12: 'spec.server.ready' must be an HTTP path such as /v2/health/ready, found 'health'"),
        ("    command: [mlserver, start, \"{model}\"]\n", "    command: []\n",
         "manifests/tumor.yaml:15:14: 'spec.server.command' needs at least the program to run"),
        ("params: {C: 0.5, penalty: l2, balanced: true}", "params: {C: [0.5], penalty: l2, balanced: true}",
         "manifests/tumor.yaml:12:17: expected a number, true/false or a string for 'spec.trainer.params.C', found a list"),
    ])
    func reportsTheExactPositionAndMessage(old: String, new: String, expected: String) {
        #expect(Self.problems(replacing: old, with: new).contains(expected), "\(Self.problems(replacing: old, with: new))")
    }

    @Test func aCommandTrainerNeedsAServerAndABuiltInOneTakesNone() {
        let withoutServer = String(Self.valid[..<Self.valid.range(of: "  server:")!.lowerBound])
        let problems = ModelManifest.decode(withoutServer, file: "manifests/tumor.yaml").1.map(\.description)
        #expect(problems.contains { $0.hasPrefix("manifests/tumor.yaml:9:5: a model trained by its own command needs a 'server' section") }, "\(problems)")
        let builtIn = Self.valid.replacingOccurrences(
            of: "    command: [python3, train.py, --C, \"{C}\", --penalty, \"{penalty}\"]\n    code: [train.py, ./features/, model-settings.json]\n"
                + "    environment: requirements.txt\n    params: {C: 0.5, penalty: l2, balanced: true}\n    timeout: 90s\n",
            with: "    algorithm: logistic-regression\n")
        let refused = ModelManifest.decode(builtIn, file: "manifests/tumor.yaml").1.map(\.description)
        #expect(refused.contains { $0.hasPrefix("manifests/tumor.yaml:11:5: 'spec.server' is for models trained by their own command") }, "\(refused)")
    }
}
