public import Foundation
public import GitStore
public import Manifests
import LoopbackHTTP
import RepositoryWire
public import Registry

/// What an environment's server says it has loaded and how it routes each model.
public struct ServerState: Sendable, Hashable {
    /// Which loaded versions of a model answer.
    public struct Route: Codable, Sendable, Hashable {
        public var defaultVersion: String
        public var traffic: [VersionShare]?
        public var shadow: String?

        public init(defaultVersion: String, traffic: [VersionShare]?, shadow: String?) {
            self.defaultVersion = defaultVersion
            self.traffic = traffic
            self.shadow = shadow
        }
    }

    /// Loaded versions (full digests) by model.
    public var versions: [String: Set<String>]
    public var sources: [String: String]
    public var routes: [String: Route]

    public init(versions: [String: Set<String>], sources: [String: String], routes: [String: Route]) {
        self.versions = versions
        self.sources = sources
        self.routes = routes
    }

    /// True when both load and route the same versions (sources aside).
    public func serves(same other: ServerState) -> Bool { versions == other.versions && routes == other.routes }
}

/// Drives one environment's server through the model repository API (with the admin token).
public final class ServerClient {
    public let host: String
    public let port: Int
    private let token: String
    private var connection: HTTPConnection?
    /// The port of the server's gRPC service, when it has one.
    public var grpcPort: Int?
    /// Starts the server when it is not running (see ``start(_:commit:)``); nil: this client cannot start one.
    public var launch: ((EnvironmentManifest, ObjectID) throws -> Void)?

    /// The folder of the repository this client acts for (holding `.stagecraft/`), to tell its server from another's.
    private let repositoryPath: String?

    public init(host: String, port: Int, token: String, repositoryPath: String? = nil) {
        self.host = host
        self.port = port
        self.token = token
        self.repositoryPath = repositoryPath
    }

    /// When the server on this port is another repository's Stagecraft server (its admin token differs from ours), why
    /// and what to do, as an error.
    func anotherServer() -> ReconcileError? {
        guard let response = try? request("GET", "/v2", admin: false, retry: false), response.json["name"] as? String == "stagecraft" else {
            return nil
        }
        let theirs = response.json["repository"] as? String
        guard theirs == nil || theirs != repositoryPath else { return nil }
        let environment = (response.json["environment"] as? String) ?? "?"
        let stop = "stagecraft stop --env \(environment)" + (theirs.map { " --repo \($0)" } ?? "")
        return ReconcileError(
            .server,
            "port \(port) on \(host) is served by another Stagecraft server (repository \(theirs ?? "unknown"), environment "
                + "'\(environment)'); "
                + "stop it (\(stop)) or give this environment another port")
    }

    /// True when the server accepts connections and answers `/v2/health/live` within 3 s (a process that accepts
    /// connections and never answers is not a live server, and must not hold a reconcile for the 30 s of a call).
    public func isLive() -> Bool {
        guard let probe = try? HTTPConnection(host: host, port: port, timeout: 3),
            let response = try? probe.send("GET", "/v2/health/live", body: nil, headers: [:])
        else { return false }
        return response.status == 200
    }

    /// The server's loaded versions and routes.
    public func state() throws(ReconcileError) -> ServerState {
        let response = try adminCall("/v2/repository/index", RepositoryRequest<UnloadParameters>(parameters: nil))
        let index: RepositoryIndex
        do {
            index = try Wire.decode(RepositoryIndex.self, from: response.body, usage: "not a repository index")
        } catch {
            throw ReconcileError(.server, "the server at \(host):\(port) answered the index with \(error.message)")
        }
        var versions: [String: Set<String>] = [:]
        var sources: [String: String] = [:]
        for model in index.models {
            versions[model.name, default: []].insert(model.version)
            sources[model.version] = model.source
        }
        let routes = index.routes.mapValues { route in
            ServerState.Route(
                defaultVersion: route.default, traffic: route.traffic?.map { VersionShare(version: $0.version, weight: $0.weight) },
                shadow: route.shadow)
        }
        return ServerState(versions: versions, sources: sources, routes: routes)
    }

