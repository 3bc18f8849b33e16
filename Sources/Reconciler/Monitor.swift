import Foundation
public import GitStore
public import Learning
import Manifests
public import Registry

/// One threshold of an environment's `monitor:` section that served traffic crossed (or, for `newRows`, reached).
public struct Trigger: Codable, Sendable, Hashable, CustomStringConvertible {
    /// `psi`, `pValue`, a live metric name, or `newRows`.
    public var kind: String
    /// The feature (or `prediction`) for drift; the metric for live metrics; empty for newRows.
    public var subject: String
    public var measured: Double
    public var threshold: String

    public var description: String {
        let what = subject.isEmpty ? kind : "\(kind)(\(subject))"
        return "\(what) \(GateResult.format(measured)) (threshold \(threshold))"
    }
}

/// What monitoring found for one model in one environment.
public struct ModelMonitorReport: Codable, Sendable {
    public var environment: String
    public var model: String
    public var version: String
    /// Captured rows of that version in the window.
    public var rows: Int
    public var drift: [FeatureDrift]
    public var predictionDrift: FeatureDrift?
    /// Live metrics over the captured rows that received labels (all of them, any version of the window's).
    public var live: [String: Double]
    public var labels: Int
    /// Labelled captured rows since the version was built: data to retrain on.
    public var newRows: Int
    public var triggers: [Trigger]
}

/// `stagecraft monitor`: captured traffic of each served version against its build's reference profile (drift),
/// joined with feedback labels (live metrics, new rows), checked against the environment's `monitor:` thresholds.
public struct Monitor {
    public let workspace: Workspace
    public let state: any StateStore

    public init(workspace: Workspace, state: any StateStore) {
        self.workspace = workspace
        self.state = state
    }

    /// A captured row: the request id, the version that answered, its inputs and prediction.
    struct CapturedRow {
        var id: String
        var version: String
        var inputs: [String: Any]
        var prediction: Any
        var probabilities: [Double]?
        var time: String
    }

    /// Evaluates every served model of `environment` (read at `commit`).
    public func evaluate(environment name: String, at commit: ObjectID) throws -> [ModelMonitorReport] {
        let environment = try workspace.environment(name, at: commit)
        let spec = environment.monitor ?? MonitorSpec()
        let served = try state.served(environment: name)
        var reports: [ModelMonitorReport] = []
        for deployment in environment.models {
            let version = served[deployment.model]?.version ?? deployment.version.flatMap(workspace.digest)
            guard let version else { continue }
            reports.append(try evaluate(model: deployment.model, version: version, environment: name, spec: spec))
        }
        return reports
    }

    func evaluate(model: String, version: String, environment: String, spec: MonitorSpec) throws -> ModelMonitorReport {
        let file = try workspace.artifacts.model(version)
        let built = try workspace.artifacts.buildInfo(version).createdAt
        let captured = captured(environment: environment, model: model)
        let ofVersion = captured.filter { $0.version == version }
        let window: [CapturedRow]
        if let seconds = spec.windowSeconds {
            let since = Timestamp.string(Date().addingTimeInterval(-seconds))
            window = ofVersion.filter { $0.time >= since }
        } else {
            window = Array(ofVersion.suffix(spec.window))
        }
        let labels = labels(environment: environment, model: model)

        var report = ModelMonitorReport(
            environment: environment, model: model, version: version, rows: window.count, drift: [],
            predictionDrift: nil, live: [:], labels: 0, newRows: 0, triggers: [])
        if let reference = file.reference, !window.isEmpty {
            let (dataset, predictions) = try Self.dataset(window, file: file)
            let (drift, predicted) = reference.compare(dataset, predictions: predictions)
            report.drift = drift
            report.predictionDrift = predicted
            for item in drift + [predicted].compactMap({ $0 }) {
                if let psi = spec.psi, !psi.holds(item.psi) {
                    report.triggers.append(Trigger(kind: "psi", subject: item.name, measured: item.psi, threshold: psi.description))
                }
                if let pValue = spec.pValue, let p = item.ksPValue ?? item.chiSquaredPValue, !pValue.holds(p) {
                    report.triggers.append(Trigger(kind: "pValue", subject: item.name, measured: p, threshold: pValue.description))
                }
            }
        }
        // Live metrics: the window's rows that have labels.
        let labelled = window.filter { labels[$0.id] != nil }
        report.labels = labelled.count
        report.live = Self.liveMetrics(labelled, labels: labels, classes: file.classes)
        if labelled.count >= spec.minLabels {
            for gate in spec.live {
                guard let value = report.live[gate.metric.rawValue], !gate.passes(value) else { continue }
                report.triggers.append(
                    Trigger(
                        kind: gate.metric.rawValue, subject: "", measured: value,
                        threshold: "\(gate.comparison.rawValue) \(GateResult.format(gate.threshold))"))
            }
        }
        let since = Timestamp.string(built)
        report.newRows = captured.filter { labels[$0.id] != nil && $0.time >= since }.count
        if let newRows = spec.newRows, newRows.holds(Double(report.newRows)) {
            report.triggers.append(Trigger(kind: "newRows", subject: "", measured: Double(report.newRows), threshold: newRows.description))
        }
        return report
    }

