import Foundation
public import Manifests
import Reconciler
public import Registry

/// A failure of the KServe target: what the environment asks that KServe cannot express, a version that is not
/// built, or a cluster that does not answer.
public struct KServeError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        init(_ name: String) { self.name = name }
        public var description: String { name }
        /// The environment asks for what KServe cannot do (a three-way split, a shadow, …).
        public static let inexpressible = Code("inexpressible")
        /// A pinned version is not in the artifact store.
        public static let notBuilt = Code("not-built")
        /// The project cannot be served there (artifacts not in object storage, a name KServe refuses).
        public static let invalid = Code("invalid")
        /// `kubectl` failed, or the cluster reported a failure.
        public static let cluster = Code("cluster")
    }

    public let code: Code
    public let message: String
    public let cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String { cause.map { "\(message): \($0)" } ?? message }
}

/// Turns an environment at a commit into KServe objects: one ClusterServingRuntime and one InferenceService per
/// pinned model.
public enum KServeRender {
    /// The objects and the models left out (pinned to no version).
    public struct Output: Sendable {
        public var objects: [Document]
        public var deployments: [KServeDeployment]
        public var unpinned: [String]
    }

    /// Renders `environment` read at `environmentCommit`.
    /// - Parameters:
    ///   - build: the build of a pinned version (a digest or a prefix of one), nil when it is not built.
    ///   - rolledOut: per model, the version that has all traffic now (what the state store records as serving); a
    ///     two-version split is expressible only as a canary from it.
    public static func render(
        _ environment: EnvironmentManifest, environmentCommit: String, settings: KServeSettings,
        build: (String) -> BuildInfo?, rolledOut: [String: String]
    ) throws -> Output {
        var deployments: [KServeDeployment] = []
        var unpinned: [String] = []
        for entry in environment.models {
            guard let pin = entry.version else {
                unpinned.append(entry.model)
                continue
            }
            deployments.append(
                try deployment(entry, pin: pin, environment: environment, commit: environmentCommit, build: build, rolledOut: rolledOut))
        }
        let objects = [KServeObjects.runtime(settings)] + deployments.map { KServeObjects.inferenceService($0, settings) }
        return Output(objects: objects, deployments: deployments, unpinned: unpinned)
    }

    static func deployment(
        _ entry: ModelDeployment, pin: String, environment: EnvironmentManifest, commit: String, build: (String) -> BuildInfo?,
        rolledOut: [String: String]
    ) throws -> KServeDeployment {
        let file = environment.file
        let model = entry.model
        guard KServeObjects.isValidName(model) else {
            throw KServeError(
                .invalid,
                "\(file): '\(model)' cannot name an InferenceService (a DNS-1035 label: a lowercase letter first, then a-z, 0-9 or '-')")
        }
        if let shadow = entry.shadow {
            throw KServeError(
                .inexpressible,
                "\(file): '\(model)' mirrors traffic to a shadow (\(shadow.version)); KServe has no shadow traffic: remove the shadow or "
                    + "serve \(environment.name) with the local target")
        }
        func resolved(_ version: String) throws -> KServeVersion {
            guard let info = build(version) else {
                throw KServeError(
                    .notBuilt,
                    "version \(version) of '\(model)' is not in the artifact store; build it: stagecraft build \(model) --ref "
                        + "\(entry.source ?? "<source>")")
            }
            return KServeVersion(digest: info.digest, source: info.source)
        }
        let traffic = entry.traffic ?? []
        guard traffic.count > 1 else {
            return .single(model: model, try resolved(pin), environmentCommit: commit)
        }
        guard traffic.count == 2 else {
            let shares = traffic.map { "\($0.version) \($0.weight)%" }.joined(separator: ", ")
            throw KServeError(
                .inexpressible,
                "\(file): '\(model)' splits traffic over \(traffic.count) versions (\(shares)); KServe splits between two revisions "
                    + "only, the rolled-out one and a canary")
        }
        let infos = try traffic.map { share -> (share: TrafficSplit, info: BuildInfo) in
            _ = try resolved(share.version)
            return (share, build(share.version)!)
        }
        // The canary is the newer build; the older one must be what has all traffic now.
        let ordered = infos.sorted { $0.info.createdAt < $1.info.createdAt }
        let (older, newer) = (ordered[0], ordered[1])
        let split = "\(older.share.version) (\(older.share.weight)%) and \(newer.share.version) (\(newer.share.weight)%)"
        guard let current = rolledOut[model] else {
            throw KServeError(
                .inexpressible,
                "\(file): '\(model)' splits traffic between \(split), but nothing is rolled out for it yet; KServe gives a new "
                    + "InferenceService's first revision all traffic: pin \(older.share.version) alone, reconcile, then split")
        }
        guard current == older.info.digest else {
            throw KServeError(
                .inexpressible,
                "\(file): '\(model)' splits traffic between \(split), but KServe splits between the revision rolled out now "
                    + "(\(VersionDigest.short(current))) and a canary, and the split's older version \(older.share.version) is not "
                    + "that one: pin \(older.share.version) alone first, or split from \(VersionDigest.short(current))")
        }
        let route = ServerState.Route(
            defaultVersion: try resolved(pin).digest,
            traffic: infos.map { VersionShare(version: $0.info.digest, weight: $0.share.weight) }, shadow: nil)
        return KServeDeployment(
            model: model, latest: KServeVersion(digest: newer.info.digest, source: newer.info.source),
            rolledOut: KServeVersion(digest: older.info.digest, source: older.info.source), route: route,
            loaded: [older.info.digest, newer.info.digest], environmentCommit: commit)
    }
}
