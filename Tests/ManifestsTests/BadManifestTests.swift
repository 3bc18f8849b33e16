import Manifests
import Testing

/// One bad input: what changes in the valid fixture, and exactly what must be reported.
struct BadCase: CustomTestStringConvertible, Sendable {
    let name: String
    let old: String
    let new: String
    let expected: [String]
    var testDescription: String { name }
}

@Suite struct BadModelManifestTests {
    static let cases: [BadCase] = [
        BadCase(name: "YAML syntax error", old: "params: {l2: 0.01}", new: "params: {l2: 0.01",
                expected: ["manifests/churn.yaml:17:11: invalid YAML: did not find expected ',' or '}' while parsing a flow mapping that starts at 16:13"]),
        BadCase(name: "unknown key with a suggestion", old: "  trainer:\n", new: "  trainr:\n",
                expected: ["manifests/churn.yaml:14:3: unknown key 'trainr' in spec; did you mean 'trainer'? (expected one of: task, data, features, trainer, server)",
                           "manifests/churn.yaml:6:3: missing required field 'spec.trainer' (a mapping with algorithm, or with command)"]),
        BadCase(name: "wrong type", old: "seed: 42", new: "seed: abc",
                expected: ["manifests/churn.yaml:18:11: expected a whole number for 'spec.trainer.seed', found 'abc'"]),
        BadCase(name: "missing field", old: "    target: churned\n", new: "",
                expected: ["manifests/churn.yaml:8:5: missing required field 'spec.data.target' (the name of the column to predict)"]),
        BadCase(name: "bad model name", old: "name: churn", new: "name: Churn_Model",
                expected: ["manifests/churn.yaml:4:9: invalid model name 'Churn_Model' (expected 1 to 63 lowercase letters, digits or '-')"]),
        BadCase(name: "name differs from the file name", old: "name: churn", new: "name: churn-v2",
                expected: ["manifests/churn.yaml:4:9: metadata.name 'churn-v2' does not match the file name (expected 'churn')"]),
        BadCase(name: "unknown algorithm", old: "algorithm: logistic-regression", new: "algorithm: logistic-regresion",
                expected: ["manifests/churn.yaml:15:16: unknown algorithm 'logistic-regresion'; did you mean 'logistic-regression'? (expected one of: logistic-regression, linear-regression, gradient-boosting)"]),
        BadCase(name: "unknown task", old: "task: binary-classification", new: "task: classification",
                expected: ["manifests/churn.yaml:6:9: unknown task 'classification' (expected one of: binary-classification, multiclass-classification, regression)"]),
        BadCase(name: "algorithm that cannot learn the task", old: "algorithm: logistic-regression", new: "algorithm: linear-regression",
                expected: ["manifests/churn.yaml:15:16: algorithm 'linear-regression' cannot learn a binary-classification task (expected one of: logistic-regression, gradient-boosting)"]),
        BadCase(name: "absolute data path", old: "train: data/churn/train.csv", new: "train: /srv/data/train.csv",
                expected: ["manifests/churn.yaml:8:12: data path '/srv/data/train.csv' must be relative to the repository root, not absolute"]),
        BadCase(name: "data path with ..", old: "test: data/churn/test.csv", new: "test: data/../../etc/test.csv",
                expected: ["manifests/churn.yaml:9:11: data path 'data/../../etc/test.csv' must stay inside the repository: it must not climb above the root with '..'"]),
        BadCase(name: "unknown trainer parameter", old: "params: {l2: 0.01}", new: "params: {l3: 0.01}",
                expected: ["manifests/churn.yaml:16:14: unknown key 'l3' in spec.trainer.params; did you mean 'l2'? (expected one of: l2, maxIterations, tolerance)"]),
        BadCase(name: "search metric that does not fit the task", old: "metric: auc", new: "metric: rmse",
                expected: ["manifests/churn.yaml:17:32: search metric 'rmse' does not apply to a binary-classification model (expected one of: accuracy, precision, recall, f1, auc, logLoss)"]),
        BadCase(name: "feature listed twice", old: "{name: plan, type: categorical}", new: "{name: tenure, type: categorical}",
                expected: ["manifests/churn.yaml:13:14: feature 'tenure' is listed twice"]),
        BadCase(name: "target used as a feature", old: "{name: plan, type: categorical}", new: "{name: churned, type: categorical}",
                expected: ["manifests/churn.yaml:13:14: feature 'churned' is the target column; it cannot also be an input"]),
        BadCase(name: "unknown missing-value policy", old: "missing: median", new: "missing: average",
                expected: ["manifests/churn.yaml:12:46: unknown missing-value policy 'average' (expected one of: mean, median, zero, most-frequent, error)"]),
        BadCase(name: "numeric policy on a categorical feature", old: "{name: plan, type: categorical}", new: "{name: plan, type: categorical, missing: mean}",
                expected: ["manifests/churn.yaml:13:48: missing-value policy 'mean' needs a numeric feature; 'plan' is categorical (expected most-frequent or error)"]),
        BadCase(name: "unsupported apiVersion", old: "apiVersion: stagecraft/v1", new: "apiVersion: stagecraft/v2",
                expected: ["manifests/churn.yaml:1:13: unsupported apiVersion 'stagecraft/v2' (expected 'stagecraft/v1')"]),
        BadCase(name: "wrong kind", old: "kind: Model", new: "kind: Environment",
                expected: ["manifests/churn.yaml:2:7: kind 'Environment' does not belong here (expected 'Model')"]),
        BadCase(name: "duplicate key", old: "  task: binary-classification\n", new: "  task: binary-classification\n  task: regression\n",
                expected: ["manifests/churn.yaml:7:3: duplicate key 'task' (first at 6:3)"]),
        BadCase(name: "folds out of range", old: "folds: 5", new: "folds: 1",
                expected: ["manifests/churn.yaml:17:21: 'spec.trainer.search.folds' must be between 2 and 100, found 1"]),
        BadCase(name: "features that are not a list", old: "  features:\n    - {name: tenure, type: numeric, missing: median}\n    - {name: plan, type: categorical}\n",
                new: "  features: tenure\n",
                expected: ["manifests/churn.yaml:11:13: expected a list for 'spec.features', found 'tenure'"]),
        BadCase(name: "grid values that are not a list", old: "grid: {l2: [0.001, 0.01]}", new: "grid: {l2: 0.01}",
                expected: ["manifests/churn.yaml:17:48: expected a list for 'spec.trainer.search.grid.l2', found '0.01'"]),
        BadCase(name: "a parameter that is not a number", old: "params: {l2: 0.01}", new: "params: {l2: strong}",
                expected: ["manifests/churn.yaml:16:18: expected a number or true/false for 'spec.trainer.params.l2', found 'strong'"]),
    ]

