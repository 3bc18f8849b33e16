public import Foundation
import HTTPTypes
import Hummingbird
public import Learning
import NIOCore
import Synchronization

/// True labels for earlier predictions, joined by request `id`: live metrics per model version, named as gates
/// name them (accuracy, auc, f1, logLoss… for classifiers; rmse, mae, r2 for regression).
public final class LiveFeedback: Sendable {
    /// A prediction waiting for its label.
    struct Pending: Sendable {
        var model: String
        var version: String
        var classes: [String]?
        /// Row-major, one per class (classifiers); or the predicted values (regression).
        var probabilities: [Double]?
        var values: [Double]?
        var rows: Int
    }

    /// The labelled rows of one version.
    struct Outcomes: Sendable {
        var classCount = 0
        var labels: [Int32] = []
        var probabilities: [Double] = []
        var targets: [Double] = []
        var predictions: [Double] = []
        /// Labels that are not one of the model's classes.
        var unknownLabels = 0
        var count: Int { labels.count + targets.count }
    }

    struct State: Sendable {
        var pending: [String: Pending] = [:]
        var order: [String] = []
        var head = 0
        var outcomes: [String: [String: Outcomes]] = [:]
    }

    /// How many recent predictions wait for labels (older ones are forgotten first). Each costs a few hundred bytes.
    public let capacity: Int
    /// Where every label received is appended as JSON Lines (`<model>.jsonl`), for monitoring; nil keeps none.
    public let directory: URL?
    private let state = Mutex(State())
    private let queue = DispatchQueue(label: "stagecraft.feedback")

    public init(capacity: Int = 2_000, directory: URL? = nil) {
        self.capacity = capacity
        self.directory = directory
    }

    /// Remembers a prediction under its request id.
    public func remember(id: String, model: String, version: String, predictions: Predictions, classes: [String]?, rows: Int) {
        guard capacity > 0 else { return }
        let pending = Pending(
            model: model, version: version, classes: classes, probabilities: predictions.probabilities,
            values: predictions.values, rows: rows)
        state.withLock { state in
            if state.pending.updateValue(pending, forKey: id) == nil {
                state.order.append(id)
                if state.order.count - state.head > capacity {
                    state.pending[state.order[state.head]] = nil
                    state.head += 1
                    if state.head > capacity {
                        state.order.removeFirst(state.head)
                        state.head = 0
                    }
                }
            }
        }
    }

    /// One label (or one per row of a multi-row request) for request `id`.
    public struct Label: Sendable {
        public var id: String
        /// Strings for classifiers, numbers for regression.
        public var values: [String]
        public init(id: String, values: [String]) {
            self.id = id
            self.values = values
        }
    }

    /// Joins labels with remembered predictions of `model`; returns how many rows were labelled and the ids that
    /// matched nothing (unknown, forgotten, another model's, or a row count that differs).
    public func add(model: String, _ labels: [Label]) -> (accepted: Int, unmatched: [String]) {
        var accepted = 0
        var unmatched: [String] = []
        state.withLock { state in
            for label in labels {
                guard let pending = state.pending[label.id], pending.model == model, pending.rows == label.values.count else {
                    unmatched.append(label.id)
                    continue
                }
                var outcomes = state.outcomes[model, default: [:]][pending.version] ?? Outcomes()
                for (row, value) in label.values.enumerated() {
                    if let classes = pending.classes, let probabilities = pending.probabilities {
                        guard let index = classes.firstIndex(of: value) else {
                            outcomes.unknownLabels += 1
                            continue
                        }
                        outcomes.classCount = classes.count
                        outcomes.labels.append(Int32(index))
                        outcomes.probabilities += probabilities[(row * classes.count)..<((row + 1) * classes.count)]
                    } else if let values = pending.values, let target = Double(value) {
                        outcomes.targets.append(target)
                        outcomes.predictions.append(values[row])
                    } else {
                        outcomes.unknownLabels += 1
                        continue
                    }
                    accepted += 1
                }
                state.outcomes[model, default: [:]][pending.version] = outcomes
                state.pending[label.id] = nil
            }
        }
        if let directory, !labels.isEmpty {
            // Every label is kept, matched or not: `monitor` joins them with the capture files, which reach further back.
            let lines = labels.map { label in
                String(
                    decoding: (try? JSONSerialization.data(withJSONObject: [
                        "id": label.id, "labels": label.values, "time": Date().timeIntervalSince1970,
                    ])) ?? Data(), as: UTF8.self)
            }
            let file = directory.appendingPathComponent("\(model).jsonl")
            queue.async {
                try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                if !FileManager.default.fileExists(atPath: file.path) {
                    _ = FileManager.default.createFile(atPath: file.path, contents: nil)
                }
                guard let handle = try? FileHandle(forWritingTo: file) else { return }
                defer { try? handle.close() }
                _ = try? handle.seekToEnd()
                handle.write(Data(lines.map { $0 + "\n" }.joined().utf8))
            }
        }
        return (accepted, unmatched)
    }

