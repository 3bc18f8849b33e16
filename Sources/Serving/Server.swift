import ExternalModels
import Foundation
import HTTPTypes
public import Hummingbird
import HummingbirdCore
import Learning
public import Logging
import NIOCore
import RepositoryWire
import UnixSignals

/// One environment's inference server: the Open Inference Protocol (KServe V2) over HTTP/1.1.
public struct InferenceServer: Sendable {
    public let environment: String
    public let repository: ModelRepository
    public var host: String
    public var port: Int
    /// Request bodies above this many bytes get a 413.
    public var bodyLimit: Int
    /// Requests, errors and latency per model, version and status, for `/metrics`.
    public let metrics = ServerMetrics()
    /// Where requests and responses are captured; nil captures nothing.
    public var capture: RequestCapture?
    /// Where a line per sampled infer request goes; nil logs none.
    public var accessLog: AccessLog?
    /// Predictions waiting for true labels, and the live metrics they give.
    public var feedback = LiveFeedback()
    /// The folder of the repository this server serves (holding `.stagecraft/`), told in `GET /v2`.
    public var repositoryPath: String?
    /// The bearer token the model repository API requires; nil turns that API off.
    public var adminToken: String?
    /// The port of the gRPC service (`inference.GRPCInferenceService`), on the same host; nil serves HTTP only.
    public var grpcPort: Int?
    /// Loads a version of a model by digest (or a prefix of at least 12 hex digits), for the repository API.
    public var loader: (@Sendable (_ model: String, _ version: String) async throws -> LoadedVersion)?

    public init(environment: String, repository: ModelRepository, host: String = "127.0.0.1", port: Int, bodyLimit: Int = 8 << 20) {
        self.environment = environment
        self.repository = repository
        self.host = host
        self.port = port
        self.bodyLimit = bodyLimit
    }

    /// What answers infer requests, on the event loop (``InferenceFastPath``) or through the router.
    var inferenceEndpoint: InferenceEndpoint {
        InferenceEndpoint(
            repository: repository, metrics: metrics, capture: capture, feedback: feedback, bodyLimit: bodyLimit, accessLog: accessLog)
    }