    @Test(arguments: cases)
    func reportsTheExactPositionAndMessage(_ badCase: BadCase) {
        let text = replacing(badCase.old, with: badCase.new, in: validModel)
        let (manifest, diagnostics) = ModelManifest.decode(text, file: "manifests/churn.yaml")
        #expect(diagnostics.map(\.description) == badCase.expected)
        #expect(manifest == nil)
    }

    @Test func theValidFixtureDecodes() throws {
        let (manifest, diagnostics) = ModelManifest.decode(validModel, file: "manifests/churn.yaml")
        #expect(diagnostics.isEmpty)
        let model = try #require(manifest)
        #expect(model.name == "churn")
        #expect(model.task == .binaryClassification)
        #expect(model.data == DataSpec(train: "data/churn/train.csv", test: "data/churn/test.csv", target: "churned"))
        #expect(model.features == [FeatureSpec(name: "tenure", type: .numeric, missing: .median), FeatureSpec(name: "plan", type: .categorical, missing: nil)])
        #expect(model.trainer.algorithm == .logisticRegression)
        #expect(model.trainer.params == ["l2": .number(0.01)])
        #expect(model.trainer.search == SearchSpec(folds: 5, metric: .auc, grid: ["l2": [.number(0.001), .number(0.01)]]))
        #expect(model.trainer.seed == 42)
    }

