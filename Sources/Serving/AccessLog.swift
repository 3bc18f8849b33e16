public import Foundation
import ExternalModels
import Registry
public import Synchronization

/// One JSON line per sampled infer request (HTTP and gRPC): time, model, version, status, latency, request id and
/// protocol. A request only appends its fields to a bounded in-memory list (a full list drops the entry and counts it);
/// a timer on a queue of its own formats and writes what gathered every 200 ms, off the request path, so a busy
/// server makes a few writes a second, not one per request. Past `maxFileBytes` the file is moved to `<file>.1`.
public final class AccessLog: Sendable {
    public let file: URL
    public let samplePercent: Double
    public let maxFileBytes: Int
    public let capacity: Int
    private struct Entry {
        var time: Date
        var model: String
        var version: String?
        var status: Int
        var seconds: Double
        var id: String?
        var wire: String
        var probe: Bool
    }
    private let pending = Mutex<[Entry]>([])
    private let handle = Mutex<FileHandle?>(nil)
    private let queue = DispatchQueue(label: "stagecraft.access-log", qos: .utility)
    /// Lines dropped because the list was full.
    public let dropped = Atomic<Int>(0)

    public init(file: URL, samplePercent: Double = 100, maxFileBytes: Int = 64 << 20, capacity: Int = 65_536) {
        self.file = file
        self.samplePercent = samplePercent
        self.maxFileBytes = maxFileBytes
        self.capacity = capacity
        schedule()
    }

    /// The next write, 200 ms from now; the chain ends with the log.
    private func schedule() {
        queue.asyncAfter(deadline: .now() + .milliseconds(200)) { [weak self] in
            guard let self else { return }
            self.write()
            self.schedule()
        }
    }

    /// Logs one answered request, if it falls in the sample.
    /// A verification probe (reconcile's online gates) is marked `"probe": true`.
    func record(model: String, version: String?, status: Int, seconds: Double, id: String?, protocol wire: String, probe: Bool = false) {
        guard samplePercent >= 100 || Double.random(in: 0..<100) < samplePercent else { return }
        let entry = Entry(
            time: Date(), model: model, version: version, status: status, seconds: seconds, id: id, wire: wire, probe: probe)
        let kept = pending.withLock { entries -> Bool in
            guard entries.count < capacity else { return false }
            entries.append(entry)
            return true
        }
        if !kept { dropped.wrappingAdd(1, ordering: .relaxed) }
    }

    /// Writes what has gathered now (blocking: for tests and synchronous callers).
    public func flush() { queue.sync { write() } }

    /// Writes what has gathered, without blocking a thread of the caller's.
    public func finish() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async { [self] in
                write()
                continuation.resume()
            }
        }
    }

    /// Formats and appends the gathered entries (on `queue`).
    private func write() {
        let entries = pending.withLock { entries -> [Entry] in
            defer { entries.removeAll(keepingCapacity: true) }
            return entries
        }
        guard !entries.isEmpty else { return }
        var line = JSONWriter(capacity: entries.count * 200)
        for entry in entries {
            line.raw("{\"time\":")
            line.string(Timestamp.string(entry.time))
            line.raw(",\"model\":")
            line.string(entry.model)
            line.raw(",\"version\":")
            if let version = entry.version { line.string(version) } else { line.raw("null") }
            line.raw(",\"status\":\(entry.status),\"latencyMs\":")
            line.number((entry.seconds * 1e6).rounded() / 1e3)
            line.raw(",\"id\":")
            if let id = entry.id { line.string(id) } else { line.raw("null") }
            line.raw(",\"protocol\":\"\(entry.wire)\"" + (entry.probe ? ",\"probe\":true}\n" : "}\n"))
        }
        append(line.bytes)
    }

    private func append(_ bytes: [UInt8]) {
        handle.withLock { handle in
            if handle == nil {
                try? FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
                if !FileManager.default.fileExists(atPath: file.path) {
                    _ = FileManager.default.createFile(atPath: file.path, contents: nil, attributes: [.posixPermissions: 0o600])
                }
                handle = try? FileHandle(forWritingTo: file)
                _ = try? handle?.seekToEnd()
            }
            guard let current = handle else { return }
            current.write(Data(bytes))
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
