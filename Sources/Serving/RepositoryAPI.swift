import Foundation
import HTTPTypes
import Hummingbird
import Learning
import NIOCore
import RepositoryWire

/// The model repository extension of the Open Inference Protocol: list, load and unload versions while serving.
/// Every call needs `Authorization: Bearer <admin token>`.
struct RepositoryAPI: Sendable {
    let repository: ModelRepository
    let token: String?
    let loader: (@Sendable (String, String) async throws -> LoadedVersion)?

    func authorized(_ request: Request) -> Response? {
        guard let token else { return InferenceServer.error(.notFound, "the model repository API is off on this server") }
        let given = request.headers[.authorization] ?? ""
        guard given == "Bearer \(token)" else {
            return InferenceServer.error(
                .unauthorized,
                "the model repository API needs 'Authorization: Bearer <token>' with the token "
                    + "in .stagecraft/admin-token")
        }
        return nil
    }

    func index(_ request: Request) -> Response {
        if let refusal = authorized(request) { return refusal }
        var models: [RepositoryIndex.Model] = []
        var routes: [String: RouteParameters] = [:]
        for name in repository.models {
            guard let routing = repository.routing(of: name) else { continue }
            for version in repository.versions(of: name) ?? [] {
                let source = repository.resolve(model: name, version: version)?.source ?? ""
                models.append(
                    RepositoryIndex.Model(
                        name: name, version: version, source: source, state: "READY", default: version == routing.defaultVersion))
            }
            routes[name] = RouteParameters(
                default: routing.defaultVersion, traffic: routing.traffic?.map { WireShare(version: $0.version, weight: $0.weight) },
                shadow: routing.shadow)
        }
        return InferenceServer.json(encoding: RepositoryIndex(models: models, routes: routes))
    }

    /// `{"parameters": {"default": "<digest>", "traffic": [{"version": "<digest>", "weight": 90}, …], "shadow": "<digest>"}}`:
    /// switches, in one step, which loaded versions answer (traffic and shadow optional; absent means none).
    func route(_ request: Request, _ context: BasicRequestContext, bodyLimit: Int) async -> Response {
        if let refusal = authorized(request) { return refusal }
        guard let name = context.parameters.get("model") else { return InferenceServer.error(.badRequest, "no model in the path") }
        let usage =
            "the body must be {\"parameters\": {\"default\": \"<digest>\", \"traffic\": [{\"version\": \"<digest>\", "
            + "\"weight\": 90}], \"shadow\": \"<digest>\"}} (traffic and shadow optional)"
        let route: RouteParameters
        do {
            guard let parameters = try await body(RouteParameters.self, request, bodyLimit: bodyLimit, usage: usage) else {
                return InferenceServer.error(.badRequest, usage)
            }
            route = parameters
        } catch {
            return InferenceServer.error(.badRequest, error.message)
        }
        do {
            try repository.route(
                model: name, defaultVersion: route.default, traffic: route.traffic?.map { ($0.version, $0.weight) },
                shadow: route.shadow)
        } catch {
            return InferenceServer.response(for: error)
        }
        return InferenceServer.json(encoding: RouteAnswer(name: name, default: route.default, state: "ROUTED"))
    }

    /// `{"parameters": {"version": "<digest>", "default": true}}`: loads (and warms) the version; with
    /// `"default": false` it answers only requests to its own version path (a slot for verification).
    func load(_ request: Request, _ context: BasicRequestContext, bodyLimit: Int) async -> Response {
        if let refusal = authorized(request) { return refusal }
        guard let name = context.parameters.get("model") else { return InferenceServer.error(.badRequest, "no model in the path") }
        let usage = "the body must be {\"parameters\": {\"version\": \"<digest>\"}} (and optionally \"default\": false)"
        let parameters: LoadParameters
        do {
            guard let given = try await body(LoadParameters.self, request, bodyLimit: bodyLimit, usage: usage) else {
                return InferenceServer.error(.badRequest, usage)
            }
            parameters = given
        } catch {
            return InferenceServer.error(.badRequest, error.message)
        }
        let version = parameters.version
        let makeDefault = parameters.default ?? true
        guard let loader else { return InferenceServer.error(.notFound, "this server cannot load models") }
        let loaded: LoadedVersion
        do {
            loaded = try await loader(name, version)
        } catch {
            return InferenceServer.error(.notFound, "cannot load version \(version) of '\(name)': \(error)")
        }
        Self.warm(loaded.file)
        repository.load(loaded, makeDefault: makeDefault)
        return InferenceServer.json(encoding: LoadAnswer(name: name, version: loaded.version, default: makeDefault, state: "READY"))
    }

    /// `{"parameters": {"version": "<digest>"}}` unloads one version; an empty body unloads the model.
    func unload(_ request: Request, _ context: BasicRequestContext, bodyLimit: Int) async -> Response {
        if let refusal = authorized(request) { return refusal }
        guard let name = context.parameters.get("model") else { return InferenceServer.error(.badRequest, "no model in the path") }
        let version: String?
        do {
            version = try await body(UnloadParameters.self, request, bodyLimit: bodyLimit, usage: "the body must be "
                + "{\"parameters\": {\"version\": \"<digest>\"}}, or empty to unload the model")?.version
        } catch {
            return InferenceServer.error(.badRequest, error.message)
        }
        guard repository.unload(model: name, version: version) else {
            return InferenceServer.notFound(name, version, repository)
        }
        return InferenceServer.json(encoding: UnloadAnswer(name: name, unloaded: version ?? "all"))
    }

    /// The request's parameters as `T`; nil when the body has none.
    private func body<T: Codable & Sendable>(
        _ type: T.Type, _ request: Request, bodyLimit: Int, usage: String
    ) async throws(InferenceError) -> T? {
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: bodyLimit) } catch {
            throw InferenceError(.badRequest, "the body could not be read")
        }
        do {
            return try Wire.decode(RepositoryRequest<T>.self, from: Data(body.readableBytesView), usage: usage).parameters
        } catch {
            throw InferenceError(.badRequest, error.message)
        }
    }

    /// Runs one prediction so that the first real request does not pay for first use.
    static func warm(_ file: ModelFile) {
        let columns: [Column] = file.pipeline.features.map { feature in
            feature.kind == .numeric ? .numeric([feature.mean ?? 0]) : .categorical(codes: [0], levels: [feature.levels?.first ?? ""])
        }
        _ = try? file.predict(Dataset(names: file.pipeline.features.map(\.name), columns: columns, source: "warm-up"))
    }
}
