public import Foundation
import Registry
public import Synchronization

/// One JSON line per sampled infer request (HTTP and gRPC): time, model, version, status, latency, request id and
/// protocol, appended to a file by a worker thread of its own from a bounded queue, off the request path (a full
/// queue drops the line and counts it). Past `maxFileBytes` the file is moved to `<file>.1` and a new one begun.
public final class AccessLog: Sendable {
    public let file: URL
    public let samplePercent: Double
    public let maxFileBytes: Int
    private let writer: BoundedWorker
    private let handle = Mutex<FileHandle?>(nil)
    /// Lines not written yet: written together once 32 KiB wait or the queue is empty (one write per burst).
    private let buffer = Mutex<[UInt8]>([])
    /// Lines dropped because the queue was full.
    public let dropped = Atomic<Int>(0)

    public init(file: URL, samplePercent: Double = 100, maxFileBytes: Int = 64 << 20, queueCapacity: Int = 4096) {
        self.file = file
        self.samplePercent = samplePercent
        self.maxFileBytes = maxFileBytes
        writer = BoundedWorker(name: "stagecraft.access", capacity: queueCapacity)
    }

    deinit { writer.close() }

    /// Logs one answered request, if it falls in the sample.
    func record(model: String, version: String?, status: Int, seconds: Double, id: String?, protocol wire: String) {
        guard samplePercent >= 100 || Double.random(in: 0..<100) < samplePercent else { return }
        let time = Date()
        let accepted = writer.submit { [self] in
            var line = JSONWriter(capacity: 200)
            line.raw("{\"time\":")
            line.string(Timestamp.string(time))
            line.raw(",\"model\":")
            line.string(model)
            line.raw(",\"version\":")
            if let version { line.string(version) } else { line.raw("null") }
            line.raw(",\"status\":\(status),\"latencyMs\":")
            line.number((seconds * 1e6).rounded() / 1e3)
            line.raw(",\"id\":")
            if let id { line.string(id) } else { line.raw("null") }
            line.raw(",\"protocol\":\"\(wire)\"}\n")
            append(line.bytes)
        }
        if !accepted { dropped.wrappingAdd(1, ordering: .relaxed) }
    }

    /// Returns once every line logged so far is written (blocking: for tests and synchronous callers).
    public func flush() { writer.drain() }

    /// Returns once every line logged so far is written, without blocking a thread.
    public func finish() async { await writer.drained() }

    private func append(_ line: [UInt8]) {
        let batch = buffer.withLock { buffer -> [UInt8]? in
            buffer += line
            guard buffer.count >= 32 << 10 || writer.pending == 0 else { return nil }
            defer { buffer.removeAll(keepingCapacity: true) }
            return buffer
        }
        guard let batch else { return }
        handle.withLock { handle in
            if handle == nil {
                if !FileManager.default.fileExists(atPath: file.path) {
                    _ = FileManager.default.createFile(atPath: file.path, contents: nil, attributes: [.posixPermissions: 0o600])
                }
                handle = try? FileHandle(forWritingTo: file)
                _ = try? handle?.seekToEnd()
            }
            guard let current = handle else { return }
            current.write(Data(batch))
            if let size = try? current.offset(), size > UInt64(maxFileBytes) {
                try? current.close()
                handle = nil
                let rotated = file.path + ".1"
                try? FileManager.default.removeItem(atPath: rotated)
                try? FileManager.default.moveItem(atPath: file.path, toPath: rotated)
            }
        }
    }
}
