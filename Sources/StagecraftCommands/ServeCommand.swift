import ArgumentParser
import Foundation
import GitStore
import Learning
import Manifests
import Reconciler
import Registry
import Serving

#if canImport(Glibc)
    import Glibc
#endif

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve an environment's models over the Open Inference Protocol (KServe V2).",
        discussion: """
            Reads environments/<env>.yaml at --ref, loads each pinned version from
            the artifact store by digest (build them first with 'stagecraft build'),
            and serves them on the environment's host and port until SIGTERM or
            SIGINT, which let in-flight requests finish.

            Examples:
              stagecraft serve --env dev
              stagecraft serve --env dev --detach     (then: stagecraft stop --env dev)
              stagecraft serve --env qa --port 9000
              curl -s localhost:8101/v2/models/penguins

            With --model-dir, serves one version's folder (model.json, metrics.json,
            build.json, as the artifact store keeps it) with no repository and no
            state store: the V2 endpoints, MLflow's /invocations and SageMaker's
            GET /ping, on port 8080 unless --port or SAGEMAKER_BIND_TO_PORT says
            otherwise. Without --env and --model-dir, /opt/ml/model is served on
            0.0.0.0 (the SageMaker inference container contract).
              stagecraft serve --model-dir .stagecraft/artifacts/3f2a9c1e…
              stagecraft serve --model-dir /mnt/models --host 0.0.0.0 --port 8080
            """
    )

    @Option(name: .long, help: "The environment to serve.", transform: Name.environment)
    var env: String?

    @Option(name: .long, help: ArgumentHelp("Serve this one version's folder instead of an environment.", valueName: "folder"))
    var modelDir: String?

    @Option(name: .long, help: "With --model-dir: the address to listen on (127.0.0.1 unless in a SageMaker container).")
    var host: String?

    @Option(name: .long, help: "With --model-dir: also serve gRPC on this port (inside SAGEMAKER_SAFE_PORT_RANGE when set).")
    var grpcPort: Int?

    @OptionGroup var repository: RepositoryOptions

    @Option(name: .long, help: "Listen on this port instead of the environment's.")
    var port: Int?

    @Option(name: .long, help: "Percent of requests captured to .stagecraft/capture/<env>/<model>/ (0 to 100).")
    var capturePercent: Double = 100

    @Option(name: .long, help: "Start a new capture file past this many bytes.")
    var captureFileBytes: Int = 64 << 20

    @Option(name: .long, help: "Percent of infer requests logged to .stagecraft/run/<env>.access.log (0 to 100; see stagecraft logs).")
    var accessLogPercent: Double = 100

    @Option(name: .long, help: "How many recent predictions wait for true labels (feedback); 0 turns live metrics off.")
    var feedbackWindow: Int = 2_000

    @Flag(name: .long, help: "Run in the background: pid and log under .stagecraft/run/; stop it with 'stagecraft stop'.")
    var detach = false

    @Flag(
        name: .long, help: "Load what the state store records as deployed (what reconcile verified) instead of the environment file's pins."
    )
    var deployed = false

    func validate() throws {
        if env != nil && modelDir != nil { throw ValidationError("give --env or --model-dir, not both") }
        if env != nil && (host != nil || grpcPort != nil) {
            throw ValidationError("--host and --grpc-port go with --model-dir; an environment's come from its file")
        }
    }

    func run() async throws {
        if let env { return try await serve(environment: env) }
        let sageMaker = ProcessInfo.processInfo.environment
        if let modelDir {
            return try await serve(folder: URL(fileURLWithPath: modelDir), defaultHost: "127.0.0.1", variables: sageMaker)
        }
        guard FileManager.default.fileExists(atPath: Self.sageMakerModel) else {
            throw ValidationError("say what to serve: --env ENV (an environment of the repository) or --model-dir FOLDER (one version)")
        }
        try await serve(folder: URL(fileURLWithPath: Self.sageMakerModel), defaultHost: "0.0.0.0", variables: sageMaker)
    }

    /// Where SageMaker puts a model in its inference container.
    static let sageMakerModel = "/opt/ml/model"

    /// Serves one version's folder: no repository, no state store, no capture, no repository API.
    private func serve(folder: URL, defaultHost: String, variables: [String: String]) async throws {
        let contract = try SageMakerPorts(variables: variables)
        let listen = port ?? contract.bindPort ?? 8080
        if let grpcPort, let range = contract.safeRange, !range.contains(grpcPort) {
            throw CommandFailure(
                .usage,
                "--grpc-port \(grpcPort) is outside SAGEMAKER_SAFE_PORT_RANGE (\(range.lowerBound)-\(range.upperBound)); pick a port in it")
        }
        let (info, model) = try ArtifactStore.readVersion(in: folder)
        let models = ModelRepository()
        models.load(
            try await LoadedVersion.ready(
                model: info.model, version: info.digest, source: info.source, file: model, folder: folder,
                logs: FileManager.default.temporaryDirectory.appendingPathComponent("stagecraft-logs")),
            makeDefault: true)
        var server = InferenceServer(environment: info.model, repository: models, host: host ?? defaultHost, port: listen)
        server.grpcPort = grpcPort
        Console.current.printError(
            "serving \(info.model) version \(VersionDigest.short(info.digest)) from \(folder.path) at http://\(server.host):\(listen)")
        try await server.run(logger: JSONLogHandler.logger("stagecraft.serve"))
    }

    private func serve(environment env: String) async throws {
        let repo = try repository.open()
        let source = try GitProjectSource(repository: repo, ref: repository.ref)
        let (project, diagnostics) = try Project.check(source)
        guard let environment = project.environments[env] else {
            let known = project.environmentOrder
            throw CommandFailure(
                .usage,
                "no environment '\(env)' at \(source.revision) (environments: "
                    + "\(known.isEmpty ? "none" : known.joined(separator: ", ")))")
        }
        let relevant = diagnostics.filter { $0.location.file == environment.file }
        guard relevant.isEmpty else { throw InvalidProject(relevant) }
        let builder = Builder(repository: repo, toolVersion: Stagecraft.version)
        let store = builder.store(for: project.settings)
        let models = ModelRepository()
        let logs = builder.localRoot.appendingPathComponent(".stagecraft/logs/\(env)")
        if deployed {
            try await loadDeployed(
                env, into: models, store: store, logs: logs,
                workspace: Workspace(repository: repo, toolVersion: Stagecraft.version, ref: repository.ref))
        }
        for deployment in environment.models where !deployed {
            guard let pinned = deployment.version else { continue }
            let versions =
                [pinned] + ((deployment.traffic ?? []) + [deployment.shadow].compactMap { $0 }).map(\.version).filter { $0 != pinned }
            for version in versions {
                guard let digest = store.resolve(version) else {
                    throw CommandFailure(
                        .failure,
                        "version \(version) of '\(deployment.model)' is not in the artifact store (\(store.location)); "
                            + "build it from its source commit: stagecraft build \(deployment.model) --ref "
                            + "\(deployment.source ?? "<source>")"
                    )
                }
                let info = try store.buildInfo(digest)
                models.load(
                    try await LoadedVersion.ready(
                        model: deployment.model, version: digest, source: info.source, file: try store.model(digest),
                        folder: store.directory(for: digest), logs: logs),
                    makeDefault: version == pinned)
            }
            if let shadow = deployment.shadow {
                do {
                    try models.setShadow(model: deployment.model, version: shadow.version)
                } catch {
                    throw CommandFailure(.failure, "shadow of '\(deployment.model)' in \(environment.file): \(error.message)")
                }
            }
            if let traffic = deployment.traffic {
                do {
                    try models.setTraffic(model: deployment.model, traffic.map { ($0.version, $0.weight) })
                } catch {
                    throw CommandFailure(.failure, "traffic of '\(deployment.model)' in \(environment.file): \(error.message)")
                }
            }
        }
        var server = InferenceServer(environment: env, repository: models, host: environment.host, port: port ?? environment.port)
        if detach {
            try start(server: server, environment: env, root: builder.localRoot)
            return
        }
        server.adminToken = try AdminToken.loadOrCreate(root: builder.localRoot)
        server.repositoryPath = builder.localRoot.path
        server.grpcPort = environment.grpcPort
        if capturePercent > 0 {
            server.capture = RequestCapture(
                directory: builder.localRoot.appendingPathComponent(".stagecraft/capture/\(env)"),
                samplePercent: min(capturePercent, 100), maxFileBytes: captureFileBytes)
        }
        if accessLogPercent > 0 {
            server.accessLog = AccessLog(
                file: RunFiles(root: builder.localRoot, environment: env).accessLogFile, samplePercent: min(accessLogPercent, 100))
        }
        server.feedback = LiveFeedback(
            capacity: feedbackWindow, directory: builder.localRoot.appendingPathComponent(".stagecraft/feedback/\(env)"))
        // A request handler does not wait on the network: versions come from the local folder (the reconciler fetches
        // a remote version into it before it asks the server to load it).
        let cached = store.local
        server.loader = { model, version in
            guard let digest = cached.resolve(version) else {
                throw RegistryError(.notFound, "version \(version) is not in the artifact store (\(cached.root.path))")
            }
            let info = try cached.buildInfo(digest)
            guard info.model == model else {
                throw RegistryError(.notFound, "version \(version) is a build of '\(info.model)', not '\(model)'")
            }
            return try await LoadedVersion.ready(
                model: model, version: digest, source: info.source, file: try cached.model(digest), folder: cached.directory(for: digest),
                logs: logs)
        }
        // A detached server records its own pid (the parent only knows setsid's) and holds the file's lock while it runs.
        let pidFile = ProcessInfo.processInfo.environment["STAGECRAFT_PID_FILE"]
        let pidLock = try pidFile.map(PIDFile.claim)
        defer { if let pidFile, let pidLock { PIDFile.release(pidFile, fd: pidLock) } }
        try await server.run(logger: JSONLogHandler.logger("stagecraft.serve"))
    }

    /// Loads, with their routes, the versions the state store records as serving in this environment.
    private func loadDeployed(
        _ env: String, into models: ModelRepository, store: ArtifactStore, logs: URL, workspace: Workspace
    ) async throws {
        for (name, served) in try workspace.openState(notice: Console.current.warn).served(environment: env) {
            for version in served.versions.sorted() {
                guard let info = try? store.buildInfo(version), let file = try? store.model(version) else {
                    throw CommandFailure(
                        .failure,
                        "the state store records \(VersionDigest.short(version)) of '\(name)' as serving in \(env), but it is not in "
                            + "the artifact store (\(store.location)); build it from its source commit (stagecraft build \(name) "
                            + "--ref \(version == served.version ? served.source ?? "<source>" : "<source>")) or serve the pins "
                            + "without --deployed")
                }
                models.load(
                    try await LoadedVersion.ready(
                        model: name, version: version, source: info.source, file: file, folder: store.directory(for: version), logs: logs),
                    makeDefault: version == served.version)
            }
            do {
                try models.route(
                    model: name, defaultVersion: served.version, traffic: served.traffic.map { $0.map { ($0.version, $0.weight) } },
                    shadow: served.shadow)
            } catch {
                throw CommandFailure(.failure, "the state store's route of '\(name)': \(error.message)")
            }
        }
    }

    /// Starts this same command without --detach in a session of its own, and returns once it listens.
    private func start(server: InferenceServer, environment env: String, root: URL) throws {
        let console = Console.current
        let files = RunFiles(root: root, environment: env)
        let pid = try ServerLauncher.start(
            CommandLine.arguments.dropFirst().filter { $0 != "--detach" }, files: files,
            host: server.host, port: server.port)
        console.print(
            console.styled("✓", .green) + " serving \(env) at http://\(server.host):\(server.port) (pid \(pid)); log: "
                + "\(files.logFile.path)")
    }
}