    /// The server's routes.
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        let repository = self.repository
        let bodyLimit = self.bodyLimit
        let metrics = self.metrics
        let feedback = self.feedback
        let capture = self.capture
        router.get("/v2/health/live") { _, _ in Self.json(["live": true]) }
        router.get("/v2/health/ready") { _, _ in
            Self.json(["ready": true])
        }
        router.get("/v2") { [environment, repositoryPath] _, _ in
            var metadata: [String: Any] = [
                "name": "stagecraft", "version": InferenceServer.version, "extensions": ["model_repository"],
                "environment": environment,
            ]
            // Which repository's server this is, so that a reconcile of another repository that finds it on its port can say so.
            if let repositoryPath { metadata["repository"] = repositoryPath }
            return Self.json(metadata)
        }
        router.get("/v2/models/:model") { _, context in try Self.metadata(repository, context, version: nil) }
        router.get("/v2/models/:model/versions/:version") { _, context in
            try Self.metadata(repository, context, version: context.parameters.get("version"))
        }
        router.get("/v2/models/:model/ready") { _, context in try Self.ready(repository, context, version: nil) }
        router.get("/v2/models/:model/versions/:version/ready") { _, context in
            try Self.ready(repository, context, version: context.parameters.get("version"))
        }
        let endpoint = inferenceEndpoint
        router.post("/v2/models/:model/infer") { request, context in
            await endpoint.answer(request, model: context.parameters.get("model"), version: nil)
        }
        router.post("/v2/models/:model/versions/:version/infer") { request, context in
            await endpoint.answer(request, model: context.parameters.get("model"), version: context.parameters.get("version"))
        }
        router.post("/v2/models/:model/feedback") { request, context in
            await feedback.post(repository, request, context, bodyLimit: bodyLimit)
        }
        router.get("/v2/models/:model/feedback") { _, context in feedback.get(repository, context) }
        router.get("/ping") { _, _ in Self.json(["status": "ok"]) }
        router.get("/health") { _, _ in Self.json(["status": "ok"]) }
        router.post("/invocations") { request, context in
            await MLflowScoring.invocations(repository, request, context, bodyLimit: bodyLimit, metrics: metrics)
        }
        // KServe V1: `/v1/models/{m}` and `/v1/models/{m}:predict` (a version is routed with the V2 paths only).
        router.get("/v1/models/:model") { _, context in
            let model = context.parameters.get("model") ?? ""
            guard repository.contains(model: model) else { return Self.notFound(model, nil, repository) }
            return Self.json(["name": model, "ready": true])
        }
        router.post("/v1/models/:model") { request, context in
            // The segment is `{model}:predict` (one path segment; the router's parameter takes it whole).
            let action = context.parameters.get("model") ?? ""
            guard action.hasSuffix(":predict") else {
                return Self.error(.notFound, "KServe V1 answers /v1/models/{model}:predict; '\(action.prefix(80))' is not a predict path")
            }
            let model = String(action.dropLast(":predict".count))
            return await MLflowScoring.v1Predict(repository, request, model: model, bodyLimit: bodyLimit, metrics: metrics)
        }
        let admin = RepositoryAPI(repository: repository, token: adminToken, loader: loader)
        router.post("/v2/repository/index") { request, _ in admin.index(request) }
        router.post("/v2/repository/models/:model/load") { request, context in await admin.load(request, context, bodyLimit: bodyLimit) }
        router.post("/v2/repository/models/:model/unload") { request, context in await admin.unload(request, context, bodyLimit: bodyLimit)
        }
        router.post("/v2/repository/models/:model/route") { request, context in await admin.route(request, context, bodyLimit: bodyLimit) }
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4"
            return Response(
                status: .ok, headers: headers,
                body: .init(byteBuffer: ByteBuffer(string: Self.metricsText(metrics, feedback: feedback, capture: capture))))
        }
        return router
    }

    /// Runs until the task is cancelled or, with `handleSignals`, the process gets SIGTERM/SIGINT (in-flight requests
    /// finish first).
    /// - Parameter onRunning: called once the port is open.
    public func run(handleSignals: Bool = true, logger: Logger? = nil, onRunning: @escaping @Sendable () async -> Void = {}) async throws {
        let logger =
            logger
            ?? {
                var quiet = Logger(label: "stagecraft.serve.\(environment)")
                quiet.logLevel = .critical
                return quiet
            }()
        let endpoint = inferenceEndpoint
        let serverName = "stagecraft"
        let app = Application(
            router: router(),
            // Infer requests are answered on the event loop, from the connection's bytes; everything else goes
            // through the HTTP decoder and the router.
            server: HTTPServerBuilder { responder in
                InferenceHTTP1Channel(http1: HTTP1Channel(responder: responder), endpoint: endpoint, serverName: serverName)
            },
            configuration: .init(address: .hostname(host, port: port), serverName: serverName),
            onServerRunning: { [environment, repository, host, port] _ in
                let models = repository.models.compactMap { name in
                    repository.resolve(model: name).map { "\(name)@\($0.version.prefix(12))" }
                }
                logger.info(
                    "serving",
                    metadata: ["environment": "\(environment)", "address": "\(host):\(port)", "models": "\(models.joined(separator: ","))"])
                await onRunning()
            },
            logger: logger)
        let signals: [UnixSignal] = handleSignals ? [.sigterm, .sigint] : []
        do {
            try await serve(app, signals: signals)
        } catch {
            await repository.stopServers()
            throw error
        }
        // The versions' own servers stop with it; what was captured before it stopped is written before it returns.
        await repository.stopServers()
        await capture?.finish()
        await accessLog?.finish()
    }

    /// Runs the HTTP application, and the gRPC listener beside it when there is a gRPC port.
    private func serve(_ app: some ApplicationProtocol, signals: [UnixSignal]) async throws {
        guard let grpcPort else {
            try await app.runService(gracefulShutdownSignals: signals)
            return
        }
        // gRPC beside HTTP, through the same endpoint: when either stops (a signal, a port that cannot be bound), both do.
        // Messages up to 4 times the body limit are read, so that a larger request gets `RESOURCE_EXHAUSTED` with the
        // service's own message.
        let grpc = GRPCListener(
            host: host, port: grpcPort, service: GRPCInference(endpoint: inferenceEndpoint, adminToken: adminToken, loader: loader),
            messageLimit: 4 * bodyLimit)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService(gracefulShutdownSignals: signals) }
            group.addTask { try await grpc.serve() }
            defer { grpc.beginGracefulShutdown() }
            do {
                try await group.next()
            } catch {
                group.cancelAll()
                throw error
            }
            grpc.beginGracefulShutdown()
            group.cancelAll()
            try await group.waitForAll()
        }
    }

    public static let version = "0.1.0"

    /// `/metrics`: requests, live feedback and capture, from one registry.
    static func metricsText(_ metrics: ServerMetrics, feedback: LiveFeedback, capture: RequestCapture?) -> String {
        feedback.export(to: metrics)
        capture?.export(to: metrics)
        return metrics.render()
    }

    // MARK: Handlers

    static func metadata(_ repository: ModelRepository, _ context: BasicRequestContext, version: String?) throws -> Response {
        let name = try context.parameters.require("model")
        guard let loaded = repository.resolve(model: name, version: version) else { return notFound(name, version, repository) }
        let file = loaded.file
        // What a client builds requests from: each input's known levels (categorical) and the order of predict_proba's
        // classes travel in `parameters`, which the protocol leaves free for such data.
        let inputs: [[String: Any]] = file.pipeline.features.map { feature in
            var input: [String: Any] = ["name": feature.name, "datatype": feature.kind == .numeric ? "FP64" : "BYTES", "shape": [-1]]
            if let levels = feature.levels { input["parameters"] = ["levels": levels] }
            return input
        }
        var outputs: [[String: Any]] = [["name": "predict", "datatype": file.classes == nil ? "FP64" : "BYTES", "shape": [-1]]]
        if let classes = file.classes {
            outputs[0]["parameters"] = ["classes": classes]
            outputs.append(["name": "predict_proba", "datatype": "FP64", "shape": [-1, classes.count], "parameters": ["classes": classes]])
        }
        return json([
            "name": name, "versions": repository.versions(of: name) ?? [], "platform": "stagecraft",
            "parameters": [
                "version": loaded.version, "source": loaded.source, "task": file.task.rawValue, "algorithm": file.estimator.algorithm,
            ],
            "inputs": inputs, "outputs": outputs,
        ])
    }

    static func ready(_ repository: ModelRepository, _ context: BasicRequestContext, version: String?) throws -> Response {
        let name = try context.parameters.require("model")
        guard let loaded = repository.resolve(model: name, version: version) else { return notFound(name, version, repository) }
        return json(["name": name, "version": loaded.version, "ready": true])
    }

    /// A request that carries this header is a verification probe: answered and counted, never captured.
    public static let probeHeader = HTTPField.Name("Stagecraft-Probe")!

    /// The header that names the commit an answering version was built from.
    static let sourceHeader = HTTPField.Name("Stagecraft-Source")!
    /// The binary tensor extension's header: the length of the body's JSON part.
    static let binaryHeaderLength = HTTPField.Name(BinaryTensors.headerLengthField)!

    /// The response to a request that failed: an ``InferenceError``'s own status, a 400 for anything else a client sent.
    static func response(for failure: any Error) -> Response { reply(for: failure).response }

    /// The reply to a request that failed, as ``response(for:)`` says.
    static func reply(for failure: any Error) -> Reply {
        switch failure {
        case let failure as InferenceError:
            let status: HTTPResponse.Status
            switch failure.kind {
            case .badRequest: status = .badRequest
            case .notFound: status = .notFound
            case .tooLarge: status = .contentTooLarge
            }
            return errorReply(status, failure.message)
        case let failure as LearningError:
            return errorReply(.badRequest, failure.message)
        case let failure as ExternalModelError where failure.code == .unavailable:
            var reply = errorReply(.serviceUnavailable, failure.message)
            reply.retryAfter = failure.retryAfter ?? 1
            return reply
        case let failure as ExternalModelError:
            return errorReply(.badGateway, failure.message)
        default:
            return errorReply(.badRequest, "\(failure)")
        }
    }

    static func notFound(_ model: String, _ version: String?, _ repository: ModelRepository) -> Response {
        error(.notFound, notFoundMessage(model, version, repository))
    }

    static func notFoundMessage(_ model: String, _ version: String?, _ repository: ModelRepository) -> String {
        if let version, let versions = repository.versions(of: model) {
            return "model '\(model)' has no version '\(version)' (loaded: "
                + "\(versions.map { String($0.prefix(12)) }.joined(separator: ", ")))"
        }
        let models = repository.models
        return "no model '\(model)' (loaded: \(models.isEmpty ? "none" : models.joined(separator: ", ")))"
    }

    static func json(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        jsonReply(object, status: status).response
    }

    /// A wire type as the JSON answer.
    static func json(encoding value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        Reply.json(ByteBuffer(bytes: Wire.encode(value)), status: status).response
    }

    static func jsonReply(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Reply {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return .json(ByteBuffer(bytes: data), status: status)
    }

    static func error(_ status: HTTPResponse.Status, _ message: String) -> Response {
        errorReply(status, message).response
    }

    /// `{"error": message}` with `status`.
    static func errorReply(_ status: HTTPResponse.Status, _ message: String) -> Reply {
        jsonReply(["error": message], status: status)
    }
}

/// Seconds from `start` to now.
func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = start.duration(to: .now)
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}
