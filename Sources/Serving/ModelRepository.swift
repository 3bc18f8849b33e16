public import Learning
import Synchronization

/// One version of one model, loaded and ready to answer.
public struct LoadedVersion: Sendable {
    public var model: String
    /// The full version digest.
    public var version: String
    /// The commit the version was built from.
    public var source: String
    public var file: ModelFile

    public init(model: String, version: String, source: String, file: ModelFile) {
        self.model = model
        self.version = version
        self.source = source
        self.file = file
    }
}

/// The models an environment's server has loaded: for each model, its versions and the one that answers by default.
/// Safe to read and change from any task; a switch is atomic (a request sees the old or the new default, whole).
public final class ModelRepository: Sendable {
    struct Entry: Sendable {
        var versions: [String: LoadedVersion]
        var defaultVersion: String
    }

    private let entries = Mutex<[String: Entry]>([:])

    public init() {}

    /// Adds `loaded`; it becomes the default version when `makeDefault` is true or when it is the model's first.
    public func load(_ loaded: LoadedVersion, makeDefault: Bool = true) {
        entries.withLock { entries in
            var entry = entries[loaded.model] ?? Entry(versions: [:], defaultVersion: loaded.version)
            entry.versions[loaded.version] = loaded
            if makeDefault { entry.defaultVersion = loaded.version }
            entries[loaded.model] = entry
        }
    }

    /// Removes a version (or the whole model when `version` is nil); returns false when there was nothing to remove.
    @discardableResult
    public func unload(model: String, version: String? = nil) -> Bool {
        entries.withLock { entries in
            guard var entry = entries[model] else { return false }
            guard let version else { entries[model] = nil; return true }
            guard let full = Self.match(version, in: entry.versions.keys) else { return false }
            entry.versions[full] = nil
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

    /// The versions of `model`, sorted, or nil when it is not loaded.
    public func versions(of model: String) -> [String]? {
        entries.withLock { $0[model].map { $0.versions.keys.sorted() } }
    }

    /// The version that answers `model` (by default, or the one whose digest starts with `version`).
    public func resolve(model: String, version: String? = nil) -> LoadedVersion? {
        entries.withLock { entries in
            guard let entry = entries[model] else { return nil }
            guard let version else { return entry.versions[entry.defaultVersion] }
            return Self.match(version, in: entry.versions.keys).flatMap { entry.versions[$0] }
        }
    }

    /// The one digest among `digests` that starts with `prefix` (at least 12 hex digits, or the whole digest).
    static func match(_ prefix: String, in digests: some Collection<String>) -> String? {
        guard prefix.count >= 12 || digests.contains(prefix) else { return nil }
        let found = digests.filter { $0.hasPrefix(prefix) }
        return found.count == 1 ? found[0] : nil
    }
}
