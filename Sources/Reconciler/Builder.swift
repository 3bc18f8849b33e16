public import Foundation
public import GitStore
public import Learning
public import Manifests
public import Registry

/// The outcome of `build`: the version's digest, and whether it was already in the store.
public struct BuildResult: Sendable {
    public var digest: String
    public var reused: Bool
    public var info: BuildInfo
    public var metrics: MetricsFile
    /// The version's folder in the artifact store.
    public var artifact: URL
}

/// Builds model versions from a manifest and its data as committed at a ref, into the artifact store.
public struct Builder: Sendable {
    public let repository: Repository
    /// Written into every build record.
    public let toolVersion: String

    public init(repository: Repository, toolVersion: String) {
        self.repository = repository
        self.toolVersion = toolVersion
    }

    /// The folder that holds `.stagecraft/` for this repository: the working tree, or the git folder when bare.
    public var localRoot: URL { URL(fileURLWithPath: repository.workingDirectory ?? repository.gitDirectory) }

    /// The artifact store named by the project's settings: a folder, or a local cache of an S3 prefix.
    public func store(for settings: ProjectSettings) -> ArtifactStore {
        if let remote = S3Artifacts(settings: settings) {
            return ArtifactStore(root: localRoot.appendingPathComponent(ProjectSettings.artifactCache), remote: remote)
        }
        return ArtifactStore(root: localRoot.appendingPathComponent(settings.artifacts))
    }

    /// The inputs of one version: the manifest, its data and their digest.
    public struct Inputs: Sendable {
        public var manifest: ModelManifest
        public var source: GitProjectSource
        public var project: Project
        public var data: [String: Data]
        public var dataHashes: [String: String]
        public var digest: String
        /// Seconds spent downloading data files from S3 (0 when every file came from git or the cache).
        public var downloadSeconds: Double = 0
    }

    /// Reads `model`'s manifest and data at `ref` and computes the digest, without training.
    /// - Throws: ``InvalidProject`` when the manifest (or the settings) has problems; ``GitError`` when the ref or a file cannot be read.
    public func inputs(model: String, ref: String) throws -> Inputs {
        try inputs(models: [model], ref: ref)[0]
    }

    /// The inputs of several models at one ref, reading and checking the project once.
    public func inputs(models: [String], ref: String) throws -> [Inputs] {
        let source = try GitProjectSource(repository: repository, ref: ref)
        let (project, diagnostics) = try Project.check(source)
        // Every problem of every manifest asked for, at once (not the first model's alone).
        let names = Set(models.map { "\(Project.manifestsFolder)/\($0).yaml" } + [ProjectSettings.file, "."])
        let relevant = diagnostics.filter { names.contains($0.location.file) }
        guard relevant.isEmpty else { throw InvalidProject(relevant) }
        let files = DataFiles(repository: repository, settings: project.settings, root: localRoot)
        return try models.map { model in
            let file = "\(Project.manifestsFolder)/\(model).yaml"
            guard let manifest = project.models[model] else {
                let known = project.models.keys.sorted()
                throw BuildError(
                    .unknownModel, "no model '\(model)' at \(source.revision) (expected \(file); models: "
                        + "\(known.isEmpty ? "none" : known.joined(separator: ", ")))")
            }
            var data: [String: Data] = [:]
            var hashes: [String: String] = [:]
            var download = 0.0
            for path in [manifest.data.train, manifest.data.test] where data[path] == nil {
                let file = try files.read(path, at: source.commit)
                data[path] = file.bytes
                hashes[path] = file.sha256
                download += file.downloadSeconds
            }
            let digest = VersionDigest.compute(
                canonicalSpec: manifest.spec.canonical, dataHashes: hashes, formatVersion: ModelFile.currentFormatVersion)
            return Inputs(
                manifest: manifest, source: source, project: project, data: data, dataHashes: hashes, digest: digest,
                downloadSeconds: download)
        }
    }

    /// Builds `model` at `ref`, or reuses the stored version with the same digest.
    public func build(model: String, ref: String, progress: Training.Progress? = nil) throws -> BuildResult {
        try build(try inputs(model: model, ref: ref), ref: ref, progress: progress)
    }

