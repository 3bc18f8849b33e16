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
    /// sha256 of `model.json` and `metrics.json` as stored, which a copy fetched from a remote store is checked
    /// against (absent in builds made before remote stores existed).
    public var files: [String: String]?
    /// A model trained by its own command: the sha256 of every file it wrote, by path under the version's `model/`
    /// folder (what a rebuild is compared with, and a fetched copy checked against).
    public var outputs: [String: String]?

    public init(
        digest: String, model: String, algorithm: String, task: String, source: String, ref: String, data: [String: String],
        parameters: [String: ParameterValue], metrics: [String: Double], timings: [String: Double], tool: String, createdAt: Date,
        files: [String: String]? = nil
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
        self.files = files
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
        /// The remote store cannot be reached or refused a request.
        public static let unavailable = Code("unavailable")
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

/// Where versions are shared between machines (an S3 prefix): the same three files per digest, `build.json` last.
/// The artifact store checks what it fetches (see ``ArtifactStore``); a remote only moves files.
public protocol ArtifactRemote: Sendable {
    /// Where it is, for messages (`s3://bucket/prefix`); never a credential.
    var location: String { get }
    /// Downloads the version `digest` into `folder` (made by the caller, empty); the store checks the files against
    /// the sha256 `build.json` lists. False when the remote has no complete version of that digest.
    func fetch(_ digest: String, into folder: URL) throws -> Bool
    /// Uploads the version in `folder`, `build.json` last and only when the remote has none yet, so that a half-uploaded
    /// version is never taken as built. False when another writer's `build.json` was there first.
    func publish(_ digest: String, from folder: URL) throws -> Bool
    /// The digests of the complete versions whose digest starts with `prefix`.
    func digests(prefix: String) throws -> [String]
    /// Deletes the versions' files.
    func delete(_ digests: [String]) throws
    /// Every version's digest with the bytes of its files (complete or not).
    func sizes() throws -> [String: Int]
}

/// Built versions, one folder per digest: `<root>/<digest>/model.json`, `metrics.json`, `build.json`.
/// A folder appears whole or not at all (written aside, then renamed into place).
///
/// With a ``remote``, the folder is a read-through cache of it: a version missing here is fetched (and checked
/// against the sha256 its `build.json` gives) before it is used, and a version stored here is published there, so
/// that a version built on one machine is found, not rebuilt, on another.
public struct ArtifactStore: Sendable {
    public let root: URL
    /// The shared store this folder caches, if any.
    public let remote: (any ArtifactRemote)?

    public init(root: URL, remote: (any ArtifactRemote)? = nil) {
        self.root = root
        self.remote = remote
    }

    /// The same folder without its remote: what a request handler uses, which must not wait on the network.
    public var local: ArtifactStore { ArtifactStore(root: root) }

    /// Where versions live, for messages: the remote when there is one, else the folder.
    public var location: String { remote?.location ?? root.path }

    public static let files = ["model.json", "metrics.json", "build.json"]
    /// The folder of a version that holds what a trainer command wrote.
    public static let outputFolder = ExternalEstimator.folder

    /// The sha256 of every file under `folder`, by relative path.
    static func hashes(of folder: URL) throws -> [String: String] {
        var hashes: [String: String] = [:]
        let base = folder.standardizedFileURL.path
        guard let walker = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: [.isRegularFileKey]) else { return [:] }
        for case let url as URL in walker where (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true {
            let path = String(url.standardizedFileURL.path.dropFirst(base.count + 1))
            hashes[path] = VersionDigest.sha256(try Data(contentsOf: url, options: .mappedIfSafe))
        }
        return hashes
    }

    public func directory(for digest: String) -> URL { root.appendingPathComponent(digest) }

    /// True when every file of the version is in the folder.
    public func isLocal(_ digest: String) -> Bool {
        Self.files.allSatisfy { FileManager.default.fileExists(atPath: directory(for: digest).appendingPathComponent($0).path) }
    }

    /// True when the version is here, or could be fetched from the remote (then it is here).
    public func contains(_ digest: String) -> Bool { (try? locate(digest)) ?? false }

    /// True when the version is here or was just fetched from the remote; false when neither has it.
    /// - Throws: ``RegistryError`` when the remote cannot be reached or what it holds does not check out.
    @discardableResult
    public func locate(_ digest: String) throws -> Bool {
        if isLocal(digest) { return true }
        guard let remote, Self.isDigest(digest) else { return false }
        return try fetch(digest, from: remote)
    }

    private static func isDigest(_ text: String) -> Bool {
        text.count == 64
            && text.utf8.allSatisfy {
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0)
            }
    }

    /// Fetches a version into a folder aside, checks it, and moves it into place.
    private func fetch(_ digest: String, from remote: any ArtifactRemote) throws -> Bool {
        let staging = try makeStaging()
        defer { try? FileManager.default.removeItem(at: staging) }
        let found: Bool
        do { found = try remote.fetch(digest, into: staging) } catch {
            throw RegistryError(
                .unavailable, "cannot fetch version \(VersionDigest.short(digest)) from \(remote.location)",
                cause: RegistryError.Underlying(error))
        }
        guard found else { return false }
        try Self.check(staging, digest: digest, from: remote.location)
        try moveIntoPlace(staging, digest: digest)
        return true
    }

    /// Reads one version's folder outside any store (a container's `/opt/ml/model`, KServe's `/mnt/models`): its
    /// `build.json`, checked against the sha256 it lists of the other files, and its model.
    /// - Throws: ``RegistryError`` `.notFound` without `build.json`, `.corrupt` when a file does not check out.
    public static func readVersion(in folder: URL) throws -> (info: BuildInfo, model: ModelFile) {
        let buildFile = folder.appendingPathComponent("build.json")
        guard let data = FileManager.default.contents(atPath: buildFile.path) else {
            throw RegistryError(
                .notFound, "\(folder.path) holds no build.json: it must be one version's folder (model.json, metrics.json, build.json)")
        }
        let digest: String
        do { digest = try decoder.decode(BuildInfo.self, from: data).digest } catch {
            throw RegistryError(.corrupt, "\(buildFile.path) cannot be read", cause: RegistryError.Underlying(error))
        }
        let info = try check(folder, digest: digest, from: folder.path)
        let model = try ModelFile.decode(Data(contentsOf: folder.appendingPathComponent("model.json")))
        return (info, model)
    }

    /// A fetched version's `build.json` names its digest, and the other files have the sha256 it lists.
    @discardableResult
    private static func check(_ folder: URL, digest: String, from location: String) throws -> BuildInfo {
        let info: BuildInfo
        do {
            info = try Self.decoder.decode(BuildInfo.self, from: Data(contentsOf: folder.appendingPathComponent("build.json")))
        } catch {
            throw RegistryError(
                .corrupt, "\(location): build.json of \(VersionDigest.short(digest)) cannot be read", cause: RegistryError.Underlying(error)
            )
        }
        guard info.digest == digest, let files = info.files else {
            throw RegistryError(
                .corrupt, "\(location): build.json under \(VersionDigest.short(digest)) describes another version or lists no file hashes")
        }
        let outputs = (info.outputs ?? [:]).map { ("\(outputFolder)/\($0.key)", $0.value) }
        for (name, listed) in [("model.json", files["model.json"]), ("metrics.json", files["metrics.json"])] + outputs {
            let actual = (try? Data(contentsOf: folder.appendingPathComponent(name))).map(VersionDigest.sha256)
            guard let expected = listed, actual == expected else {
                throw RegistryError(
                    .corrupt,
                    "\(location): \(name) of \(VersionDigest.short(digest)) has sha256 \(actual ?? "none"), expected "
                        + "\(listed ?? "none")")
            }
        }
        return info
    }

    private func makeStaging() throws -> URL {
        let staging = root.appendingPathComponent(".staging-\(UUID().uuidString)")
        do { try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true) } catch {
            throw RegistryError(.io, "cannot write under \(root.path)", cause: RegistryError.Underlying(error))
        }
        return staging
    }

    /// Renames `staging` to the version's folder; a complete folder already there (stored concurrently) is kept.
    private func moveIntoPlace(_ staging: URL, digest: String, replacing: Bool = false) throws {
        let files = FileManager.default
        let target = directory(for: digest)
        do {
            if files.fileExists(atPath: target.path) {
                if isLocal(digest) && !replacing { return }
                try files.removeItem(at: target)  // an incomplete folder from an interrupted older version
            }
            do {
                try files.moveItem(at: staging, to: target)
            } catch  where isLocal(digest) {
                return  // stored concurrently
            }
        } catch {
            throw RegistryError(
                .io, "cannot store version \(VersionDigest.short(digest)) under \(root.path)", cause: RegistryError.Underlying(error))
        }
    }

    /// Stores a version's files (and publishes them to the remote). When another process or machine stored the same
    /// digest first, its files are kept (one consistent artifact everywhere) and false is returned.
    @discardableResult
    /// - Parameter outputs: a trainer command's output folder, copied into the version's `model/` folder (each file's
    ///   sha256 is recorded in `build.json`); `log`, its log, kept beside as `train.log`.
    public func store(digest: String, model: ModelFile, metrics: MetricsFile, build: BuildInfo, outputs: URL? = nil, log: URL? = nil)
        throws -> Bool
    {
        var build = build
        do {
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        } catch {
            throw RegistryError(
                .io, "cannot store version \(VersionDigest.short(digest)) under \(root.path)", cause: RegistryError.Underlying(error))
        }
        let staging = try makeStaging()
        defer { try? FileManager.default.removeItem(at: staging) }
        do {
            let modelBytes = try model.encoded()
            let metricsBytes = try Self.encoder.encode(metrics)
            build.files = ["model.json": VersionDigest.sha256(modelBytes), "metrics.json": VersionDigest.sha256(metricsBytes)]
            if let outputs {
                try FileManager.default.copyItem(at: outputs, to: staging.appendingPathComponent(Self.outputFolder))
                build.outputs = try Self.hashes(of: staging.appendingPathComponent(Self.outputFolder))
            }
            if let log { try FileManager.default.copyItem(at: log, to: staging.appendingPathComponent("train.log")) }
            try modelBytes.write(to: staging.appendingPathComponent("model.json"))
            try metricsBytes.write(to: staging.appendingPathComponent("metrics.json"))
            try Self.encoder.encode(build).write(to: staging.appendingPathComponent("build.json"))
        } catch {
            throw RegistryError(
                .io, "cannot store version \(VersionDigest.short(digest)) under \(root.path)", cause: RegistryError.Underlying(error))
        }
        if let remote {
            let first: Bool
            do { first = try remote.publish(digest, from: staging) } catch {
                throw RegistryError(
                    .unavailable, "cannot publish version \(VersionDigest.short(digest)) to \(remote.location)",
                    cause: RegistryError.Underlying(error))
            }
            if !first {
                // Built at the same time elsewhere: that build is the version; take it.
                try? FileManager.default.removeItem(at: directory(for: digest))
                guard try fetch(digest, from: remote) else {
                    throw RegistryError(.unavailable, "\(remote.location) lost version \(VersionDigest.short(digest)) while it was stored")
                }
                return false
            }
        }
        if isLocal(digest) { return false }
        try moveIntoPlace(staging, digest: digest)
        return true
    }

    /// The model file of a stored version.
    public func model(_ digest: String) throws -> ModelFile {
        _ = try? locate(digest)
        let url = directory(for: digest).appendingPathComponent("model.json")
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw RegistryError(.notFound, "version \(VersionDigest.short(digest)) is not in the artifact store (\(location))")
        }
        return try ModelFile.decode(data)
    }

    public func buildInfo(_ digest: String) throws -> BuildInfo {
        try Self.decoder.decode(BuildInfo.self, from: try stored("build.json", of: digest))
    }

    public func metrics(_ digest: String) throws -> MetricsFile {
        try Self.decoder.decode(MetricsFile.self, from: try stored("metrics.json", of: digest))
    }

    /// One file of a stored version (fetched from the remote first when it is only there), or ``RegistryError``
    /// `notFound` naming the version and the store.
    private func stored(_ file: String, of digest: String) throws -> Data {
        _ = try? locate(digest)
        guard let data = FileManager.default.contents(atPath: directory(for: digest).appendingPathComponent(file).path) else {
            throw RegistryError(.notFound, "version \(VersionDigest.short(digest)) is not in the artifact store (\(location))")
        }
        return data
    }

    /// The build of a pinned version (a digest or a prefix of at least 12 hex digits), nil when it is not stored.
    public func build(pinned pin: String) -> BuildInfo? { resolve(pin).flatMap { try? buildInfo($0) } }

    /// Finds the full digest of a stored version from a prefix of at least 12 hex digits: here, else in the remote
    /// (then fetched).
    public func resolve(_ prefix: String) -> String? {
        let matches = ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).filter {
            $0.hasPrefix(prefix) && isLocal($0)
        }
        if matches.count == 1 { return matches[0] }
        guard matches.isEmpty, let remote, prefix.count >= 12, let found = try? remote.digests(prefix: prefix), found.count == 1,
            (try? locate(found[0])) == true
        else { return nil }
        return found[0]
    }

    /// The digests of the version folders here (complete or not).
    public func localDigests() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).filter { !$0.hasPrefix(".") && Self.isDigest($0) }
    }

    /// The bytes of a version's folder here.
    public func localBytes(_ digest: String) -> Int {
        let folder = directory(for: digest)
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).reduce(0) { total, name in
            total + ((try? FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent(name).path)[.size] as? Int) ?? 0)
        }
    }

    /// Deletes versions here and in the remote store.
    public func delete(_ digests: [String]) throws {
        guard !digests.isEmpty else { return }
        if let remote {
            do { try remote.delete(digests) } catch {
                throw RegistryError(.unavailable, "cannot delete versions in \(remote.location)", cause: RegistryError.Underlying(error))
            }
        }
        for digest in digests where FileManager.default.fileExists(atPath: directory(for: digest).path) {
            do { try FileManager.default.removeItem(at: directory(for: digest)) } catch {
                throw RegistryError(.io, "cannot delete \(directory(for: digest).path)", cause: RegistryError.Underlying(error))
            }
        }
    }

    /// Every complete build, newest first (with a remote, its builds too, fetched).
    /// - Throws: ``RegistryError`` when the remote cannot be listed.
    public func builds() throws -> [BuildInfo] {
        if let remote {
            let digests: [String]
            do { digests = try remote.digests(prefix: "") } catch {
                throw RegistryError(.unavailable, "cannot list the versions in \(remote.location)", cause: RegistryError.Underlying(error))
            }
            for digest in digests where !isLocal(digest) { try locate(digest) }
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return names.filter { !$0.hasPrefix(".") && isLocal($0) }
            .compactMap {
                try? Self.decoder.decode(BuildInfo.self, from: Data(contentsOf: directory(for: $0).appendingPathComponent("build.json")))
            }
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