/// The ports SageMaker's inference container contract gives: `SAGEMAKER_BIND_TO_PORT` (where `/ping` and
/// `/invocations` must answer) and `SAGEMAKER_SAFE_PORT_RANGE` (`low-high`, the ports the container may use for
/// anything else).
struct SageMakerPorts {
    var bindPort: Int?
    var safeRange: ClosedRange<Int>?

    init(variables: [String: String]) throws {
        if let text = variables["SAGEMAKER_BIND_TO_PORT"] {
            guard let port = Int(text), (1...65535).contains(port) else {
                throw CommandFailure(.usage, "SAGEMAKER_BIND_TO_PORT is '\(text.prefix(40))', expected a port (1-65535)")
            }
            bindPort = port
        }
        if let text = variables["SAGEMAKER_SAFE_PORT_RANGE"] {
            let bounds = text.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
            guard bounds.count == 2, let low = bounds[0], let high = bounds[1], 1 <= low, low <= high, high <= 65535 else {
                throw CommandFailure(.usage, "SAGEMAKER_SAFE_PORT_RANGE is '\(text.prefix(40))', expected LOW-HIGH (e.g. 20000-20999)")
            }
            safeRange = low...high
        }
    }
}

struct StopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "Stop an environment's detached server, letting in-flight requests finish.",
        discussion: """
            Examples:
              stagecraft stop --env dev
            """
    )

    @Option(name: .long, help: "The environment whose server to stop.", transform: Name.environment)
    var env: String

    @OptionGroup var repository: RepositoryOptions

    func run() async throws {
        let console = Console.current
        let repo = try repository.open()
        let files = RunFiles(root: Builder(repository: repo, toolVersion: Stagecraft.version).localRoot, environment: env)
        guard let pid = files.runningPID() else {
            console.print("no server is running for '\(env)'")
            return
        }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(30)
        while files.runningPID() == pid && Date() < deadline { usleep(20_000) }
        guard files.runningPID() != pid else {
            throw CommandFailure(.failure, "the server for '\(env)' (pid \(pid)) did not stop within 30 s")
        }
        console.print(console.styled("✓", .green) + " stopped \(env) (pid \(pid))")
    }
}
