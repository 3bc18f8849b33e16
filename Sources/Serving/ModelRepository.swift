public import ExternalModels
public import Learning
public import Foundation
import NIOCore
import Synchronization

/// One version of one model, loaded and ready to answer. A class: a request takes it with one retain, however
/// large the model.
public final class LoadedVersion: Sendable {
    public let model: String
    /// The full version digest.
    public let version: String
    /// The commit the version was built from.
    public let source: String
    public let file: ModelFile
    /// The running server of a model trained by its own command, which its predictions are forwarded to.
    public let server: ModelServer?

    public init(model: String, version: String, source: String, file: ModelFile, server: ModelServer? = nil) {
        self.model = model
        self.version = version
        self.source = source
        self.file = file
        self.server = server
    }

    /// The version's predictions for `rows` (its feature columns): computed here, or by its own server.
    /// - Throws: ``ExternalModelError`` from its own server (`.unavailable` while it restarts).
    public func predict(_ rows: Dataset, id: String? = nil) async throws -> Predictions {
        guard let server else { return try file.predict(rows) }
        return try await server.predict(rows, classes: file.classes, task: file.task, id: id)
    }

    /// As above, on `eventLoop`: computed at once, or forwarded to its own server from that loop.
    func predict(_ rows: Dataset, id: String?, on eventLoop: any EventLoop) -> EventLoopFuture<Predictions> {
        guard let server else { return eventLoop.makeCompletedFuture { try file.predict(rows) } }
        return server.predict(rows, classes: file.classes, task: file.task, id: id, on: eventLoop)
    }

    /// As ``predict(_:id:)``, from a thread that may block (the shadow worker), never from an event loop or a task.
    func predictBlocking(_ rows: Dataset) throws -> Predictions {
        guard server != nil else { return try file.predict(rows) }
        return try waiting { try await self.predict(rows) }
    }
}

/// Runs `body` and waits for it: only from a thread that may block (a worker or NIO's thread pool), never from an
/// event loop or a task.
func waiting<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let done = DispatchSemaphore(value: 0)
    let result = Mutex<Result<T, any Error>?>(nil)
    Task {
        let answer: Result<T, any Error>
        do { answer = .success(try await body()) } catch { answer = .failure(error) }
        result.withLock { $0 = answer }
        done.signal()
    }
    done.wait()
    return try result.withLock { $0! }.get()
}

/// The models an environment's server has loaded: for each model, its versions and the one that answers by default.
/// Safe to read and change from any task; a switch is atomic (a request sees the old or the new default, whole).
public final class ModelRepository: Sendable {
    struct Entry: Sendable {
        var versions: [String: LoadedVersion]
        var defaultVersion: String
        /// Cumulative weights: a request whose bucket (0..<100) is below `upTo` goes to `version`.
        var split: [(version: String, upTo: Int)]?
        /// A version that gets a copy of each request answered by the split or the default.
        var shadow: String?
    }

    private let entries = Mutex<[String: Entry]>([:])
    /// Whether any loaded version has its own server, set whenever versions are loaded or unloaded: read by every
    /// request without taking the lock, so that a server of built-in models pays one atomic load for the feature.
    private let anyOwnServer = Atomic(false)

    /// Sets ``anyOwnServer`` from `entries` (under the lock, after a change).
    private func noteOwnServers(_ entries: [String: Entry]) {
        anyOwnServer.store(entries.values.contains { $0.versions.values.contains { $0.server != nil } }, ordering: .releasing)
    }

    public init() {}

    /// Adds `loaded`; it becomes the default version when `makeDefault` is true or when it is the model's first.
    /// A version loaded again replaces the one loaded before (whose own server, if any, is stopped).
    public func load(_ loaded: LoadedVersion, makeDefault: Bool = true) {
        let replaced = entries.withLock { entries -> LoadedVersion? in
            var entry = entries[loaded.model] ?? Entry(versions: [:], defaultVersion: loaded.version, split: nil, shadow: nil)
            let previous = entry.versions[loaded.version]
            entry.versions[loaded.version] = loaded
            if makeDefault { entry.defaultVersion = loaded.version }
            entries[loaded.model] = entry
            noteOwnServers(entries)
            return previous
        }
        if let replaced, replaced !== loaded { Self.stopServers([replaced]) }
    }

