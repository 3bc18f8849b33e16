import Foundation
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
    struct Series {
        var count = 0
        var sum = 0.0
        var buckets = [Int](repeating: 0, count: ServerMetrics.bounds.count)

        mutating func add(_ seconds: Double) {
            count += 1
            sum += seconds
            for (index, bound) in ServerMetrics.bounds.enumerated() where seconds <= bound { buckets[index] += 1 }
        }
    }

    /// Upper bounds of the latency buckets, in seconds.
    static let bounds: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

    private let series = Mutex<[Key: Series]>([:])

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
        series.withLock { all in
            let label = model == nil ? "" : String((version ?? "").prefix(12))
            var key = Key(model: model ?? Self.unknownModel, version: label, status: status, wire: wire)
            if all[key] == nil && all.count >= Self.maxSeries {
                key = Key(model: Self.unknownModel, version: "", status: status, wire: wire)
            }
            all[key, default: Series()].add(seconds)
        }
    }

    /// The Prometheus text exposition of every series.
    public func render() -> String {
        let snapshot = series.withLock { $0 }
        let keys = snapshot.keys.sorted { ($0.model, $0.version, $0.status, $0.wire) < ($1.model, $1.version, $1.status, $1.wire) }
        var text = "# HELP stagecraft_requests_total Inference requests answered, by model, version and HTTP status.\n"
        text += "# TYPE stagecraft_requests_total counter\n"
        for key in keys { text += "stagecraft_requests_total{\(labels(key))} \(snapshot[key]!.count)\n" }
        text += "# HELP stagecraft_request_errors_total Inference requests answered with a 4xx or 5xx status.\n"
        text += "# TYPE stagecraft_request_errors_total counter\n"
        for key in keys where key.status >= 400 { text += "stagecraft_request_errors_total{\(labels(key))} \(snapshot[key]!.count)\n" }
        text += "# HELP stagecraft_request_duration_seconds Time from request to response.\n"
        text += "# TYPE stagecraft_request_duration_seconds histogram\n"
        for key in keys {
            let entry = snapshot[key]!
            for (index, bound) in Self.bounds.enumerated() {
                text += "stagecraft_request_duration_seconds_bucket{\(labels(key)),le=\"\(bound)\"} \(entry.buckets[index])\n"
            }
            text += "stagecraft_request_duration_seconds_bucket{\(labels(key)),le=\"+Inf\"} \(entry.count)\n"
            text += "stagecraft_request_duration_seconds_sum{\(labels(key))} \(entry.sum)\n"
            text += "stagecraft_request_duration_seconds_count{\(labels(key))} \(entry.count)\n"
        }
        return text
    }

    private func labels(_ key: Key) -> String {
        "model=\"\(escape(key.model))\",version=\"\(escape(key.version))\",status=\"\(key.status)\",protocol=\"\(key.wire.rawValue)\""
    }

    private func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(
            of: "\n", with: "\\n")
    }
}