    // MARK: Reading captures and labels

    /// Every captured row of `model` in `environment`, oldest first (shadow answers left out).
    func captured(environment: String, model: String) -> [CapturedRow] {
        let folder = workspace.root.appendingPathComponent(".stagecraft/capture/\(environment)/\(model)")
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
            .compactMap { name -> (Int, String)? in
                guard name.hasPrefix("capture-"), name.hasSuffix(".jsonl"), let index = Int(name.dropFirst(8).dropLast(6)) else {
                    return nil
                }
                return (index, name)
            }.sorted { $0.0 < $1.0 }
        var rows: [CapturedRow] = []
        for (_, name) in files {
            guard let data = try? Data(contentsOf: folder.appendingPathComponent(name)) else { continue }
            for line in data.split(separator: UInt8(ascii: "\n")) {
                guard let record = JSON.parse(Data(line))?.foundation as? [String: Any], record["shadow"] == nil,
                    let id = record["id"] as? String, let version = record["version"] as? String,
                    let inputs = record["inputs"] as? [String: Any], let outputs = record["outputs"] as? [String: Any],
                    let predictions = outputs["predict"] as? [Any]
                else { continue }
                let probabilities = outputs["predict_proba"] as? [[Double]]
                let time = record["time"] as? String ?? ""
                // One captured row per input row; a multi-row request's id stands for its first row only.
                for row in predictions.indices {
                    let values = inputs.mapValues { ($0 as? [Any]).map { row < $0.count ? $0[row] : NSNull() } ?? NSNull() }
                    rows.append(
                        CapturedRow(
                            id: row == 0 ? id : "\(id)#\(row)", version: version, inputs: values, prediction: predictions[row],
                            probabilities: probabilities.flatMap { row < $0.count ? $0[row] : nil }, time: time))
                }
            }
        }
        return rows
    }

    /// The true labels sent as feedback, by request id (the latest wins).
    func labels(environment: String, model: String) -> [String: String] {
        let file = workspace.root.appendingPathComponent(".stagecraft/feedback/\(environment)/\(model).jsonl")
        guard let data = try? Data(contentsOf: file) else { return [:] }
        var labels: [String: String] = [:]
        for line in data.split(separator: UInt8(ascii: "\n")) {
            guard let record = JSON.parse(Data(line))?.foundation as? [String: Any], let id = record["id"] as? String,
                let values = record["labels"] as? [String]
            else { continue }
            for (row, value) in values.enumerated() { labels[row == 0 ? id : "\(id)#\(row)"] = value }
        }
        return labels
    }

    /// The captured rows as the model's raw feature columns, and their predictions.
    static func dataset(_ rows: [CapturedRow], file: ModelFile) throws -> (Dataset, Predictions) {
        let predictions =
            file.classes == nil
            ? Predictions(values: rows.map { ($0.prediction as? NSNumber)?.doubleValue ?? .nan })
            : Predictions(labels: rows.map { "\($0.prediction)" })
        return (try file.dataset(records: rows.map(\.inputs), source: "capture"), predictions)
    }

    /// Metrics of the labelled rows, named as gates name them.
    static func liveMetrics(_ rows: [CapturedRow], labels: [String: String], classes: [String]?) -> [String: Double] {
        guard !rows.isEmpty else { return [:] }
        if let classes {
            var indices: [Int32] = []
            var probabilities: [Double] = []
            for row in rows {
                guard let label = labels[row.id], let index = classes.firstIndex(of: label) else { continue }
                indices.append(Int32(index))
                if let p = row.probabilities, p.count == classes.count {
                    probabilities += p
                } else {
                    // Without probabilities, the predicted class counts as certain.
                    probabilities += classes.map { $0 == "\(row.prediction)" ? 1 : 0 }
                }
            }
            return indices.isEmpty ? [:] : Metrics.classification(labels: indices, probabilities: probabilities, classCount: classes.count)
        }
        let pairs = rows.compactMap { row -> (Double, Double)? in
            guard let label = labels[row.id].flatMap(Double.init), let predicted = (row.prediction as? NSNumber)?.doubleValue else {
                return nil
            }
            return (label, predicted)
        }
        return pairs.isEmpty ? [:] : Metrics.regression(targets: pairs.map(\.0), predictions: pairs.map(\.1))
    }
}
