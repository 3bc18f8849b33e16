public import Foundation
import Learning

/// Writes a sample of requests and responses as JSON Lines, one file set per model:
/// `<directory>/<model>/capture-<n>.jsonl`, a new file when the current one passes `maxFileBytes`.
/// Encoding and writing happen on a queue of their own, off the request path.
public final class RequestCapture: @unchecked Sendable {
    public let directory: URL
    /// Percent of requests captured, 0 to 100.
    public let samplePercent: Double
    public let maxFileBytes: Int
    private let queue = DispatchQueue(label: "stagecraft.capture")
    /// Per model: the open file, its index and size. Touched only on `queue`.
    private var files: [String: (handle: FileHandle, index: Int, size: Int)] = [:]

    public init(directory: URL, samplePercent: Double = 100, maxFileBytes: Int = 64 << 20) {
        self.directory = directory
        self.samplePercent = samplePercent
        self.maxFileBytes = maxFileBytes
    }

    /// Captures one answered request, if it falls in the sample.
    func record(
        id: String, model: String, version: String, rows: Dataset, predictions: Predictions, classes: [String]?, latency: Double,
        shadow: LoadedVersion? = nil
    ) {
        guard samplePercent >= 100 || Double.random(in: 0..<100) < samplePercent else { return }
        let time = Date()
        queue.async { [self] in
            encode(
                time: time, id: id, model: model, version: version, rows: rows, predictions: predictions, classes: classes,
                latency: latency, shadow: false)
            // The shadow answers the same rows here, off the request path; its answer is only recorded.
            if let shadow, let answer = try? shadow.file.predict(rows) {
                encode(
                    time: time, id: id, model: model, version: shadow.version, rows: rows, predictions: answer,
                    classes: shadow.file.classes,
                    latency: 0, shadow: true)
            }
        }
    }

    private func encode(
        time: Date, id: String, model: String, version: String, rows: Dataset, predictions: Predictions, classes: [String]?,
        latency: Double, shadow: Bool
    ) {
        var json = JSONWriter(capacity: 256)
        json.raw("{\"time\":")
        json.string(
            ISO8601DateFormatter.string(from: time, timeZone: .gmt, formatOptions: [.withInternetDateTime, .withFractionalSeconds]))
        json.raw(",\"id\":")
        json.string(id)
        json.raw(",\"model\":")
        json.string(model)
        json.raw(",\"version\":")
        json.string(version)
        if shadow { json.raw(",\"shadow\":true") }
        json.raw(",\"latency_ms\":")
        json.number((latency * 1e6).rounded() / 1e3)
        json.raw(",\"inputs\":{")
        for (index, name) in rows.names.enumerated() {
            if index > 0 { json.raw(",") }
            json.string(name)
            json.raw(":")
            switch rows.columns[index] {
            case .numeric(let values): json.numbers(values)
            case .categorical(let codes, let levels):
                json.raw("[")
                for (row, code) in codes.enumerated() {
                    if row > 0 { json.raw(",") }
                    if code < 0 { json.raw("null") } else { json.string(levels[Int(code)]) }
                }
                json.raw("]")
            }
        }
        json.raw("},\"outputs\":{\"predict\":")
        if let labels = predictions.labels { json.strings(labels) } else { json.numbers(predictions.values ?? []) }
        if let probabilities = predictions.probabilities, let classes {
            json.raw(",\"predict_proba\":")
            json.numbers(probabilities)
            json.raw(",\"classes\":")
            json.strings(classes)
        }
        json.raw("}}\n")
        write(json.text, model: model)
    }

    /// Waits until every record given so far is written.
    public func flush() {
        queue.sync {
            for (_, file) in files { try? file.handle.synchronize() }
        }
    }

    private func write(_ line: String, model: String) {
        let data = Data(line.utf8)
        let folder = directory.appendingPathComponent(model)
        if files[model] == nil {
            // Continue the newest file of an earlier run.
            try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let indices = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
                .compactMap { Int($0.dropFirst("capture-".count).dropLast(".jsonl".count)) }
            open(folder, index: indices.max() ?? 0, model: model)
        }
        if let file = files[model], file.size > 0, file.size + data.count > maxFileBytes {
            try? file.handle.close()
            open(folder, index: file.index + 1, model: model)
        }
        guard var file = files[model] else { return }
        file.handle.write(data)
        file.size += data.count
        files[model] = file
    }

    private func open(_ folder: URL, index: Int, model: String) {
        let url = folder.appendingPathComponent("capture-\(index).jsonl")
        if !FileManager.default.fileExists(atPath: url.path) { _ = FileManager.default.createFile(atPath: url.path, contents: nil) }
        guard let handle = try? FileHandle(forWritingTo: url) else {
            files[model] = nil
            return
        }
        let size = Int((try? handle.seekToEnd()) ?? 0)
        files[model] = (handle, index, size)
    }
}