    /// Stops the own servers of versions no longer loaded (in the background: a request that holds one finishes
    /// or gets a 503).
    private static func stopServers(_ versions: [LoadedVersion]) {
        let servers = versions.compactMap(\.server)
        guard !servers.isEmpty else { return }
        Task { for server in servers { await server.stop() } }
    }

    /// Stops every loaded version's own server: what the environment's server does as it stops.
    public func stopServers() async {
        let servers = entries.withLock { entries in entries.values.flatMap { $0.versions.values.compactMap(\.server) } }
        for server in servers { await server.stop() }
    }

    /// Whether any loaded version has its own server.
    public var hasOwnServers: Bool { anyOwnServer.load(ordering: .acquiring) }

    /// Whether a loaded version of `model` has its own server (its requests are forwarded there, and wait for it).
    public func hasOwnServer(model: String) -> Bool {
        hasOwnServers && entries.withLock { entries in entries[model]?.versions.values.contains { $0.server != nil } ?? false }
    }

    /// Removes a version (or the whole model when `version` is nil); returns false when there was nothing to remove.
    @discardableResult
    public func unload(model: String, version: String? = nil) -> Bool {
        var removed: [LoadedVersion] = []
        defer { Self.stopServers(removed) }
        return entries.withLock { entries in
            defer { noteOwnServers(entries) }
            guard var entry = entries[model] else { return false }
            guard let version else {
                removed = Array(entry.versions.values)
                entries[model] = nil
                return true
            }
            guard let full = Self.match(version, in: entry.versions.keys) else { return false }
            removed = entry.versions[full].map { [$0] } ?? []
            entry.versions[full] = nil
            entry.split = nil  // a split that names an unloaded version no longer holds
            if entry.shadow == full { entry.shadow = nil }
            if entry.versions.isEmpty {
                entries[model] = nil
            } else {
                if entry.defaultVersion == full { entry.defaultVersion = entry.versions.keys.sorted()[0] }
                entries[model] = entry
            }
            return true
        }
    }

    /// The names of the loaded models, sorted.
    public var models: [String] { entries.withLock { $0.keys.sorted() } }

    /// Whether any version of `model` is loaded.
    public func contains(model: String) -> Bool {
        entries.withLock { $0[model] != nil }
    }

    /// The versions of `model`, sorted, or nil when it is not loaded.
    public func versions(of model: String) -> [String]? {
        entries.withLock { $0[model].map { $0.versions.keys.sorted() } }
    }

    /// Splits `model`'s traffic between loaded versions by weight (percentages summing to 100); nil removes the
    /// split, so that the default version takes everything.
    /// - Throws: ``InferenceError`` when a version is not loaded or the weights do not sum to 100.
    public func setTraffic(model: String, _ weights: [(version: String, weight: Int)]?) throws(InferenceError) {
        try entries.withLock { (entries) throws(InferenceError) in
            guard var entry = entries[model] else { throw InferenceError(.notFound, "no model '\(model)'") }
            entry.split = try weights.map { (weights) throws(InferenceError) in try Self.split(model, weights, entry) }
            entries[model] = entry
        }
    }

    private static func split(_ model: String, _ weights: [(version: String, weight: Int)], _ entry: Entry) throws(InferenceError) -> [(
        version: String, upTo: Int
    )] {
        guard weights.reduce(0, { $0 + $1.weight }) == 100, weights.allSatisfy({ $0.weight >= 0 }) else {
            throw InferenceError(.badRequest, "traffic weights of '\(model)' must be 0 to 100 and sum to 100")
        }
        var split: [(version: String, upTo: Int)] = []
        var total = 0
        for (version, weight) in weights {
            guard let full = match(version, in: entry.versions.keys) else {
                throw InferenceError(.notFound, "model '\(model)' has no loaded version '\(version)' to send traffic to")
            }
            total += weight
            split.append((full, total))
        }
        return split
    }

    /// Makes a loaded version the shadow of `model` (nil: no shadow).
    public func setShadow(model: String, version: String?) throws(InferenceError) {
        try entries.withLock { (entries) throws(InferenceError) in
            guard var entry = entries[model] else { throw InferenceError(.notFound, "no model '\(model)'") }
            if let version {
                guard let full = Self.match(version, in: entry.versions.keys) else {
                    throw InferenceError(.notFound, "model '\(model)' has no loaded version '\(version)' to shadow with")
                }
                entry.shadow = full
            } else {
                entry.shadow = nil
            }
            entries[model] = entry
        }
    }

