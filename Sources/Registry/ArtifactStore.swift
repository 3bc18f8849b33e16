public import Foundation
public import Learning

/// What `build.json` records about one build: the inputs, the outcome, the timings.
public struct BuildInfo: Sendable, Codable, Equatable {
    public var digest: String
    public var model: String
    public var algorithm: String
    public var task: String
    /// The commit the manifest and data were read at.
    public var source: String
    /// The ref as given (`HEAD`, `main`).
    public var ref: String
    /// Repository path → sha256 of each data file.
    public var data: [String: String]
    /// The parameters the model was trained with (after search).
    public var parameters: [String: ParameterValue]
    /// Holdout metrics.
    public var metrics: [String: Double]
    /// Seconds: read, search, fit, evaluate, total.
    public var timings: [String: Double]
    public var tool: String
    public var createdAt: Date

    public init(
        digest: String, model: String, algorithm: String, task: String, source: String, ref: String, data: [String: String],
        parameters: [String: ParameterValue], metrics: [String: Double], timings: [String: Double], tool: String, createdAt: Date
    ) {
        self.digest = digest
        self.model = model
        self.algorithm = algorithm
        self.task = task
        self.source = source
        self.ref = ref
        self.data = data
        self.parameters = parameters
        self.metrics = metrics
        self.timings = timings
        self.tool = tool
        self.createdAt = createdAt
    }
}

/// `metrics.json`: holdout metrics and, when a search ran, every candidate's cross-validated score.
public struct MetricsFile: Sendable, Codable, Equatable {
    public var holdout: [String: Double]
    public var search: [SearchCandidate]

    public init(holdout: [String: Double], search: [SearchCandidate]) {
        self.holdout = holdout
        self.search = search
    }
}

/// A failure of the artifact store.
public struct RegistryError: Error, Sendable, CustomStringConvertible {
    /// A failure from outside (the file system), kept as its description.
    public struct Underlying: Error, Sendable, CustomStringConvertible {
        public let description: String
        public init(_ error: any Error) { description = String(describing: error) }
    }

    /// What kind of failure this is. New codes may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// No such version in the store, or a version of another model.
        public static let notFound = Code("not-found")
        /// A version's files do not match its digest, or cannot be decoded.
        public static let corrupt = Code("corrupt")
        /// A file or folder cannot be read or written.
        public static let io = Code("io")
    }

    public let code: Code
    /// What failed, for the user.
    public let message: String
    /// What the file system said.
    public let cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }
    public var description: String { cause.map { "\(message): \($0)" } ?? message }
}

/// Built versions on disk, one folder per digest: `<root>/<digest>/model.json`, `metrics.json`, `build.json`.
/// A folder appears whole or not at all (written aside, then renamed into place).
public struct ArtifactStore: Sendable {
    public let root: URL

    public init(root: URL) { self.root = root }

    public static let files = ["model.json", "metrics.json", "build.json"]

    public func directory(for digest: String) -> URL { root.appendingPathComponent(digest) }

    /// True when every file of the version is there.
    public func contains(_ digest: String) -> Bool {
        Self.files.allSatisfy { FileManager.default.fileExists(atPath: directory(for: digest).appendingPathComponent($0).path) }
    }

    /// Stores a version's files. When another process stored the same digest first, its files are kept
    /// (they are the same bytes, by construction).
    public func store(digest: String, model: ModelFile, metrics: MetricsFile, build: BuildInfo) throws {
        let files = FileManager.default
        do {
            try files.createDirectory(at: root, withIntermediateDirectories: true)
            let staging = root.appendingPathComponent(".staging-\(UUID().uuidString)")
            try files.createDirectory(at: staging, withIntermediateDirectories: true)
            defer { try? files.removeItem(at: staging) }
            try model.encoded().write(to: staging.appendingPathComponent("model.json"))
            try Self.encoder.encode(metrics).write(to: staging.appendingPathComponent("metrics.json"))
            try Self.encoder.encode(build).write(to: staging.appendingPathComponent("build.json"))
            let target = directory(for: digest)
            if files.fileExists(atPath: target.path) {
                if contains(digest) { return }
                try files.removeItem(at: target)  // an incomplete folder from an interrupted older version
            }
            do {
                try files.moveItem(at: staging, to: target)
            } catch  where contains(digest) {
                return  // stored concurrently
            }
        } catch {
            throw RegistryError(
                .io, "cannot store version \(VersionDigest.short(digest)) under "
                    + "\(root.path)", cause: RegistryError.Underlying(error))
        }
    }

    /// The model file of a stored version.
    public func model(_ digest: String) throws -> ModelFile {
        let url = directory(for: digest).appendingPathComponent("model.json")
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw RegistryError(.notFound, "version \(VersionDigest.short(digest)) is not in the artifact store (\(root.path))")
        }
        return try ModelFile.decode(data)
    }

    public func buildInfo(_ digest: String) throws -> BuildInfo {
        try Self.decoder.decode(BuildInfo.self, from: Data(contentsOf: directory(for: digest).appendingPathComponent("build.json")))
    }

    public func metrics(_ digest: String) throws -> MetricsFile {
        try Self.decoder.decode(MetricsFile.self, from: Data(contentsOf: directory(for: digest).appendingPathComponent("metrics.json")))
    }

    /// Finds the full digest of a stored version from a prefix of at least 12 hex digits.
    public func resolve(_ prefix: String) -> String? {
        let matches = ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).filter {
            $0.hasPrefix(prefix) && contains($0)
        }
        return matches.count == 1 ? matches[0] : nil
    }

    /// Every complete build, newest first.
    public func builds() -> [BuildInfo] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return names.filter { !$0.hasPrefix(".") && contains($0) }
            .compactMap { try? buildInfo($0) }
            .sorted { ($0.createdAt, $0.digest) > ($1.createdAt, $1.digest) }
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}
