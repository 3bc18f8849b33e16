public import Foundation
import Synchronization

/// Counts read from a server's `/metrics` (the Prometheus text format) at one moment: requests, errors, and the
/// request-duration histogram, summed over models, versions and wires.
public struct TrafficSample: Sendable {
    public var time: Date
    public var requests: Double
    public var errors: Double
    /// Cumulative counts by upper bound (seconds), `+Inf` as `.infinity`.
    public var buckets: [Double: Double]

    /// What a page shows: over the window between two samples, or since the server started when there is no earlier
    /// one.
    public struct Summary: Codable, Sendable, Equatable {
        public var requestsPerSecond: Double?
        /// The upper bound of the histogram bucket the 99th percentile falls in.
        public var p99Milliseconds: Double?
        public var errorRate: Double?
        public var requests: Double
        /// `last 12 s`, or `since the server started`.
        public var window: String
    }

    /// Reads the lines of `stagecraft_requests_total`, `stagecraft_request_errors_total` and
    /// `stagecraft_request_duration_seconds_bucket`; other lines are ignored.
    public static func parse(_ text: String, at time: Date = Date()) -> TrafficSample {
        var sample = TrafficSample(time: time, requests: 0, errors: 0, buckets: [:])
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let series = line[..<space]
            let name = series.prefix { $0 != "{" && $0 != " " }
            switch name {
            case "stagecraft_requests_total": sample.requests += value
            case "stagecraft_request_errors_total": sample.errors += value
            case "stagecraft_request_duration_seconds_bucket":
                guard let le = series.range(of: "le=\"") else { continue }
                let bound = series[le.upperBound...].prefix { $0 != "\"" }
                let upper = bound == "+Inf" ? Double.infinity : Double(bound)
                if let upper { sample.buckets[upper, default: 0] += value }
            default: continue
            }
        }
        return sample
    }

    /// The summary of the requests between `earlier` (nil: since the start) and this sample.
    public func summary(since earlier: TrafficSample?) -> Summary {
        let base = earlier ?? TrafficSample(time: time, requests: 0, errors: 0, buckets: [:])
        let requests = max(0, self.requests - base.requests)
        let errors = max(0, self.errors - base.errors)
        let seconds = time.timeIntervalSince(base.time)
        var p99: Double?
        let bounds = buckets.keys.sorted()
        if let total = bounds.last.map({ buckets[$0]! - (base.buckets[$0] ?? 0) }), total > 0 {
            let wanted = total * 0.99
            for bound in bounds where buckets[bound]! - (base.buckets[bound] ?? 0) >= wanted {
                p99 = bound.isFinite ? bound * 1000 : nil
                break
            }
        }
        return Summary(
            requestsPerSecond: earlier != nil && seconds > 0 ? requests / seconds : nil, p99Milliseconds: p99,
            errorRate: requests > 0 ? errors / requests : nil, requests: requests,
            window: earlier != nil ? "last \(Int(seconds.rounded())) s" : "time since the server started")
    }
}

/// Keeps the last samples of each environment's server, so that a page shows rates over the time since an earlier one
/// (at least a second before, so that a burst of page loads still measures over a useful window).
public final class TrafficSampler: Sendable {
    private struct Pair {
        var earlier: TrafficSample?
        var latest: TrafficSample
    }

    private let samples = Mutex<[String: Pair]>([:])
    /// Environments are named by the project; at most this many are kept.
    static let limit = 256

    /// A sampler that has read nothing yet.
    public init() {}

    /// Records `metrics` read now from `environment`'s server, and summarises the window since an earlier sample.
    public func record(environment: String, metrics: String, at time: Date = Date()) -> TrafficSample.Summary {
        let sample = TrafficSample.parse(metrics, at: time)
        return samples.withLock { samples in
            var pair = samples[environment] ?? Pair(earlier: nil, latest: sample)
            // A restarted server's counters start again from zero: no window across that.
            if pair.latest.requests > sample.requests { pair = Pair(earlier: nil, latest: sample) }
            if time.timeIntervalSince(pair.latest.time) >= 1 { pair = Pair(earlier: pair.latest, latest: sample) }
            if samples.count >= Self.limit && samples[environment] == nil { samples.removeAll() }
            samples[environment] = pair
            return sample.summary(since: pair.earlier)
        }
    }
}
