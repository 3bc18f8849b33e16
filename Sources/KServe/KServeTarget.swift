import AsyncHTTPClient
public import Foundation
public import GitStore
public import Manifests
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import ObjectStorage
public import Reconciler
public import Registry

/// An environment served by KServe: the reconcile engine's serving target, in KServe's own canary terms.
///
/// - `start` applies the ClusterServingRuntime.
/// - `load` makes a version the predictor's latest revision with `canaryTrafficPercent: 0` (no traffic; tag routing
///   gives it its own `latest-` address for verification), or the first revision when nothing serves yet; it
///   returns once KServe reports the revision ready, and fails with KServe's reason when the revision fails.
/// - `route` sets `canaryTrafficPercent` (a split), drops it (promotion: the latest revision takes all traffic) or
///   sets it to 0 (rollback to the revision rolled out before).
/// - `unload` of a version changes only the bookkeeping (KServe keeps its revisions); of a model, deletes its
///   InferenceService.
/// - `state` reads every InferenceService of the environment back through ``KServeObservation``.
public final class KServeTarget: ServingTarget {
    public let cluster: any KubernetesCluster
    public let settings: KServeSettings
    /// The environment-file commit the objects are annotated with.
    public var environmentCommit: String
    /// The build of a version (its source commit), by digest.
    let build: (String) -> BuildInfo?
    /// How long a revision may take to become ready, and how often it is checked, in seconds.
    public var readyTimeout: Double = 600
    public var pollInterval: Double = 2
    /// Posts a JSON body to a URL and gives the status and body back (over HTTP; replaceable in tests).
    public var post: (_ url: String, _ body: Data) throws -> (status: Int, body: Data) = KServeTarget.httpPost

    public init(
        cluster: any KubernetesCluster, settings: KServeSettings, environmentCommit: String, build: @escaping (String) -> BuildInfo?
    ) {
        self.cluster = cluster
        self.settings = settings
        self.environmentCommit = environmentCommit
        self.build = build
    }

    static let kind = "inferenceservices.serving.kserve.io"
    static let runtimeKind = "clusterservingruntimes.serving.kserve.io"

    public var address: String { "kserve:\(settings.namespace) (\(cluster.context))" }

    public var recordedName: String? { "kserve:\(settings.namespace)" }

    public func isLive() -> Bool {
        let runtime = try? cluster.get(Self.runtimeKind, name: KServeObjects.runtimeName, namespace: nil)
        return runtime != nil
    }

    public func start(_ environment: EnvironmentManifest, commit: ObjectID) throws {
        environmentCommit = commit.hex
        try cluster.apply([KServeObjects.runtime(settings)])
    }

    public func state() throws -> ServerState {
        var state = ServerState(versions: [:], sources: [:], routes: [:])
        let selector = "\(KServeObjects.prefix)environment=\(settings.environment)"
        for object in try cluster.list(Self.kind, namespace: settings.namespace, selector: selector) {
            let seen = KServeObservation(object)
            guard let applied = seen.applied else { continue }
            state.versions[applied.model] = seen.loaded
            if let route = seen.route { state.routes[applied.model] = route }
            state.sources[applied.latest.digest] = applied.latest.source
            state.sources[applied.rolledOut.digest] = applied.rolledOut.source
        }
        return state
    }

    /// The model's InferenceService as KServe reports it; nil when there is none.
    public func observe(_ model: String) throws -> KServeObservation? {
        try cluster.get(Self.kind, name: model, namespace: settings.namespace).map(KServeObservation.init)
    }

    public func load(model: String, version: String) throws {
        guard let info = build(version) else {
            throw KServeError(.notBuilt, "version \(VersionDigest.short(version)) of '\(model)' is not in the artifact store")
        }
        let candidate = KServeVersion(digest: info.digest, source: info.source)
        let next: KServeDeployment
        if let seen = try observe(model), let applied = seen.applied, let route = seen.route {
            if applied.latest == candidate && seen.loaded.contains(version) { return }
            guard route.traffic == nil else {
                throw KServeError(
                    .inexpressible,
                    "'\(model)' splits traffic between two revisions on KServe; a third version cannot be loaded beside them: "
                        + "end the split first (pin one version)")
            }
            let serving = KServeVersion(
                digest: route.defaultVersion,
                source: route.defaultVersion == applied.latest.digest ? applied.latest.source : applied.rolledOut.source)
            next = KServeDeployment(
                model: model, latest: candidate, rolledOut: serving,
                route: ServerState.Route(defaultVersion: serving.digest, traffic: nil, shadow: nil),
                loaded: [serving.digest, candidate.digest], environmentCommit: environmentCommit)
        } else {
            // Nothing serves the model: KServe gives the first revision all traffic.
            next = .single(model: model, candidate, environmentCommit: environmentCommit)
        }
        try cluster.apply([KServeObjects.inferenceService(next, settings)])
        try waitUntil(model, "revision of \(VersionDigest.short(version)) ready") { seen in
            if seen.health == .degraded { throw KServeError(.cluster, "'\(model)' on KServe: \(seen.message ?? "failed")") }
            return seen.health == .healthy && seen.applied?.latest.digest == version
        }
    }