    /// Live metrics of each version of `model` that has labels, with `labels` (the count) and `unknownLabels`.
    public func metrics(model: String) -> [String: [String: Double]] {
        let outcomes = state.withLock { $0.outcomes[model] ?? [:] }
        return outcomes.mapValues { outcome in
            var metrics: [String: Double]
            if !outcome.labels.isEmpty {
                metrics = Metrics.classification(
                    labels: outcome.labels, probabilities: outcome.probabilities, classCount: outcome.classCount)
            } else if !outcome.targets.isEmpty {
                metrics = Metrics.regression(targets: outcome.targets, predictions: outcome.predictions)
            } else {
                metrics = [:]
            }
            metrics["labels"] = Double(outcome.count)
            metrics["unknownLabels"] = Double(outcome.unknownLabels)
            return metrics
        }
    }

    /// Every model with labels.
    public var models: [String] { state.withLock { $0.outcomes.keys.sorted() } }

    /// Sets `stagecraft_live_metric{model, version, metric}` and `stagecraft_feedback_labels_total` in `metrics`.
    func export(to metrics: ServerMetrics) {
        for model in models {
            for (version, values) in self.metrics(model: model) {
                let labels = [("model", model), ("version", String(version.prefix(12)))]
                for (name, value) in values where name != "labels" && name != "unknownLabels" && value.isFinite {
                    metrics.setGauge(
                        "stagecraft_live_metric", help: "A metric over the predictions that received true labels (feedback).",
                        labels: labels + [("metric", name)], to: value)
                }
                metrics.setCounter(
                    "stagecraft_feedback_labels_total", help: "Rows that received a true label.", labels: labels,
                    to: Int(values["labels"] ?? 0))
            }
        }
    }

    // MARK: HTTP

    /// `POST /v2/models/{m}/feedback`: `{"id": "…", "label": …}`, `{"id": "…", "labels": […]}` (one per row of a
    /// multi-row request), or `{"feedback": [those…]}`.
    func post(_ repository: ModelRepository, _ request: Request, _ context: BasicRequestContext, bodyLimit: Int) async -> Response {
        guard let model = context.parameters.get("model") else { return InferenceServer.error(.badRequest, "no model in the path") }
        guard repository.contains(model: model) else { return InferenceServer.notFound(model, nil, repository) }
        let usage =
            #"the body must be {"id": "<request id>", "label": <true label>}, {"id": "…", "labels": [one per row]}, "#
            + #"or {"feedback": [those]}"#
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: bodyLimit) } catch {
            return InferenceServer.response(for: InferenceError.bodyTooLarge(limit: bodyLimit))
        }
        guard let json = JSON.parse(Data(body.readableBytesView)), case .object = json else {
            return InferenceServer.error(.badRequest, "the body is not a JSON object; \(usage)")
        }
        var items: [JSON] = [json]
        if let list = json["feedback"] {
            guard case .array(let entries) = list else {
                return InferenceServer.error(.badRequest, "\"feedback\" must be a list; \(usage)")
            }
            items = entries
        }
        var labels: [Label] = []
        for (index, item) in items.enumerated() {
            guard case .string(let id)? = item["id"] else {
                return InferenceServer.error(.badRequest, "feedback \(index): no \"id\" string; \(usage)")
            }
            var values: [JSON] = []
            if let single = item["label"] { values = [single] } else if case .array(let many)? = item["labels"] { values = many }
            var texts: [String] = []
            for value in values {
                switch value {
                case .string(let text): texts.append(text)
                case .number(let number) where number.isFinite: texts.append(formatNumber(number))
                case .bool(let flag): texts.append(flag ? "true" : "false")
                default:
                    return InferenceServer.error(.badRequest, "feedback \(index) ('\(id)'): a label must be a string or a finite number")
                }
            }
            guard !texts.isEmpty else {
                return InferenceServer.error(.badRequest, "feedback \(index) ('\(id)'): no \"label\" or \"labels\"; \(usage)")
            }
            labels.append(Label(id: id, values: texts))
        }
        let (accepted, unmatched) = add(model: model, labels)
        return InferenceServer.json(["model": model, "accepted": accepted, "unmatched": unmatched, "live": live(model)])
    }

    /// `GET /v2/models/{m}/feedback`: the live metrics of each version.
    func get(_ repository: ModelRepository, _ context: BasicRequestContext) -> Response {
        guard let model = context.parameters.get("model") else { return InferenceServer.error(.badRequest, "no model in the path") }
        guard repository.contains(model: model) else { return InferenceServer.notFound(model, nil, repository) }
        return InferenceServer.json(["model": model, "live": live(model)])
    }

    private func live(_ model: String) -> [String: Any] {
        metrics(model: model).mapValues { metrics in metrics.filter { $0.value.isFinite } as [String: Any] }
    }
}