    /// Sets in one step which loaded version of `model` answers by default, its traffic split and its shadow, so
    /// that a request sees either the old routing or the new one, whole.
    /// - Throws: ``InferenceError`` when a version is not loaded or the weights do not sum to 100.
    public func route(model: String, defaultVersion: String, traffic: [(version: String, weight: Int)]?, shadow: String?)
        throws(InferenceError)
    {
        try entries.withLock { (entries) throws(InferenceError) in
            guard var entry = entries[model] else { throw InferenceError(.notFound, "no model '\(model)'") }
            guard let full = Self.match(defaultVersion, in: entry.versions.keys) else {
                throw InferenceError(.notFound, "model '\(model)' has no loaded version '\(defaultVersion)'")
            }
            entry.defaultVersion = full
            entry.split = try traffic.map { (weights) throws(InferenceError) in try Self.split(model, weights, entry) }
            if let shadow {
                guard let version = Self.match(shadow, in: entry.versions.keys) else {
                    throw InferenceError(.notFound, "model '\(model)' has no loaded version '\(shadow)' to shadow with")
                }
                entry.shadow = version
            } else {
                entry.shadow = nil
            }
            entries[model] = entry
        }
    }

    /// How `model` is routed: its default version, split and shadow (full digests), or nil when it is not loaded.
    public func routing(of model: String) -> (defaultVersion: String, traffic: [(version: String, weight: Int)]?, shadow: String?)? {
        entries.withLock { entries in
            guard let entry = entries[model] else { return nil }
            var previous = 0
            let traffic = entry.split.map { split in
                split.map { share in
                    defer { previous = share.upTo }
                    return (share.version, share.upTo - previous)
                }
            }
            return (entry.defaultVersion, traffic, entry.shadow)
        }
    }

    /// The shadow version of `model`, if it has one.
    public func shadow(of model: String) -> LoadedVersion? {
        entries.withLock { entries in entries[model].flatMap { entry in entry.shadow.flatMap { entry.versions[$0] } } }
    }

    /// The version that answers `model`: the one whose digest starts with `version` when given; otherwise, under a
    /// traffic split, the one whose share holds the request's bucket (the same `requestID` always lands in the same
    /// bucket; no id, a random one); otherwise the default version.
    public func resolve(model: String, version: String? = nil, requestID: String? = nil) -> LoadedVersion? {
        entries.withLock { entries in
            guard let entry = entries[model] else { return nil }
            if let version { return Self.match(version, in: entry.versions.keys).flatMap { entry.versions[$0] } }
            if let split = entry.split {
                let bucket = requestID.map(Self.bucket) ?? Int.random(in: 0..<100)
                if let chosen = split.first(where: { bucket < $0.upTo }) { return entry.versions[chosen.version] }
            }
            return entry.versions[entry.defaultVersion]
        }
    }

    /// A request id's bucket in 0..<100: FNV-1a of its bytes, the same in every process.
    static func bucket(_ id: String) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in id.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return Int(hash % 100)
    }

    /// The one digest among `digests` that starts with `prefix` (at least 12 hex digits, or the whole digest).
    static func match(_ prefix: String, in digests: some Collection<String>) -> String? {
        guard prefix.count >= 12 || digests.contains(prefix) else { return nil }
        let found = digests.filter { $0.hasPrefix(prefix) }
        return found.count == 1 ? found[0] : nil
    }
}

extension LoadedVersion {
    /// A stored version, ready to answer: a model trained by its own command has its own server started on the
    /// version's `model/` folder (beside `model.json` in `folder`) and waited for.
    /// - Parameter logs: the folder its server's log goes into (`server-<model>-<version>.log`).
    /// - Throws: ``ExternalModelError`` when its server cannot start or does not get ready.
    public static func ready(model: String, version: String, source: String, file: ModelFile, folder: URL, logs: URL) async throws
        -> LoadedVersion
    {
        guard let own = file.external else { return LoadedVersion(model: model, version: version, source: source, file: file) }
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        let server = try await ModelServer.start(
            ModelServer.Configuration(
                model: model, version: version, server: own, folder: folder.appendingPathComponent(ExternalEstimator.folder),
                log: logs.appendingPathComponent("server-\(model)-\(version.prefix(12)).log")))
        return LoadedVersion(model: model, version: version, source: source, file: file, server: server)
    }
}
