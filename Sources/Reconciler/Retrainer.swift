public import Foundation
import GitStore
import Learning
import Manifests
import Registry

/// What a retrain committed.
public struct RetrainResult: Codable, Sendable {
    public var model: String
    public var commit: String
    public var branch: String
    /// The new training data file the manifest now names.
    public var data: String
    /// Labelled captured rows appended to the previous training data.
    public var addedRows: Int
    public var triggers: [Trigger]
}

/// Retraining on feedback: the labelled captured rows are appended to the model's training data in a new file, and
/// the manifest is pointed at it by a commit (actor `stagecraft`, trailers naming the trigger and its measured
/// values). A `track` environment's next reconcile then builds, verifies and serves the new version.
public struct Retrainer {
    public let monitor: Monitor
    public var workspace: Workspace { monitor.workspace }

    public init(monitor: Monitor) {
        self.monitor = monitor
    }

    public func retrain(_ report: ModelMonitorReport, date: Date = Date()) throws -> RetrainResult {
        let repository = workspace.repository
        let branch = workspace.settings.branch
        guard let tip = try repository.branchTip(branch) else {
            throw ReconcileError(
                .invalid,
                "no branch '\(branch)' to commit the "
                    + "retrain on")
        }
        let inputs = try workspace.builder.inputs(model: report.model, ref: tip.hex)
        let manifest = inputs.manifest
        let trainPath = manifest.data.train
        let previous = inputs.data[trainPath]!
        let header = try CSVReader.read(previous, source: trainPath).names
        let labels = monitor.labels(environment: report.environment, model: report.model)
        let rows = monitor.captured(environment: report.environment, model: report.model).filter { labels[$0.id] != nil }
        guard !rows.isEmpty else {
            throw ReconcileError(
                .refused,
                "no captured request of '\(report.model)' in '\(report.environment)' has a true label (send "
                    + "them with 'stagecraft feedback'); nothing to retrain on")
        }
        var seen = Set<String>()
        var text = String(decoding: previous, as: UTF8.self)
        if !text.hasSuffix("\n") { text += "\n" }
        var added = 0
        for row in rows where seen.insert(row.id).inserted {
            let fields = header.map { name -> String in
                if name == manifest.data.target { return labels[row.id]! }
                switch row.inputs[name] {
                case let number as NSNumber: return formatNumber(number.doubleValue)
                case let string as String: return string
                default: return ""
                }
            }
            text += CSVWriter.line(fields)
            added += 1
        }
        let stamp = Timestamp.string(date).filter { $0.isNumber }.prefix(14)
        let folder = (trainPath as NSString).deletingLastPathComponent
        let newPath = (folder.isEmpty ? "" : folder + "/") + "train-retrain-\(stamp).csv"
        let manifestFile = "\(Project.manifestsFolder)/\(report.model).yaml"
        let manifestText = String(decoding: try repository.file(at: manifestFile, in: tip), as: UTF8.self)
        guard let range = manifestText.range(of: "train: \(trainPath)") else {
            throw ReconcileError(.refused, "\(manifestFile): cannot find 'train: \(trainPath)' to point at the new data")
        }
        let edited = manifestText.replacingCharacters(in: range, with: "train: \(newPath)")
        let trigger = report.triggers.map(\.description).joined(separator: "; ")
        let trailers = [
            Trailer(key: "Stagecraft-Model", value: report.model), Trailer(key: "Stagecraft-Trigger", value: trigger),
            Trailer(key: "Stagecraft-Monitored", value: "\(report.environment) \(report.version)"),
            Trailer(key: "Stagecraft-Data", value: "\(newPath) (+\(added) labelled rows)"),
        ]
        let message = Trailers.append(trailers, to: "Retrain \(report.model) on \(added) labelled rows from \(report.environment)")
        let commit = try repository.commit(
            [.write(path: newPath, contents: Data(text.utf8)), .write(path: manifestFile, contents: Data(edited.utf8))],
            onBranch: branch, message: message, author: Signature(name: "stagecraft", email: "stagecraft@localhost"))
        return RetrainResult(
            model: report.model, commit: commit.hex, branch: branch, data: newPath, addedRows: added, triggers: report.triggers)
    }
}
