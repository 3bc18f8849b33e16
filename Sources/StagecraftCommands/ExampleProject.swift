import Foundation

/// The files `stagecraft init` writes: a small churn model with its own generated data, and three environments.
enum ExampleProject {
    static func files() -> [String: String] {
        let (train, test) = data()
        return [
            "stagecraft.yaml": """
                apiVersion: stagecraft/v1
                kind: Project
                spec:
                  branch: main                      # promotions commit here; track environments follow it
                  artifacts: .stagecraft/artifacts  # built model versions, by digest
                  stateStore: .stagecraft/state.db  # what each environment serves, and every deployment

                """,
            "manifests/example.yaml": """
                apiVersion: stagecraft/v1
                kind: Model
                metadata:
                  name: example
                spec:
                  task: binary-classification
                  data:
                    train: data/example/train.csv
                    test: data/example/test.csv      # the holdout that gates are computed on
                    target: churned
                  features:
                    - {name: tenure_months, type: numeric, missing: median}
                    - {name: monthly_spend, type: numeric, missing: mean}
                    - {name: support_calls, type: numeric, missing: zero}
                    - {name: plan, type: categorical, missing: most-frequent}
                  trainer:
                    algorithm: logistic-regression
                    params: {l2: 0.01}
                    search: {folds: 5, metric: auc, grid: {l2: [0.001, 0.01, 0.1]}}
                    seed: 42

                """,
            "environments/dev.yaml": environment("dev", upstream: nil, port: 8101, gates: ["accuracy": ">= 0.70", "latencyP99Ms": "<= 50"]),
            "environments/qa.yaml": environment(
                "qa", upstream: "dev", port: 8102, gates: ["accuracy": ">= 0.75", "auc": ">= 0.80", "latencyP99Ms": "<= 25"]),
            "environments/prod.yaml": environment(
                "prod", upstream: "qa", port: 8103,
                gates: ["accuracy": ">= 0.75", "auc": ">= 0.80", "latencyP99Ms": "<= 25", "errorRate": "<= 0.001"]),
            "data/example/train.csv": train,
            "data/example/test.csv": test,
        ]
    }

    static func environment(_ name: String, upstream: String?, port: Int, gates: KeyValuePairs<String, String>) -> String {
        var text = "apiVersion: stagecraft/v1\nkind: Environment\nmetadata:\n  name: \(name)\nspec:\n"
        if let upstream { text += "  upstream: \(upstream)\n" }
        let comment = "                       # reconcile builds main's manifests and promotes them here"
        text += "  track: \(upstream == nil)\(upstream == nil ? comment : "")\n"
        text += "  server: {host: 127.0.0.1, port: \(port)}\n  gates:\n"
        for (metric, value) in gates { text += "    \(metric): \"\(value)\"\n" }
        text += "  models:\n    example:\n      version: ~                      # set by promotion\n      source: ~\n"
        return text
    }

    /// 400 customers, deterministic (SplitMix64, seed 42): churn follows a logistic model of the features, with noise.
    /// Rows are numbered from 0; row i goes to the test set when i % 5 == 4.
    static func data() -> (train: String, test: String) {
        var state: UInt64 = 42
        func next() -> Double {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
        }
        let header = "tenure_months,monthly_spend,support_calls,plan,churned\n"
        var train = header, test = header
        let plans = [("basic", 0.6), ("plus", 0.0), ("pro", -0.7)]
        for row in 0..<400 {
            let tenure = 1 + Int(next() * 72)
            let spend = 20 + next() * 100
            let calls = Int(next() * next() * 10)
            let plan = plans[Int(next() * 3)]
            let logit = 2 * (-0.2 - 0.05 * Double(tenure) + 0.025 * (spend - 60) + 0.45 * Double(calls) + plan.1)
            let churned = next() < 1 / (1 + exp(-logit))
            let spendText = next() < 0.05 ? "" : String(format: "%.2f", spend)
            let line = "\(tenure),\(spendText),\(calls),\(plan.0),\(churned ? "yes" : "no")\n"
            if row % 5 == 4 { test += line } else { train += line }
        }
        return (train, test)
    }
}
