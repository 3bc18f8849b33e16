/// What a model does.
public enum Task: String, Sendable, Hashable, CaseIterable, Codable {
    case binaryClassification = "binary-classification"
    case multiclassClassification = "multiclass-classification"
    case regression

    public var isClassification: Bool { self != .regression }
}

/// A measured quantity that gates and searches name.
public enum Metric: String, Sendable, Hashable, CaseIterable, Codable {
    case accuracy, precision, recall, f1, auc, logLoss, rmse, mae, r2
    case latencyP99Ms, errorRate

    /// Measured on the holdout set (offline) rather than on the live probe.
    public var isOffline: Bool { self != .latencyP99Ms && self != .errorRate }

    /// True when a larger value is better (accuracy), false when smaller is better (rmse, latency).
    public var higherIsBetter: Bool {
        switch self {
        case .logLoss, .rmse, .mae, .latencyP99Ms, .errorRate: return false
        default: return true
        }
    }

    /// The metrics that can be computed for a model of `task`.
    public static func applicable(to task: Task) -> [Metric] {
        let online: [Metric] = [.latencyP99Ms, .errorRate]
        switch task {
        case .binaryClassification, .multiclassClassification:
            return [.accuracy, .precision, .recall, .f1, .auc, .logLoss] + online
        case .regression:
            return [.rmse, .mae, .r2] + online
        }
    }
}

/// `>=`, `<=`, `>` or `<`.
public enum Comparison: String, Sendable, Hashable, CaseIterable, Codable {
    case atLeast = ">=", atMost = "<=", greaterThan = ">", lessThan = "<"

    public func holds(_ value: Double, _ threshold: Double) -> Bool {
        switch self {
        case .atLeast: return value >= threshold
        case .atMost: return value <= threshold
        case .greaterThan: return value > threshold
        case .lessThan: return value < threshold
        }
    }
}

/// A threshold a version must meet in an environment, such as `auc: ">= 0.95"`.
public struct Gate: Hashable, Sendable, Codable, CustomStringConvertible {
    public var metric: Metric
    public var comparison: Comparison
    public var threshold: Double
    /// Where the gate is written.
    public var location: SourceLocation

    public init(metric: Metric, comparison: Comparison, threshold: Double, location: SourceLocation) {
        self.metric = metric
        self.comparison = comparison
        self.threshold = threshold
        self.location = location
    }

    /// `auc >= 0.95`
    public var description: String { "\(metric.rawValue) \(comparison.rawValue) \(JSONValue.format(threshold))" }

    /// True when `value` meets the gate.
    public func passes(_ value: Double) -> Bool { comparison.holds(value, threshold) }

    /// Parses `<op> <number>`; nil when the text has another form.
    static func parse(_ text: String) -> (Comparison, Double)? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        for comparison in [Comparison.atLeast, .atMost, .greaterThan, .lessThan] where trimmed.hasPrefix(comparison.rawValue) {
            let number = trimmed.dropFirst(comparison.rawValue.count).trimmingCharacters(in: .whitespaces)
            guard !number.isEmpty, let value = Double(number), value.isFinite,
                  number.allSatisfy({ $0.isNumber || "+-.eE".contains($0) }) else { return nil }
            return (comparison, value)
        }
        return nil
    }
}

extension YAMLReader {
    /// Reads a `gates:` mapping.
    func gates(_ node: Node, _ path: String) -> [Gate] {
        guard let mapping = mapping(node, path, allowed: nil) else { return [] }
        var gates: [Gate] = []
        for (key, keyNode, value) in mapping.entries {
            guard let metric = Metric(rawValue: key) else {
                let names = Metric.allCases.map(\.rawValue)
                report(keyNode, "unknown gate metric '\(key)'\(Spelling.didYouMean(key, among: names)) (expected one of: "
                    + "\(names.joined(separator: ", ")))")
                continue
            }
            guard case .scalar(let scalar) = value, let (comparison, threshold) = Gate.parse(scalar.string) else {
                report(value, "gate '\(key)' must be '<op> <number>' with op one of >=, <=, >, < (such as \">= 0.9\"), found "
                    + "\(Self.describe(value))")
                continue
            }
            gates.append(Gate(metric: metric, comparison: comparison, threshold: threshold, location: location(keyNode)))
        }
        return gates
    }
}

import Foundation
import Yams
