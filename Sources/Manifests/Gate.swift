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

/// A threshold a version must meet in an environment, such as `auc: ">= 0.95"`, or one relative to the version
/// serving there (champion / challenger): `auc: ">= serving - 0.005"`, `logLoss: "<= serving"`.
public struct Gate: Hashable, Sendable, Codable, CustomStringConvertible {
    public var metric: Metric
    public var comparison: Comparison
    /// The threshold; for a relative gate, what is added to the serving version's value.
    public var threshold: Double
    /// True when the threshold is relative to the serving version's value on the candidate's holdout set.
    public var relativeToServing: Bool
    /// Where the gate is written.
    public var location: SourceLocation

    public init(metric: Metric, comparison: Comparison, threshold: Double, relativeToServing: Bool = false, location: SourceLocation) {
        self.metric = metric
        self.comparison = comparison
        self.threshold = threshold
        self.relativeToServing = relativeToServing
        self.location = location
    }

    /// `auc >= 0.95`, `auc >= serving - 0.005`
    public var description: String {
        guard relativeToServing else { return "\(metric.rawValue) \(comparison.rawValue) \(JSONValue.format(threshold))" }
        let offset = threshold == 0 ? "" : " \(threshold < 0 ? "-" : "+") \(JSONValue.format(abs(threshold)))"
        return "\(metric.rawValue) \(comparison.rawValue) serving\(offset)"
    }

    /// True when `value` meets the gate (for a relative gate, given the serving version's value as `serving`).
    public func passes(_ value: Double, serving: Double = 0) -> Bool {
        comparison.holds(value, relativeToServing ? serving + threshold : threshold)
    }

    /// Parses `<op> <number>`; nil when the text has another form.
    static func parse(_ text: String) -> (Comparison, Double)? {
        guard let parsed = parseAny(text), !parsed.relative else { return nil }
        return (parsed.comparison, parsed.threshold)
    }

    /// Parses `<op> <number>` or `<op> serving [(+|-) <number>]`.
    static func parseAny(_ text: String) -> (comparison: Comparison, threshold: Double, relative: Bool)? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        func number(_ text: String) -> Double? {
            guard !text.isEmpty, let value = Double(text), value.isFinite, text.allSatisfy({ $0.isNumber || "+-.eE".contains($0) })
            else { return nil }
            return value
        }
        for comparison in [Comparison.atLeast, .atMost, .greaterThan, .lessThan] where trimmed.hasPrefix(comparison.rawValue) {
            let rest = trimmed.dropFirst(comparison.rawValue.count).trimmingCharacters(in: .whitespaces)
            guard rest.hasPrefix("serving") else { return number(rest).map { (comparison, $0, false) } }
            let offset = rest.dropFirst("serving".count).trimmingCharacters(in: .whitespaces)
            if offset.isEmpty { return (comparison, 0, true) }
            guard let sign = offset.first, sign == "+" || sign == "-",
                let value = number(offset.dropFirst().trimmingCharacters(in: .whitespaces)), value >= 0
            else { return nil }
            return (comparison, sign == "-" ? -value : value, true)
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
            guard case .scalar(let scalar) = value, let (comparison, threshold, relative) = Gate.parseAny(scalar.string) else {
                report(value, "gate '\(key)' must be '<op> <number>' or '<op> serving [+|- <number>]' with op one of >=, <=, >, < "
                    + "(such as \">= 0.9\" or \">= serving - 0.005\"), found \(Self.describe(value))")
                continue
            }
            if relative && !metric.isOffline {
                report(value, "gate '\(key)' cannot be relative to the serving version: only holdout metrics are (\(key) is measured "
                    + "on the live probe)")
                continue
            }
            gates.append(
                Gate(
                    metric: metric, comparison: comparison, threshold: threshold, relativeToServing: relative,
                    location: location(keyNode)))
        }
        return gates
    }
}

import Foundation
import Yams