    @Test func everyProblemOfAFileIsReportedTogether() {
        var text = replacing("seed: 42", with: "seed: abc", in: validModel)
        text = replacing("algorithm: logistic-regression", with: "algorithm: boosting", in: text)
        text = replacing("name: churn", with: "name: Churn", in: text)
        let (_, diagnostics) = ModelManifest.decode(text, file: "manifests/churn.yaml")
        #expect(diagnostics.sorted().map(\.description) == [
            "manifests/churn.yaml:4:9: invalid model name 'Churn' (expected 1 to 63 lowercase letters, digits or '-')",
            "manifests/churn.yaml:15:16: unknown algorithm 'boosting' (expected one of: logistic-regression, linear-regression, gradient-boosting)",
            "manifests/churn.yaml:18:11: expected a whole number for 'spec.trainer.seed', found 'abc'",
        ])
    }

    @Test func theSpecHasACanonicalJSONForm() {
        let (manifest, _) = ModelManifest.decode(validModel, file: "manifests/churn.yaml")
        #expect(manifest?.spec.canonical == #"{"data":{"target":"churned","test":"data/churn/test.csv","train":"data/churn/train.csv"},"features":[{"missing":"median","name":"tenure","type":"numeric"},{"name":"plan","type":"categorical"}],"task":"binary-classification","trainer":{"algorithm":"logistic-regression","params":{"l2":0.01},"search":{"folds":5,"grid":{"l2":[0.001,0.01]},"metric":"auc"},"seed":42}}"#)
        // Comments, key order and flow style do not change it.
        let reordered = replacing("    params: {l2: 0.01}\n", with: "    params:   # tuned\n      l2: 1.0e-2\n", in: validModel)
        #expect(ModelManifest.decode(reordered, file: "manifests/churn.yaml").0?.spec.canonical == manifest?.spec.canonical)
    }
}