    /// Loads (and warms) a version in a slot that takes no traffic until ``route(model:defaultVersion:traffic:shadow:)``.
    public func load(model: String, version: String) throws(ReconcileError) {
        _ = try adminCall(
            "/v2/repository/models/\(model)/load", RepositoryRequest(parameters: LoadParameters(version: version, default: false)))
    }

    /// Switches, atomically, which loaded versions of `model` answer.
    public func route(model: String, defaultVersion: String, traffic: [VersionShare]?, shadow: String?) throws(ReconcileError) {
        let route = RouteParameters(
            default: defaultVersion, traffic: traffic?.map { WireShare(version: $0.version, weight: $0.weight) }, shadow: shadow)
        _ = try adminCall("/v2/repository/models/\(model)/route", RepositoryRequest(parameters: route))
    }

    /// Unloads one version of `model`, or the whole model when `version` is nil; one already gone is not an error.
    public func unload(model: String, version: String?) throws(ReconcileError) {
        _ = try adminCall(
            "/v2/repository/models/\(model)/unload", RepositoryRequest(parameters: UnloadParameters(version: version)),
            accepting: [404])
    }

    /// Sends one infer request to a version and returns the answer and the time it took.
    public func infer(model: String, version: String, body: Data) throws(ReconcileError) -> (
        status: Int, json: [String: Any], seconds: Double
    ) {
        let start = ContinuousClock.now
        let response = try request(
            "POST", "/v2/models/\(model)/versions/\(version)/infer", body: body, admin: false, retry: false,
            headers: ["Stagecraft-Probe": "verify"])
        let elapsed = start.duration(to: .now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return (response.status, response.json, seconds)
    }

    /// The live metrics the server reports for each version of `model` over the predictions that received true labels
    /// (`GET /v2/models/<model>/feedback`): by version, `accuracy` or `rmse` and the like with `labels`; nil when it
    /// does not answer.
    public func liveMetrics(model: String) -> [String: [String: Double]]? {
        guard let response = try? request("GET", "/v2/models/\(model)/feedback", admin: false, retry: false), response.status == 200,
            let live = response.json["live"] as? [String: Any]
        else { return nil }
        return live.compactMapValues { ($0 as? [String: Any])?.compactMapValues { ($0 as? NSNumber)?.doubleValue } }
    }

    /// The server's metrics in the Prometheus text format (`GET /metrics`); nil when it does not answer.
    public func metricsText() -> String? {
        guard let response = try? request("GET", "/metrics", admin: false, retry: false), response.status == 200 else { return nil }
        return response.text
    }

    private func adminCall(_ path: String, _ body: some Encodable, accepting: Set<Int> = []) throws(ReconcileError)
        -> HTTPConnection.Response
    {
        let response = try request("POST", path, body: Wire.encode(body), admin: true, retry: true)
        if response.status == 401, let another = anotherServer() { throw another }
        guard response.status == 200 || accepting.contains(response.status) else {
            let message = (try? Wire.decode(ErrorAnswer.self, from: response.body, usage: ""))?.error ?? response.text
            throw ReconcileError(.server, "the server at \(host):\(port) refused \(path): \(response.status) \(message)")
        }
        return response
    }

    private func request(
        _ method: String, _ path: String, body: Data? = nil, admin: Bool, retry: Bool,
        headers extra: [String: String] = [:]
    ) throws(ReconcileError) -> HTTPConnection.Response {
        let headers = (admin ? ["Authorization": "Bearer \(token)"] : [:]).merging(extra) { $1 }
        for attempt in 0..<2 {
            do {
                if connection == nil { connection = try HTTPConnection(host: host, port: port, timeout: 30) }
                return try connection!.send(method, path, body: body, headers: headers)
            } catch {
                connection = nil  // a closed keep-alive connection: open a new one once
                if attempt == 1 || !retry {
                    throw ReconcileError(.server, "no answer from the server at \(host):\(port) to \(method) \(path)", cause: error)
                }
            }
        }
        throw ReconcileError(.server, "no answer from the server at \(host):\(port)")
    }
}
