public import Foundation
import ExternalModels
import Learning
import Synchronization

/// Writes a sample of requests and responses as JSON Lines, one file set per model:
/// `<directory>/<model>/capture-<n>.jsonl`, a new file when the current one passes `maxFileBytes`.
/// Encoding and writing run on a worker thread of their own with a bounded queue, and a shadow's predictions on
/// another: a full queue drops the sample (counted in `/metrics`), it never holds a request.
public final class RequestCapture: @unchecked Sendable {
    public let directory: URL
    /// Percent of requests captured, 0 to 100.
    public let samplePercent: Double
    public let maxFileBytes: Int
    private let writer: BoundedWorker
    private let shadows: BoundedWorker
    /// Samples dropped because a queue was full: the writer's, the shadow worker's.
    private let dropped = Mutex((capture: 0, shadow: 0))
    /// Per model: the open file, its index and size. Touched only on the writer's thread.
    private var files: [String: (handle: FileHandle, index: Int, size: Int)] = [:]

    /// - Parameters:
    ///   - queueCapacity: samples waiting to be written before new ones are dropped.
    ///   - shadowCapacity: shadow predictions waiting before new ones are dropped.
    public init(
        directory: URL, samplePercent: Double = 100, maxFileBytes: Int = 64 << 20, queueCapacity: Int = 4096,
        shadowCapacity: Int = 256
    ) {
        self.directory = directory
        self.samplePercent = samplePercent
        self.maxFileBytes = maxFileBytes
        writer = BoundedWorker(name: "stagecraft.capture", capacity: queueCapacity)
        shadows = BoundedWorker(name: "stagecraft.shadow", capacity: shadowCapacity)
    }

    deinit {
        writer.close()
        shadows.close()
    }

    /// Captures one answered request, if it falls in the sample; a shadow answers the same rows on its own worker,
    /// and its answer is only recorded.
    func record(
        id: String, model: String, version: String, rows: Dataset, predictions: Predictions, classes: [String]?, latency: Double,
        shadow: LoadedVersion? = nil
    ) {
        guard samplePercent >= 100 || Double.random(in: 0..<100) < samplePercent else { return }
        let time = Date()
        capture { [self] in
            encode(
                time: time, id: id, model: model, version: version, rows: rows, predictions: predictions, classes: classes,
                latency: latency, shadow: false)
        }
        guard let shadow else { return }
        let accepted = shadows.submit { [self] in
            guard let answer = try? shadow.predictBlocking(rows) else { return }
            capture { [self] in
                encode(
                    time: time, id: id, model: model, version: shadow.version, rows: rows, predictions: answer,
                    classes: shadow.file.classes, latency: 0, shadow: true)
            }
        }
        if !accepted { dropped.withLock { $0.shadow += 1 } }
    }

    private func capture(_ job: @escaping @Sendable () -> Void) {
        if !writer.submit(job) { dropped.withLock { $0.capture += 1 } }
    }

    /// Samples dropped so far because a queue was full.
    public var droppedSamples: (capture: Int, shadow: Int) { dropped.withLock { $0 } }

    /// Sets `stagecraft_capture_dropped_total{queue}` in `metrics`.
    func export(to metrics: ServerMetrics) {
        let counts = droppedSamples
        for (queue, count) in [("capture", counts.capture), ("shadow", counts.shadow)] {
            metrics.setCounter(
                "stagecraft_capture_dropped_total", help: "Samples not captured because a capture queue was full.",
                labels: [("queue", queue)], to: count)
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

    /// Waits until every sample given so far (and its shadow's answer) is written (blocking: tests, synchronous callers).
    public func flush() {
        shadows.drain()
        writer.drain()
        writer.after { [self] in synchronizeFiles() }
        writer.drain()
    }

    /// Writes every sample given so far (and its shadow's answer) and syncs the files, without blocking a thread: a
    /// server calls it when it stops.
    public func finish() async {
        await shadows.drained()
        await writer.drained()
        writer.after { [self] in synchronizeFiles() }
        await writer.drained()
    }

    private func synchronizeFiles() {
        for (_, file) in files { try? file.handle.synchronize() }
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
