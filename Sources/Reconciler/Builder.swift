public import Foundation
public import GitStore
public import Learning
public import Manifests
public import Registry
public import ExternalModels

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
        /// A trainer command's code paths (git object ids) and environment file (sha256).
        public var codeHashes: [String: String] = [:]
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
            let code = try manifest.trainer.command.map {
                try CommandTraining.codeHashes($0, repository: repository, commit: source.commit)
            }
            let digest = VersionDigest.compute(
                canonicalSpec: manifest.spec.canonical, dataHashes: hashes, formatVersion: ModelFile.currentFormatVersion,
                codeHashes: code ?? [:])
            return Inputs(
                manifest: manifest, source: source, project: project, data: data, dataHashes: hashes, digest: digest,
                downloadSeconds: download, codeHashes: code ?? [:])
        }
    }

    /// Builds `model` at `ref`, or reuses the stored version with the same digest.
    public func build(model: String, ref: String, progress: Training.Progress? = nil) throws -> BuildResult {
        try build(try inputs(model: model, ref: ref), ref: ref, progress: progress)
    }

    /// Builds the version `inputs` describe, or reuses the stored one with the same digest.
    public func build(_ inputs: Inputs, ref: String, progress: Training.Progress? = nil) throws -> BuildResult {
        try build(inputs, ref: ref, store: store(for: inputs.project.settings), progress: progress)
    }

    /// Builds into `store` (the project's, or a folder aside to verify a build).
    private func build(_ inputs: Inputs, ref: String, store: ArtifactStore, progress: Training.Progress?) throws -> BuildResult {
        let started = Date()
        if try store.locate(inputs.digest) {
            return BuildResult(
                digest: inputs.digest, reused: true, info: try store.buildInfo(inputs.digest),
                metrics: try store.metrics(inputs.digest), artifact: store.directory(for: inputs.digest))
        }
        let manifest = inputs.manifest
        if let trainer = manifest.trainer.command {
            return try buildWithCommand(inputs, trainer: trainer, ref: ref, store: store, started: started, progress: progress)
        }
        let request = Self.trainingRequest(manifest)
        let (train, test, readTime) = try Self.readData(inputs, request: request)
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
            digest: inputs.digest, model: manifest.name, algorithm: modelFile.estimator.algorithm, task: manifest.task.rawValue,
            source: inputs.source.commit.hex, ref: ref, data: inputs.dataHashes, parameters: outcome.parameters,
            metrics: outcome.holdoutMetrics, timings: timings, tool: toolVersion, createdAt: Date())
        return try keep(inputs, model: modelFile, metrics: metrics, info: info, store: store)
    }

    /// Stores a built version; when another machine stored the same version meanwhile, its build is the one kept
    /// everywhere.
    private func keep(
        _ inputs: Inputs, model: ModelFile, metrics: MetricsFile, info: BuildInfo, store: ArtifactStore, outputs: URL? = nil,
        log: URL? = nil
    ) throws -> BuildResult {
        let ours = try store.store(digest: inputs.digest, model: model, metrics: metrics, build: info, outputs: outputs, log: log)
        // As stored: with the sha256 of its files (and, when another machine stored it first, that build).
        return BuildResult(
            digest: inputs.digest, reused: !ours, info: try store.buildInfo(inputs.digest),
            metrics: ours ? metrics : try store.metrics(inputs.digest), artifact: store.directory(for: inputs.digest))
    }

    /// Where a trainer command of `digest` runs: a fresh folder under `.stagecraft/work/`.
    func workFolder(_ digest: String) -> URL {
        localRoot.appendingPathComponent(".stagecraft/work/train-\(VersionDigest.short(digest))-\(UUID().uuidString.prefix(8))")
    }

    /// A version trained by the manifest's own command, its gate metrics computed from the answers of its own server
    /// on the holdout set (never from what the trainer printed).
    private func buildWithCommand(
        _ inputs: Inputs, trainer: TrainerCommand, ref: String, store: ArtifactStore, started: Date, progress: Training.Progress?
    ) throws -> BuildResult {
        let manifest = inputs.manifest
        let request = Self.trainingRequest(manifest)
        let (train, test, _) = try Self.readData(inputs, request: request)
        let work = workFolder(inputs.digest)
        defer { try? FileManager.default.removeItem(at: work) }
        let training = CommandTraining(repository: repository, inputs: inputs, trainer: trainer, work: work)
        let fitStart = Date()
        do {
            try training.run(progress: progress)
        } catch let error as BuildError {
            keepFailedLog(training.log, digest: inputs.digest)
            throw error
        }
        var timings = ["fit": Date().timeIntervalSince(fitStart)]
        // The record keeps the params a model file can hold (numbers, booleans); strings are in the spec, hence the digest.
        let parameters = manifest.trainer.params.compactMapValues(Self.parameterValue)
        let spec = manifest.server ?? ServerSpec(command: [])  // a command trainer's manifest has one (checked)
        let server = ExternalEstimator(command: spec.command, environment: spec.environment, ready: spec.ready)
        let record = BuildRecord(
            digest: inputs.digest, model: manifest.name, data: inputs.dataHashes, parameters: parameters, tool: toolVersion)
        var file = try ModelFile.external(
            task: request.task, target: request.target, features: request.features, train: train, server: server, build: record)
        // The gates: the holdout set sent through the version's own server, scored here.
        progress?(.startingServer)
        let evaluateStart = Date()
        let scored: (metrics: [String: Double], reference: ReferenceProfile)
        do {
            let session = try ScoringSession(
                ModelServer.Configuration(
                    model: manifest.name, version: inputs.digest, server: server, folder: training.output,
                    log: work.appendingPathComponent(".stagecraft-server.log")))
            defer { session.stop() }
            progress?(.evaluating)
            let rows = try file.scorable(test)
            scored = try file.evaluate(session.predict(rows, classes: file.classes, task: file.task), on: test, train: train)
        } catch let error as ExternalModelError {
            keepFailedLog(training.log, digest: inputs.digest)
            throw BuildError(.training, "\(manifest.name): its server could not score the holdout set", cause: error)
        }
        file.reference = scored.reference
        timings["evaluate"] = Date().timeIntervalSince(evaluateStart)
        if inputs.downloadSeconds > 0 { timings["download"] = inputs.downloadSeconds }
        timings["total"] = Date().timeIntervalSince(started)
        let info = BuildInfo(
            digest: inputs.digest, model: manifest.name, algorithm: file.estimator.algorithm, task: manifest.task.rawValue,
            source: inputs.source.commit.hex, ref: ref, data: inputs.dataHashes, parameters: parameters, metrics: scored.metrics,
            timings: timings, tool: toolVersion, createdAt: Date())
        return try keep(
            inputs, model: file, metrics: MetricsFile(holdout: scored.metrics, search: []), info: info, store: store,
            outputs: training.output, log: training.log)
    }

    /// The predictions of a stored version of a model with its own server for `rows` (its feature columns): the
    /// server is started on the version's `model/` folder for this batch and stopped (re-scoring a serving version).
    public func externalPredictions(of digest: String, file: ModelFile, rows: Dataset, store: ArtifactStore) throws -> Predictions {
        guard let session = try scoringSession(of: digest, file: file, store: store) else { return try file.predict(rows) }
        defer { session.stop() }
        return try session.predict(rows, classes: file.classes, task: file.task)
    }

    /// The own server of a stored version, started for a batch (`predict`, `queue`, re-scoring), its log in
    /// `.stagecraft/logs/`; nil for a model Stagecraft predicts itself.
    public func scoringSession(of digest: String, file: ModelFile, store: ArtifactStore) throws -> ScoringSession? {
        guard let server = file.external else { return nil }
        let logs = localRoot.appendingPathComponent(".stagecraft/logs")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        return try ScoringSession(
            ModelServer.Configuration(
                model: file.build.model, version: digest, server: server,
                folder: store.directory(for: digest).appendingPathComponent(ArtifactStore.outputFolder),
                log: logs.appendingPathComponent("server-\(file.build.model)-\(VersionDigest.short(digest)).log")))
    }

    /// A failed trainer's log, kept as `.stagecraft/logs/build-<model>-<version>.log` for the user to read.
    private func keepFailedLog(_ log: URL, digest: String) {
        let folder = localRoot.appendingPathComponent(".stagecraft/logs")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let kept = folder.appendingPathComponent("build-\(VersionDigest.short(digest)).log")
        try? FileManager.default.removeItem(at: kept)
        try? FileManager.default.copyItem(at: log, to: kept)
    }

    /// What rebuilding a stored version gave: the files whose bytes differ from the stored build's.
    public struct Reproduction: Sendable {
        public var digest: String
        /// The files compared: a trainer command's outputs, or `model.json`.
        public var compared: [String]
        /// Those that differ, sorted.
        public var differing: [String]
        public var reproducible: Bool { differing.isEmpty }
    }

    /// Builds `model` at `ref` again, aside (the stored version is not touched: it stays the one served), and
    /// compares the files with the stored build's: every output file of a trainer command by sha256, or the model
    /// file. The version is built first when it is not stored yet.
    public func verify(model: String, ref: String, progress: Training.Progress? = nil) throws -> Reproduction {
        let inputs = try inputs(model: model, ref: ref)
        let store = store(for: inputs.project.settings)
        if try !store.locate(inputs.digest) { _ = try build(inputs, ref: ref, progress: progress) }
        let stored = try store.buildInfo(inputs.digest)
        let aside = ArtifactStore(root: localRoot.appendingPathComponent(".stagecraft/work/verify-\(UUID().uuidString.prefix(8))"))
        defer { try? FileManager.default.removeItem(at: aside.root) }
        let again = try build(inputs, ref: ref, store: aside, progress: progress)
        let expected = stored.outputs ?? ["model.json": stored.files?["model.json"] ?? ""]
        let actual = again.info.outputs ?? ["model.json": again.info.files?["model.json"] ?? ""]
        let names = Set(expected.keys).union(actual.keys).sorted()
        return Reproduction(digest: inputs.digest, compared: names, differing: names.filter { expected[$0] != actual[$0] })
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
        let search = manifest.trainer.search.map { search in
            SearchRequest(
                folds: search.folds, metric: search.metric.rawValue,
                grid: search.grid.mapValues { $0.compactMap(parameterValue) })
        }
        return TrainingRequest(
            task: task, target: manifest.data.target, features: features,
            algorithm: AlgorithmName(rawValue: manifest.trainer.algorithm?.rawValue ?? "") ?? .logisticRegression,
            parameters: manifest.trainer.params.compactMapValues(parameterValue), search: search, seed: UInt64(manifest.trainer.seed))
    }

    /// A manifest's parameter as the ML core and the build record hold it: a number or a boolean (nil for a string).
    static func parameterValue(_ value: JSONValue) -> ParameterValue? {
        switch value {
        case .number(let number): return .number(number)
        case .bool(let flag): return .bool(flag)
        default: return nil
        }
    }

    /// The training and holdout data of `inputs`, read with the types the manifest declares, and the seconds it took.
    static func readData(_ inputs: Inputs, request: TrainingRequest) throws -> (train: Dataset, test: Dataset, seconds: Double) {
        let manifest = inputs.manifest
        let types = Dictionary((request.features ?? []).compactMap { feature in feature.type.map { (feature.name, $0) } }) { a, _ in a }
        let start = Date()
        let train = try CSVReader.read(inputs.data[manifest.data.train]!, source: manifest.data.train, types: types)
        let test = try CSVReader.read(inputs.data[manifest.data.test]!, source: manifest.data.test, types: types)
        return (train, test, Date().timeIntervalSince(start))
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
        /// A trainer command failed (exit status, timeout, no output), or its server could not score the holdout set.
        public static let training = Code("training")
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
