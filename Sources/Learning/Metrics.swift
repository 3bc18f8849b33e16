import Foundation

/// Holdout metrics, named exactly as gates name them.
public enum Metrics {
    /// True when a larger value of `metric` is better.
    public static func higherIsBetter(_ metric: String) -> Bool {
        !["logLoss", "rmse", "mae", "latencyP99Ms", "errorRate"].contains(metric)
    }

    /// accuracy, precision, recall, f1 (binary: of class 1; multiclass: macro), auc (binary; multiclass: one-vs-rest
    /// macro), logLoss. `probabilities` is row-major, `classCount` per row.
    public static func classification(labels: [Int32], probabilities: [Double], classCount: Int) -> [String: Double] {
        let n = labels.count
        var predicted = [Int](repeating: 0, count: n)
        var logLoss = 0.0
        for row in 0..<n {
            var best = 0
            for k in 1..<classCount where probabilities[row * classCount + k] > probabilities[row * classCount + best] { best = k }
            predicted[row] = best
            let p = min(max(probabilities[row * classCount + Int(labels[row])], 1e-15), 1 - 1e-15)
            logLoss -= log(p)
        }
        var truePositive = [Double](repeating: 0, count: classCount)
        var predictedCount = [Double](repeating: 0, count: classCount)
        var actualCount = [Double](repeating: 0, count: classCount)
        var correct = 0.0
        for row in 0..<n {
            let actual = Int(labels[row])
            predictedCount[predicted[row]] += 1
            actualCount[actual] += 1
            if predicted[row] == actual { correct += 1; truePositive[actual] += 1 }
        }
        func precision(_ k: Int) -> Double { predictedCount[k] > 0 ? truePositive[k] / predictedCount[k] : 0 }
        func recall(_ k: Int) -> Double { actualCount[k] > 0 ? truePositive[k] / actualCount[k] : 0 }
        func f1(_ k: Int) -> Double { let p = precision(k), r = recall(k); return p + r > 0 ? 2 * p * r / (p + r) : 0 }
        let classes = classCount == 2 ? [1] : Array(0..<classCount)
        func average(_ metric: (Int) -> Double) -> Double { classes.map(metric).reduce(0, +) / Double(classes.count) }
        let aucs = classes.compactMap { k -> Double? in
            auc(scores: (0..<n).map { probabilities[$0 * classCount + k] }, positive: labels.map { Int($0) == k })
        }
        var result: [String: Double] = [
            "accuracy": correct / Double(max(n, 1)),
            "precision": average(precision),
            "recall": average(recall),
            "f1": average(f1),
            "logLoss": logLoss / Double(max(n, 1)),
        ]
        if !aucs.isEmpty { result["auc"] = aucs.reduce(0, +) / Double(aucs.count) }
        return result
    }

    /// rmse, mae and r2.
    public static func regression(targets: [Double], predictions: [Double]) -> [String: Double] {
        let n = Double(max(targets.count, 1))
        var squared = 0.0, absolute = 0.0
        for (y, p) in zip(targets, predictions) {
            squared += (y - p) * (y - p)
            absolute += abs(y - p)
        }
        let mean = targets.reduce(0, +) / n
        let total = targets.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        return ["rmse": (squared / n).squareRoot(), "mae": absolute / n, "r2": total > 0 ? 1 - squared / total : 0]
    }

    /// The area under the ROC curve (ties count half), or nil when only one class is present.
    public static func auc(scores: [Double], positive: [Bool]) -> Double? {
        let positives = positive.filter { $0 }.count, negatives = positive.count - positives
        guard positives > 0, negatives > 0 else { return nil }
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSum = 0.0
        var index = 0
        while index < order.count {
            var end = index
            while end + 1 < order.count && scores[order[end + 1]] == scores[order[index]] { end += 1 }
            let averageRank = Double(index + end) / 2 + 1
            for position in index...end where positive[order[position]] { rankSum += averageRank }
            index = end + 1
        }
        return (rankSum - Double(positives) * Double(positives + 1) / 2) / (Double(positives) * Double(negatives))
    }
}
