import Foundation

/// A valid model manifest (`manifests/churn.yaml`) that each bad case changes in one place.
let validModel = """
    apiVersion: stagecraft/v1
    kind: Model
    metadata:
      name: churn
    spec:
      task: binary-classification
      data:
        train: data/churn/train.csv
        test: data/churn/test.csv
        target: churned
      features:
        - {name: tenure, type: numeric, missing: median}
        - {name: plan, type: categorical}
      trainer:
        algorithm: logistic-regression
        params: {l2: 0.01}
        search: {folds: 5, metric: auc, grid: {l2: [0.001, 0.01]}}
        seed: 42

    """

/// A valid environment (`environments/qa.yaml`) that each bad case changes in one place.
let validEnvironment = """
    apiVersion: stagecraft/v1
    kind: Environment
    metadata:
      name: qa
    spec:
      upstream: dev
      server: {host: 127.0.0.1, port: 8102}
      gates:
        accuracy: ">= 0.90"
        latencyP99Ms: "<= 25"
      models:
        churn:
          version: 3f2a9c1e5b7d
          source: 8c1d2e4f0a9b
          gates: {auc: ">= 0.97"}
          traffic:
            - {version: 3f2a9c1e5b7d, weight: 90}
            - {version: 7b21e0d44a10, source: 1f0e2d3c4b5a, weight: 10}

    """

/// `text` with `old` replaced by `new` once; fails loudly when `old` is not there, so a case cannot silently test nothing.
func replacing(_ old: String, with new: String, in text: String) -> String {
    guard let range = text.range(of: old) else { fatalError("fixture does not contain \(old)") }
    return text.replacingCharacters(in: range, with: new)
}
