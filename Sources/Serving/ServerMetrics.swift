import Foundation
import Prometheus
import Synchronization

/// Request counts and a latency histogram per model, version and status, in Prometheus text format.
public final class ServerMetrics: Sendable {
    struct Key: Hashable {
        var model: String
        var version: String
        var status: Int
        var wire: WireProtocol
    }

    /// How a request came: the `protocol` label.
    public enum WireProtocol: String, Sendable, Comparable {
        case http, grpc
        public static func < (a: WireProtocol, b: WireProtocol) -> Bool { a.rawValue < b.rawValue }
    }
    /// One series' collectors: made once, then only incremented (their own atomics and locks).
    struct Handles: Sendable {
        let requests: Counter
        let errors: Counter?
        let duration: ValueHistogram
    }

    /// Upper bounds of the latency buckets, in seconds.
    static let bounds: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

    /// Every series the server exports on `/metrics`, in Prometheus text format (swift-prometheus).
    let registry = PrometheusCollectorRegistry()
    private let series = Mutex<[Key: Handles]>([:])
    /// The last total given for each counter set by ``setCounter(_:help:labels:to:)``.
    private let totals = Mutex<[String: Int]>([:])

    static var requests: MetricNameDescriptor {
        MetricNameDescriptor(
        metricName: "stagecraft_requests_total", unitName: "",
        helpText: "Inference requests answered, by model, version and HTTP status.")
    }
    static var errors: MetricNameDescriptor {
        MetricNameDescriptor(
        metricName: "stagecraft_request_errors_total", unitName: "", helpText: "Inference requests answered with a 4xx or 5xx status.")
    }
    static var duration: MetricNameDescriptor {
        MetricNameDescriptor(
        metricName: "stagecraft_request_duration_seconds", unitName: "", helpText: "Time from request to response.")
    }

    /// The label of every request whose model is not loaded (a name from a request path must never become a series:
    /// anyone who reaches the port could make as many as they like). Not a valid model name, so it cannot collide.
    static let unknownModel = "_unknown"
    /// At most this many series; past it, requests count under ``unknownModel`` (a bound even for a server that has
    /// loaded and unloaded many versions).
    static let maxSeries = 4_096

    public init() {}

    /// Counts one answered request for the model a request named: the name becomes a label only when `repository` has
    /// that model loaded (the one place that rule is applied, whatever the protocol).
    func record(
        requested model: String, in repository: ModelRepository, version: String?, status: Int,
        protocol wire: WireProtocol = .http, seconds: Double
    ) {
        record(model: repository.contains(model: model) ? model : nil, version: version, status: status, protocol: wire, seconds: seconds)
    }

    /// Counts one answered request.
    /// - Parameters:
    ///   - model: the model's name when it is loaded, nil otherwise.
    ///   - version: the version that answered, nil when none did.
    ///   - protocol: how the request came.
    public func record(model: String?, version: String?, status: Int, protocol wire: WireProtocol = .http, seconds: Double) {
        let status = (100...599).contains(status) ? status : 0
        let handles = series.withLock { all -> Handles in
            let label = model == nil ? "" : String((version ?? "").prefix(12))
            var key = Key(model: model ?? Self.unknownModel, version: label, status: status, wire: wire)
            if all[key] == nil && all.count >= Self.maxSeries {
                key = Key(model: Self.unknownModel, version: "", status: status, wire: wire)
            }
            if let existing = all[key] { return existing }
            let labels = [
                ("model", key.model), ("version", key.version), ("status", String(key.status)), ("protocol", key.wire.rawValue),
            ]
            let made = Handles(
                requests: registry.makeCounter(descriptor: Self.requests, labels: labels),
                errors: key.status >= 400 ? registry.makeCounter(descriptor: Self.errors, labels: labels) : nil,
                duration: registry.makeValueHistogram(descriptor: Self.duration, labels: labels, buckets: Self.bounds))
            all[key] = made
            return made
        }
        handles.requests.increment()
        handles.errors?.increment()
        handles.duration.record(seconds)
    }

    /// Sets a counter kept elsewhere (dropped samples, labels received) to its running `total`.
    func setCounter(_ name: String, help: String, labels: [(String, String)], to total: Int) {
        let id = name + labels.map { "\u{0}\($0.0)=\($0.1)" }.joined()
        let previous = totals.withLock { totals -> Int in
            let previous = totals[id] ?? 0
            totals[id] = max(previous, total)
            return previous
        }
        let counter = registry.makeCounter(
            descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
        if total > previous { counter.increment(by: Int64(total - previous)) }
    }

    /// Sets a gauge.
    func setGauge(_ name: String, help: String, labels: [(String, String)], to value: Double) {
        registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
            .set(to: value)
    }

    /// The Prometheus text exposition of every series.
    public func render() -> String { registry.emitToString() }
}
