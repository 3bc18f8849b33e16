import Yams

/// A threshold on a monitored value: `<op> <number>`, as written.
public struct Threshold: Hashable, Sendable, Codable, CustomStringConvertible {
    public var comparison: Comparison
    public var value: Double
    public init(comparison: Comparison, value: Double) {
        self.comparison = comparison
        self.value = value
    }
    public var description: String { "\(comparison.rawValue) \(JSONValue.format(value))" }
    /// True when `measured` meets the threshold.
    public func holds(_ measured: Double) -> Bool { comparison.holds(measured, value) }
}

/// An environment's `monitor:` section: what served models must keep showing, and what triggers a retrain.
///
///     monitor:
///       window: 1000            # the last N captured rows of the serving version, or a time such as 24h
///       psi: "<= 0.2"           # every feature's (and the predictions') population stability index
///       pValue: ">= 0.001"      # every feature's Kolmogorov–Smirnov / chi-squared p-value
///       accuracy: ">= 0.9"      # any gate metric, on the rows that received true labels (feedback)
///       minLabels: 50           # live metrics count only with at least this many labels
///       newRows: ">= 1000"      # labelled captured rows: enough new data to retrain on
///       schedule: 7d            # how often `monitor --watch` evaluates
///       webhook: http://127.0.0.1:9000/alerts
public struct MonitorSpec: Hashable, Sendable {
    /// The last this many captured rows…
    public var window: Int = 1_000
    /// …or, when set, the rows captured in the last this many seconds.
    public var windowSeconds: Double?
    public var psi: Threshold?
    public var pValue: Threshold?
    /// Gates on live metrics.
    public var live: [Gate] = []
    public var minLabels: Int = 30
    public var newRows: Threshold?
    public var schedule: String?
    public var webhook: String?

    public init() {}

    static let keys =
        ["window", "psi", "pValue", "minLabels", "newRows", "schedule", "webhook"] + Metric.allCases.filter(\.isOffline).map(\.rawValue)
}

extension YAMLReader {
    func monitor(_ node: Node, _ path: String) -> MonitorSpec? {
        guard let mapping = mapping(node, path, allowed: MonitorSpec.keys) else { return nil }
        var spec = MonitorSpec()
        func threshold(_ key: String) -> Threshold? {
            guard let value = mapping[key] else { return nil }
            guard case .scalar(let scalar) = value, let (comparison, number) = Gate.parse(scalar.string) else {
                report(
                    value,
                    "'\(path).\(key)' must be '<op> <number>' with op one of >=, <=, >, < (such as \"<= 0.2\"), found "
                        + "\(Self.describe(value))")
                return nil
            }
            return Threshold(comparison: comparison, value: number)
        }
        if let node = mapping["window"] {
            if case .scalar(let scalar) = node, Int(scalar.string) == nil, let seconds = DurationText.seconds(scalar.string) {
                spec.windowSeconds = seconds
            } else if let value = int(node, "\(path).window (a row count, or a duration such as 24h)", range: 1...10_000_000) {
                spec.window = value
            }
        }
        if let node = mapping["minLabels"], let value = int(node, "\(path).minLabels", range: 1...10_000_000) { spec.minLabels = value }
        spec.psi = threshold("psi")
        spec.pValue = threshold("pValue")
        spec.newRows = threshold("newRows")
        if let node = mapping["schedule"], let text = string(node, "\(path).schedule") {
            if DurationText.seconds(text) == nil {
                report(
                    node,
                    "'\(path).schedule' must be a duration such as 30m, 12h or 7d, found "
                        + "'\(text)'")
            } else {
                spec.schedule = text
            }
        }
        if let node = mapping["webhook"], let text = string(node, "\(path).webhook") {
            if text.hasPrefix("http://") {
                spec.webhook = text
            } else {
                report(
                    node,
                    "'\(path).webhook' must be an http:// URL, found "
                        + "'\(text)'")
            }
        }
        for (key, keyNode, value) in mapping.entries {
            guard let metric = Metric(rawValue: key) else { continue }
            guard case .scalar(let scalar) = value, let (comparison, number) = Gate.parse(scalar.string) else {
                report(
                    value,
                    "'\(path).\(key)' must be '<op> <number>' with op one of >=, <=, >, < (such as \">= 0.9\"), found "
                        + "\(Self.describe(value))")
                continue
            }
            spec.live.append(Gate(metric: metric, comparison: comparison, threshold: number, location: location(keyNode)))
        }
        return spec
    }
}

/// Durations as files and options write them.
public enum DurationText {
    /// `500ms`, `30s`, `5m`, `12h`, `7d` or plain seconds, in seconds; nil for anything else or not positive.
    public static func seconds(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            if let value = Double(text.dropLast(suffix.count)), value > 0, value.isFinite { return value * scale }
        }
        return Double(text).flatMap { $0 > 0 && $0.isFinite ? $0 : nil }
    }

    /// `seconds` in the largest unit that keeps it whole-ish: `500ms`, `30s`, `5m`, `2h`.
    public static func format(_ seconds: Double) -> String {
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        if seconds < 120 { return "\(Int(seconds.rounded()))s" }
        if seconds < 7200 { return "\(Int((seconds / 60).rounded()))m" }
        return "\(Int((seconds / 3600).rounded()))h"
    }
}
