import Foundation
import HTTPTypes
import Hummingbird
import Learning
import NIOCore

/// The model repository extension of the Open Inference Protocol: list, load and unload versions while serving.
/// Every call needs `Authorization: Bearer <admin token>`.
struct RepositoryAPI: Sendable {
    let repository: ModelRepository
    let token: String?
    let loader: (@Sendable (String, String) throws -> LoadedVersion)?

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
        var models: [[String: Any]] = []
        var routes: [String: Any] = [:]
        for name in repository.models {
            guard let routing = repository.routing(of: name) else { continue }
            for version in repository.versions(of: name) ?? [] {
                let source = repository.resolve(model: name, version: version)?.source ?? ""
                models.append([
                    "name": name, "version": version, "source": source, "state": "READY", "default": version == routing.defaultVersion,
                ])
            }
            var route: [String: Any] = ["default": routing.defaultVersion]
            if let traffic = routing.traffic { route["traffic"] = traffic.map { ["version": $0.version, "weight": $0.weight] } }
            if let shadow = routing.shadow { route["shadow"] = shadow }
            routes[name] = route
        }
        return InferenceServer.json(["models": models, "routes": routes])
    }

    /// `{"parameters": {"default": "<digest>", "traffic": [{"version": "<digest>", "weight": 90}, …], "shadow": "<digest>"}}`:
    /// switches, in one step, which loaded versions answer (traffic and shadow optional; absent means none).
    func route(_ request: Request, _ context: BasicRequestContext, bodyLimit: Int) async -> Response {
        if let refusal = authorized(request) { return refusal }
        guard let name = context.parameters.get("model") else { return InferenceServer.error(.badRequest, "no model in the path") }
        let usage =
            "the body must be {\"parameters\": {\"default\": \"<digest>\", \"traffic\": [{\"version\": \"<digest>\", "
            + "\"weight\": 90}], \"shadow\": \"<digest>\"}} (traffic and shadow optional)"
        let parameters: JSON?
        do { parameters = try await self.parameters(request, bodyLimit: bodyLimit) } catch {
            return InferenceServer.error(.badRequest, error.message)
        }
        guard case .string(let defaultVersion)? = parameters?["default"] else { return InferenceServer.error(.badRequest, usage) }
        var traffic: [(version: String, weight: Int)]?
        if let value = parameters?["traffic"], !value.isNull {
            guard case .array(let items) = value else { return InferenceServer.error(.badRequest, usage) }
            traffic = []
            for item in items {
                guard case .string(let version)? = item["version"], case .number(let weight)? = item["weight"], weight == weight.rounded()
                else {
                    return InferenceServer.error(.badRequest, usage)
                }
                traffic?.append((version, Int(weight)))
            }
        }
        var shadow: String?
        if let value = parameters?["shadow"], !value.isNull {
            guard case .string(let version) = value else { return InferenceServer.error(.badRequest, usage) }
            shadow = version
        }
        do {
            try repository.route(model: name, defaultVersion: defaultVersion, traffic: traffic, shadow: shadow)
        } catch {
            return InferenceServer.response(for: error)
        }
        return InferenceServer.json(["name": name, "default": defaultVersion, "state": "ROUTED"])
    }

    /// `{"parameters": {"version": "<digest>", "default": true}}`: loads (and warms) the version; with
    /// `"default": false` it answers only requests to its own version path (a slot for verification).
    func load(_ request: Request, _ context: BasicRequestContext, bodyLimit: Int) async -> Response {
        if let refusal = authorized(request) { return refusal }
        guard let name = context.parameters.get("model") else { return InferenceServer.error(.badRequest, "no model in the path") }
        let parameters: JSON?
        do { parameters = try await self.parameters(request, bodyLimit: bodyLimit) } catch {
            return InferenceServer.error(.badRequest, error.message)
        }
        guard case .string(let version)? = parameters?["version"] else {
            return InferenceServer.error(
                .badRequest,
                "the body must be {\"parameters\": {\"version\": \"<digest>\"}} (and optionally "
                    + "\"default\": false)")
        }
        var makeDefault = true
        if let flag = parameters?["default"] {
            guard case .bool(let value) = flag else { return InferenceServer.error(.badRequest, "\"default\" must be true or false") }
            makeDefault = value
        }
        guard let loader else { return InferenceServer.error(.notFound, "this server cannot load models") }
        let loaded: LoadedVersion
        do {
            loaded = try loader(name, version)
        } catch {
            return InferenceServer.error(.notFound, "cannot load version \(version) of '\(name)': \(error)")
        }
        Self.warm(loaded.file)
        repository.load(loaded, makeDefault: makeDefault)
        return InferenceServer.json(["name": name, "version": loaded.version, "default": makeDefault, "state": "READY"])
    }

    /// `{"parameters": {"version": "<digest>"}}` unloads one version; an empty body unloads the model.
    func unload(_ request: Request, _ context: BasicRequestContext, bodyLimit: Int) async -> Response {
        if let refusal = authorized(request) { return refusal }
        guard let name = context.parameters.get("model") else { return InferenceServer.error(.badRequest, "no model in the path") }
        let parameters: JSON?
        do { parameters = try await self.parameters(request, bodyLimit: bodyLimit) } catch {
            return InferenceServer.error(.badRequest, error.message)
        }
        var version: String?
        if case .string(let text)? = parameters?["version"] { version = text }
        guard repository.unload(model: name, version: version) else {
            return InferenceServer.notFound(name, version, repository)
        }
        return InferenceServer.json(["name": name, "unloaded": version ?? "all"])
    }

    private func parameters(_ request: Request, bodyLimit: Int) async throws(InferenceError) -> JSON? {
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: bodyLimit) } catch {
            throw InferenceError(
                .badRequest,
                "the body could not be "
                    + "read")
        }
        guard body.readableBytes > 0 else { return nil }
        guard let json = JSON.parse(Data(body.readableBytesView)), case .object = json else {
            throw InferenceError(.badRequest, "the body is not a JSON object")
        }
        return json["parameters"]
    }

    /// Runs one prediction so that the first real request does not pay for first use.
    static func warm(_ file: ModelFile) {
        let columns: [Column] = file.pipeline.features.map { feature in
            feature.kind == .numeric ? .numeric([feature.mean ?? 0]) : .categorical(codes: [0], levels: [feature.levels?.first ?? ""])
        }
        _ = try? file.predict(Dataset(names: file.pipeline.features.map(\.name), columns: columns, source: "warm-up"))
    }
}