@Suite struct BadEnvironmentTests {
    static let cases: [BadCase] = [
        BadCase(name: "gate that is not <op> <number>", old: #"accuracy: ">= 0.90""#, new: #"accuracy: "0.90""#,
                expected: [#"environments/qa.yaml:9:15: gate 'accuracy' must be '<op> <number>' or '<op> serving [+|- <number>]' with op one of >=, <=, >, < (such as ">= 0.9" or ">= serving - 0.005"), found '0.90'"#]),
        BadCase(name: "relative gate with a bad offset", old: #"accuracy: ">= 0.90""#, new: #"accuracy: ">= serving * 0.9""#,
                expected: [#"environments/qa.yaml:9:15: gate 'accuracy' must be '<op> <number>' or '<op> serving [+|- <number>]' with op one of >=, <=, >, < (such as ">= 0.9" or ">= serving - 0.005"), found '>= serving * 0.9'"#]),
        BadCase(name: "relative gate on a live metric", old: #"accuracy: ">= 0.90""#, new: #"errorRate: "<= serving""#,
                expected: ["environments/qa.yaml:9:16: gate 'errorRate' cannot be relative to the serving version: only holdout metrics are (errorRate is measured on the live probe)"]),
        BadCase(name: "gate with an unknown metric", old: #"accuracy: ">= 0.90""#, new: #"acuracy: ">= 0.90""#,
                expected: ["environments/qa.yaml:9:5: unknown gate metric 'acuracy'; did you mean 'accuracy'? (expected one of: accuracy, precision, recall, f1, auc, logLoss, rmse, mae, r2, latencyP99Ms, errorRate)"]),
        BadCase(name: "traffic weights that do not sum to 100", old: "weight: 10}", new: "weight: 20}",
                expected: ["environments/qa.yaml:17:9: traffic weights in 'spec.models.churn.traffic' sum to 110 (expected 100)"]),
        BadCase(name: "version that is not a digest", old: "version: 3f2a9c1e5b7d\n", new: "version: 3f2a\n",
                expected: ["environments/qa.yaml:13:16: 'spec.models.churn.version' must be a version digest of 12 to 64 lowercase hex digits, found '3f2a'"]),
        BadCase(name: "monitor threshold that is not <op> <number>", old: "  models:\n", new: "  monitor: {psi: \"0.2\", accuracy: \">= 0.9\"}\n  models:\n",
                expected: [#"environments/qa.yaml:11:18: 'spec.monitor.psi' must be '<op> <number>' with op one of >=, <=, >, < (such as "<= 0.2"), found '0.2'"#]),
        BadCase(name: "monitor with an unknown key", old: "  models:\n", new: "  monitor: {psl: \"<= 0.2\"}\n  models:\n",
                expected: ["environments/qa.yaml:11:13: unknown key 'psl' in spec.monitor; did you mean 'psi'? (expected one of: window, psi, pValue, minLabels, newRows, schedule, webhook, accuracy, precision, recall, f1, auc, logLoss, rmse, mae, r2)"]),
        BadCase(name: "monitor schedule that is not a duration", old: "  models:\n", new: "  monitor:\n    schedule: weekly\n  models:\n",
                expected: ["environments/qa.yaml:12:15: 'spec.monitor.schedule' must be a duration such as 30m, 12h or 7d, found 'weekly'"]),
        BadCase(name: "port out of range", old: "port: 8102", new: "port: 99999",
                expected: ["environments/qa.yaml:7:35: 'spec.server.port' must be between 1 and 65535, found 99999"]),
        BadCase(name: "grpcPort out of range", old: "port: 8102}", new: "port: 8102, grpcPort: 0}",
                expected: ["environments/qa.yaml:7:51: 'spec.server.grpcPort' must be between 1 and 65535, found 0"]),
        BadCase(name: "grpcPort that is the HTTP port", old: "port: 8102}", new: "port: 8102, grpcPort: 8102}",
                expected: ["environments/qa.yaml:7:51: grpcPort 8102 is the HTTP port too; give gRPC a port of its own"]),
        BadCase(name: "unknown server key", old: "port: 8102}", new: "port: 8102, grpc: 9102}",
                expected: ["environments/qa.yaml:7:41: unknown key 'grpc' in spec.server (expected one of: host, port, grpcPort)"]),
        BadCase(name: "version without a source", old: "      source: 8c1d2e4f0a9b\n", new: "",
                expected: ["environments/qa.yaml:13:16: 'spec.models.churn.version' needs a 'source': the commit the version is built from"]),
        BadCase(name: "source that is not a commit hash", old: "source: 8c1d2e4f0a9b", new: "source: main",
                expected: ["environments/qa.yaml:14:15: 'spec.models.churn.source' must be a commit hash of 7 to 40 lowercase hex digits, found 'main'"]),
        BadCase(name: "track that is not a boolean", old: "  upstream: dev\n", new: "  upstream: dev\n  track: yes please\n",
                expected: ["environments/qa.yaml:7:10: expected true or false for 'spec.track', found 'yes please'"]),
        BadCase(name: "missing server", old: "  server: {host: 127.0.0.1, port: 8102}\n", new: "",
                expected: ["environments/qa.yaml:6:3: missing required field 'spec.server' (a mapping with port, and optionally host)"]),
        BadCase(name: "a shadow that is the serving version", old: "      gates: {auc: \">= 0.97\"}\n", new: "      gates: {auc: \">= 0.97\"}\n      shadow: {version: 3f2a9c1e5b7d}\n",
                expected: ["environments/qa.yaml:16:25: 'spec.models.churn.shadow.version' is the version that serves; a shadow must be another version"]),
        BadCase(name: "approval asking more approvals than approvers", old: "  upstream: dev\n",
                new: "  upstream: dev\n  approval: {approvers: [ada@example.com], count: 2}\n",
                expected: ["environments/qa.yaml:7:51: 'spec.approval.count' is 2 but only 1 approver(s) are named"]),
        BadCase(name: "approver that is not an email", old: "  upstream: dev\n", new: "  upstream: dev\n  approval: {approvers: [ada]}\n",
                expected: ["environments/qa.yaml:7:26: 'ada' is not an email: approvers are named by their git identity's email"]),
        BadCase(name: "approval on a track environment", old: "  upstream: dev\n",
                new: "  upstream: dev\n  track: true\n  approval: {approvers: [ada@example.com]}\n",
                expected: ["environments/qa.yaml:8:13: a track environment promotes by itself; approval needs an environment promoted into (remove track)"]),
        BadCase(name: "invalid model name as a key", old: "    churn:\n", new: "    Churn:\n",
                expected: ["environments/qa.yaml:12:5: invalid model name 'Churn' (expected 1 to 63 lowercase letters, digits or '-')"]),
    ]

    @Test(arguments: cases)
    func reportsTheExactPositionAndMessage(_ badCase: BadCase) {
        let text = replacing(badCase.old, with: badCase.new, in: validEnvironment)
        let (environment, diagnostics) = EnvironmentManifest.decode(text, file: "environments/qa.yaml")
        #expect(diagnostics.map(\.description) == badCase.expected)
        #expect(environment == nil)
    }

    @Test func theValidFixtureDecodes() throws {
        let (decoded, diagnostics) = EnvironmentManifest.decode(validEnvironment, file: "environments/qa.yaml")
        #expect(diagnostics.isEmpty)
        let environment = try #require(decoded)
        #expect(environment.upstream == "dev")
        #expect(environment.port == 8102)
        #expect(environment.host == "127.0.0.1")
        let churn = try #require(environment.deployment("churn"))
        #expect(churn.version == "3f2a9c1e5b7d")
        #expect(churn.source == "8c1d2e4f0a9b")
        #expect(churn.traffic == [TrafficSplit(version: "3f2a9c1e5b7d", source: nil, weight: 90),
                                  TrafficSplit(version: "7b21e0d44a10", source: "1f0e2d3c4b5a", weight: 10)])
        #expect(churn.versionLocation?.description == "environments/qa.yaml:13:16")
        #expect(churn.shadow == nil)
        let shadowed = EnvironmentManifest.decode(replacing("      gates: {auc: \">= 0.97\"}\n", with: "      gates: {auc: \">= 0.97\"}\n      shadow: {version: 7b21e0d44a10, source: 1f0e2d3c4b5a}\n", in: validEnvironment), file: "environments/qa.yaml")
        #expect(shadowed.0?.deployment("churn")?.shadow == TrafficSplit(version: "7b21e0d44a10", source: "1f0e2d3c4b5a", weight: 0))
        // The model's own auc gate is added; the environment's accuracy and latency gates stay.
        #expect(environment.gates(for: "churn").map(\.description) == ["accuracy >= 0.9", "latencyP99Ms <= 25", "auc >= 0.97"])
        #expect(environment.monitor == nil)
        let monitored = replacing("  models:\n", with: "  monitor:\n    window: 24h\n    psi: \"<= 0.2\"\n    accuracy: \">= 0.9\"\n    minLabels: 50\n    newRows: \">= 1000\"\n    schedule: 7d\n    webhook: http://127.0.0.1:9000/alerts\n  models:\n", in: validEnvironment)
        let (withMonitor, problems) = EnvironmentManifest.decode(monitored, file: "environments/qa.yaml")
        #expect(problems.isEmpty, "\(problems)")
        let monitor = try #require(withMonitor?.monitor)
        #expect(monitor.windowSeconds == 86_400 && monitor.psi?.description == "<= 0.2" && monitor.newRows?.holds(1000) == true)
        #expect(monitor.live.map(\.description) == ["accuracy >= 0.9"] && monitor.minLabels == 50 && monitor.schedule == "7d")
        #expect(monitor.webhook == "http://127.0.0.1:9000/alerts")
    }
}