    public func route(model: String, to route: ServerState.Route) throws {
        guard let seen = try observe(model), var applied = seen.applied else {
            throw KServeError(.cluster, "'\(model)' has no InferenceService in \(settings.namespace) to route")
        }
        let versions = Set((route.traffic?.map(\.version) ?? []) + [route.defaultVersion])
        let revisions: Set = [applied.latest.digest, applied.rolledOut.digest]
        guard route.shadow == nil, versions.isSubset(of: revisions), route.traffic.map({ $0.count == 2 }) ?? true else {
            throw KServeError(
                .inexpressible,
                "'\(model)' cannot be routed that way on KServe: it splits traffic between its latest revision "
                    + "(\(VersionDigest.short(applied.latest.digest))) and the one rolled out before "
                    + "(\(VersionDigest.short(applied.rolledOut.digest))) only, with no shadow")
        }
        let before = applied
        applied.route = route
        // Promotion: the latest revision takes all traffic and becomes the rolled-out one.
        if route.traffic == nil && route.defaultVersion == applied.latest.digest { applied.rolledOut = applied.latest }
        if applied == before && seen.route == route { return }  // as asked already (the first revision of a model)
        applied.environmentCommit = environmentCommit
        try cluster.apply([KServeObjects.inferenceService(applied, settings)])
        try waitUntil(model, "traffic as routed") { seen in
            if seen.health == .degraded { throw KServeError(.cluster, "'\(model)' on KServe: \(seen.message ?? "failed")") }
            return seen.route == route
        }
    }

    public func unload(model: String, version: String?) throws {
        guard let version else {
            try cluster.delete(Self.kind, name: model, namespace: settings.namespace)
            return
        }
        guard let seen = try observe(model), var applied = seen.applied, applied.loaded.contains(version) else { return }
        // KServe keeps its revisions: unloading is bookkeeping, and a candidate that never got traffic keeps none.
        applied.loaded.removeAll { $0 == version }
        guard !applied.loaded.isEmpty else {
            try cluster.delete(Self.kind, name: model, namespace: settings.namespace)
            return
        }
        try cluster.apply([KServeObjects.inferenceService(applied, settings)])
    }

    public func infer(model: String, version: String, body: Data) throws -> (status: Int, json: [String: Any], seconds: Double) {
        guard let seen = try observe(model), let applied = seen.applied else {
            throw KServeError(.cluster, "'\(model)' has no InferenceService in \(settings.namespace)")
        }
        let base = (version == applied.latest.digest ? seen.latestURL : seen.previousURL) ?? seen.url
        guard let base else { throw KServeError(.cluster, "KServe reports no URL for '\(model)' yet") }
        let url = base + "/v2/models/\(model)/infer"
        let started = ContinuousClock.now
        let (status, data) = try post(url, body)
        let elapsed = started.duration(to: .now).components
        let json = (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
        return (status, json, Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18)
    }

    /// POSTs JSON with async-http-client, waiting for the answer (at most 30 s; a body up to 64 MiB).
    public static func httpPost(_ url: String, _ body: Data) throws -> (status: Int, body: Data) {
        try Blocking.wait { () async throws -> (status: Int, body: Data) in
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: body))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            let bytes = try await response.body.collect(upTo: 64 << 20)
            return (Int(response.status.code), Data(buffer: bytes))
        }
    }

    /// Polls the model's InferenceService until `done` says so (or throws), or the timeout passes.
    private func waitUntil(_ model: String, _ what: String, _ done: (KServeObservation) throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(readyTimeout)
        while true {
            if let seen = try observe(model), try done(seen) { return }
            guard Date() < deadline else {
                throw KServeError(.cluster, "'\(model)' on KServe: no \(what) within \(Int(readyTimeout)) s")
            }
            Thread.sleep(forTimeInterval: pollInterval)
        }
    }
}