    /// Builds the version `inputs` describe, or reuses the stored one with the same digest.
    public func build(_ inputs: Inputs, ref: String, progress: Training.Progress? = nil) throws -> BuildResult {
        let started = Date()
        let store = store(for: inputs.project.settings)
        if try store.locate(inputs.digest) {
            return BuildResult(
                digest: inputs.digest, reused: true, info: try store.buildInfo(inputs.digest),
                metrics: try store.metrics(inputs.digest), artifact: store.directory(for: inputs.digest))
        }
        let manifest = inputs.manifest
        let request = Self.trainingRequest(manifest)
        let types = Dictionary((request.features ?? []).compactMap { feature in feature.type.map { (feature.name, $0) } }) { a, _ in a }
        let readStart = Date()
        let train = try CSVReader.read(inputs.data[manifest.data.train]!, source: manifest.data.train, types: types)
        let test = try CSVReader.read(inputs.data[manifest.data.test]!, source: manifest.data.test, types: types)
        let readTime = Date().timeIntervalSince(readStart)
        let outcome = try Training.run(request, train: train, test: test, progress: progress)
        let record = BuildRecord(
            digest: inputs.digest, model: manifest.name, data: inputs.dataHashes, parameters: outcome.parameters, tool: toolVersion)
        let modelFile = outcome.modelFile(task: request.task, target: request.target, build: record)
        let metrics = MetricsFile(holdout: outcome.holdoutMetrics, search: outcome.search)
        var timings = outcome.timings
        timings["read"] = readTime
        if inputs.downloadSeconds > 0 { timings["download"] = inputs.downloadSeconds }
        timings["total"] = Date().timeIntervalSince(started)
        let info = BuildInfo(
            digest: inputs.digest, model: manifest.name, algorithm: manifest.trainer.algorithm.rawValue, task: manifest.task.rawValue,
            source: inputs.source.commit.hex, ref: ref, data: inputs.dataHashes, parameters: outcome.parameters,
            metrics: outcome.holdoutMetrics, timings: timings, tool: toolVersion, createdAt: Date())
        // When another machine stored the same version meanwhile, its build is the one kept everywhere.
        let ours = try store.store(digest: inputs.digest, model: modelFile, metrics: metrics, build: info)
        return BuildResult(
            digest: inputs.digest, reused: !ours, info: ours ? info : try store.buildInfo(inputs.digest),
            metrics: ours ? metrics : try store.metrics(inputs.digest), artifact: store.directory(for: inputs.digest))
    }

    /// The ML core's request for a manifest.
    public static func trainingRequest(_ manifest: ModelManifest) -> TrainingRequest {
        let task: LearningTask
        switch manifest.task {
        case .binaryClassification: task = .binaryClassification
        case .multiclassClassification: task = .multiclassClassification
        case .regression: task = .regression
        }
        let features = manifest.features?.map { spec in
            FeatureRequest(
                name: spec.name,
                type: spec.type.map { $0 == .numeric ? ColumnType.numeric : .categorical },
                imputation: spec.missing.flatMap { Imputation(rawValue: $0.rawValue) })
        }
        func parameter(_ value: JSONValue) -> ParameterValue? {
            switch value {
            case .number(let number): return .number(number)
            case .bool(let flag): return .bool(flag)
            default: return nil
            }
        }
        let search = manifest.trainer.search.map { search in
            SearchRequest(
                folds: search.folds, metric: search.metric.rawValue,
                grid: search.grid.mapValues { $0.compactMap(parameter) })
        }
        return TrainingRequest(
            task: task, target: manifest.data.target, features: features,
            algorithm: AlgorithmName(rawValue: manifest.trainer.algorithm.rawValue)!,
            parameters: manifest.trainer.params.compactMapValues(parameter), search: search, seed: UInt64(manifest.trainer.seed))
    }
}

/// A build that cannot start (an unknown model).
public struct BuildError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// No manifest of that model at the ref.
        public static let unknownModel = Code("unknown-model")
        /// A data file cannot be had, or is not what its pointer says.
        public static let data = Code("data")
    }

    public let code: Code
    /// What failed, for the user.
    public let message: String
    /// What caused it, when something else failed first.
    public let cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String { cause.map { "\(message): \($0)" } ?? message }
}
