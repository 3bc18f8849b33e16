import Foundation
public import Manifests
public import Registry

/// One step of a plan, carrying everything the executor needs to run it.
public struct PlannedAction: Codable, Sendable, Hashable, CustomStringConvertible {
    /// What the action does; the executor has one step per kind.
    public enum Kind: String, Codable, Sendable {
        case startServer = "start-server"
        /// A `track` environment: build the branch head's version and commit it as the new pin.
        case promote
        case build
        /// Load in a slot that takes no traffic, then check the gates.
        case verify
        /// Move traffic (default version, split, shadow) atomically.
        case `switch`
        case unload
        /// Take a model that is no longer pinned out of the server.
        case remove
    }

    /// What the action does.
    public var kind: Kind
    /// The model acted on; nil for the server as a whole.
    public var model: String?
    /// The version acted on: full digest when built, else the pin as written.
    public var version: String?
    /// Why, for a reader: the source, the gates, the split.
    public var detail: String
    /// `build` and `promote`: the commit to build from.
    public var source: String?
    /// `verify`: the gates the version must pass.
    public var gates: [Gate]?
    /// `verify`: true when the version is the one that takes the default traffic (its gates are named plainly).
    public var isDefault: Bool?
    /// `verify`: true when the server already holds the version (in a slot that takes no traffic): not loaded again.
    public var isLoaded: Bool?
    /// `switch`: the route to set, as pinned (versions are resolved to full digests when the switch runs).
    public var route: ServerState.Route?

    /// An action; only the fields its kind needs are set.
    public init(
        kind: Kind, model: String? = nil, version: String? = nil, detail: String = "", source: String? = nil,
        gates: [Gate]? = nil, isDefault: Bool? = nil, isLoaded: Bool? = nil, route: ServerState.Route? = nil
    ) {
        self.kind = kind
        self.model = model
        self.version = version
        self.detail = detail
        self.source = source
        self.gates = gates
        self.isDefault = isDefault
        self.isLoaded = isLoaded
        self.route = route
    }

    /// `kind model short-version: detail`, as `plan` prints it.
    public var description: String {
        var text = kind.rawValue
        if let model { text += " \(model)" }
        if let version { text += " \(VersionDigest.short(version))" }
        return text + (detail.isEmpty ? "" : ": \(detail)")
    }
}

/// Desired against actual for one environment, and the ordered actions that make them equal.
public struct Plan: Codable, Sendable {
    /// The environment planned.
    public var environment: String
    /// The commit the environment file was read at.
    public var commit: String
    /// Where its server listens (`host:port`).
    public var server: String
    /// Whether the server answered when the plan was made.
    public var serverRunning: Bool
    /// What a reconcile would do, in order; empty when in sync.
    public var actions: [PlannedAction]
    /// In sync: there is nothing to do. The one definition that `plan`, `status` and `reconcile` share.
    public var inSync: Bool { actions.isEmpty }

    /// True when no action concerns `model` and the server runs: that model, on its own, is in sync.
    public func isInSync(model: String) -> Bool {
        serverRunning && !actions.contains { $0.model == model }
    }
}

/// A version a `track` environment would promote: the digest `model` builds to at the branch head.
public struct PlannedPromotion: Sendable, Hashable {
    /// The model promoted.
    public var model: String
    /// The pinned version (a digest prefix of at least 12 hex digits).
    public var version: String
    /// The branch head it is built from.
    public var source: String

    /// A promotion of `version` of `model`, built from `source`.
    public init(model: String, version: String, source: String) {
        self.model = model
        self.version = version
        self.source = source
    }
}

/// Works out what to do: a pure function of the desired environment, what serves and what is built.
public enum Planner {
    /// A pinned version and the commit it is built from.
    public struct Pin: Sendable, Hashable {
        public var version: String
        public var source: String?
    }

    /// The versions a deployment needs loaded: the pin first, then the split's and the shadow's.
    public static func pins(_ deployment: ModelDeployment) -> [Pin] {
        guard let version = deployment.version else { return [] }
        var pins = [Pin(version: version, source: deployment.source)]
        for extra in (deployment.traffic ?? []) + [deployment.shadow].compactMap({ $0 })
        where !pins.contains(where: { $0.version == extra.version }) {
            pins.append(Pin(version: extra.version, source: extra.source ?? deployment.source))
        }
        return pins
    }

    /// Every version a route sends requests to: the default, the split's and the shadow.
    public static func versions(of route: ServerState.Route) -> Set<String> {
        Set([route.defaultVersion] + (route.traffic ?? []).map(\.version) + [route.shadow].compactMap { $0 })
    }

    /// The route a deployment asks for, with versions as pinned; nil when it pins no version.
    public static func pinnedRoute(_ deployment: ModelDeployment) -> ServerState.Route? {
        guard let version = deployment.version else { return nil }
        return ServerState.Route(
            defaultVersion: version, traffic: deployment.traffic?.map { VersionShare(version: $0.version, weight: $0.weight) },
            shadow: deployment.shadow?.version)
    }

    /// `route` with every version resolved to its full digest; nil when one is not built.
    public static func resolved(_ route: ServerState.Route, _ resolve: (String) -> String?) -> ServerState.Route? {
        guard let version = resolve(route.defaultVersion) else { return nil }
        var traffic: [VersionShare]?
        if let split = route.traffic {
            traffic = []
            for share in split {
                guard let full = resolve(share.version) else { return nil }
                traffic?.append(VersionShare(version: full, weight: share.weight))
            }
        }
        var shadow: String?
        if let pinned = route.shadow {
            guard let full = resolve(pinned) else { return nil }
            shadow = full
        }
        return ServerState.Route(defaultVersion: version, traffic: traffic, shadow: shadow)
    }

    /// What the server will hold once started: what the state store records as serving.
    public static func expectedAfterStart(_ served: [String: ServedModel]) -> ServerState {
        var versions: [String: Set<String>] = [:]
        var routes: [String: ServerState.Route] = [:]
        for (model, entry) in served {
            versions[model] = entry.versions
            routes[model] = ServerState.Route(defaultVersion: entry.version, traffic: entry.traffic, shadow: entry.shadow)
        }
        return ServerState(versions: versions, sources: [:], routes: routes)
    }

    /// The ordered actions that make `environment` serve what its file pins.
    /// - Parameters:
    ///   - actual: what the server holds (when it is not running: what it will hold once started).
    ///   - running: whether the server runs; when not, the plan starts it first.
    ///   - promotions: for a `track` environment, the versions the branch head builds to that are to be promoted;
    ///     the plan promotes each, then deploys it as the promotion commit will pin it.
    ///   - resolve: the full digest of a built version.
    ///   - address: where the serving target is, for the start action (the environment's host and port by default).
    public static func plan(
        _ environment: EnvironmentManifest, actual: ServerState, running: Bool, promotions: [PlannedPromotion] = [],
        resolve: (String) -> String?, address: String? = nil
    ) -> [PlannedAction] {
        var actions: [PlannedAction] = []
        // A server with nothing to serve (nothing pinned, nothing recorded as served) is not started.
        if !running && (environment.models.contains { $0.version != nil } || !promotions.isEmpty || !actual.routes.isEmpty) {
            actions.append(PlannedAction(kind: .startServer, detail: address ?? "\(environment.host):\(environment.port)"))
        }
        var desired = environment
        var promoted: Set<String> = []
        for promotion in promotions {
            guard let index = desired.models.firstIndex(where: { $0.model == promotion.model }) else { continue }
            actions.append(
                PlannedAction(
                    kind: .promote, model: promotion.model, version: promotion.version,
                    detail: "build of \(promotion.source.prefix(12)) replaces the pin in \(environment.file)",
                    source: promotion.source))
            // The promotion commit rewrites exactly the version and source: the split and the shadow stay as written.
            desired.models[index].version = promotion.version
            desired.models[index].source = promotion.source
            promoted.insert(promotion.version)
        }
        for deployment in desired.models {
            actions += modelActions(
                deployment, gates: desired.gates(for: deployment.model), actual: actual,
                resolve: { promoted.contains($0) ? $0 : resolve($0) }, building: promoted)
        }
        let pinned = Set(desired.models.filter { $0.version != nil }.map(\.model))
        for model in actual.routes.keys.sorted() where !pinned.contains(model) {
            actions.append(
                PlannedAction(
                    kind: .remove, model: model, version: actual.routes[model]?.defaultVersion,
                    detail: "no longer pinned in \(environment.file)"))
        }
        return actions
    }

    /// One model's actions: build what is missing, verify what takes no traffic yet, switch, unload the rest.
    /// Empty when the model is in sync.
    static func modelActions(
        _ deployment: ModelDeployment, gates: [Gate], actual: ServerState, resolve: (String) -> String?,
        building promoted: Set<String>
    ) -> [PlannedAction] {
        guard let pinned = pinnedRoute(deployment) else { return [] }
        let model = deployment.model
        let pins = pins(deployment)
        let current = actual.routes[model]
        let loaded = actual.versions[model] ?? []
        var actions: [PlannedAction] = []
        if let desired = resolved(pinned, resolve), desired == current {
            for version in loaded.subtracting(versions(of: desired)).sorted() {
                actions.append(PlannedAction(kind: .unload, model: model, version: version, detail: "not pinned"))
            }
            return actions
        }
        for pin in pins where resolve(pin.version) == nil && !promoted.contains(pin.version) {
            actions.append(
                PlannedAction(
                    kind: .build, model: model, version: pin.version,
                    detail: "from \(pin.source.map { String($0.prefix(12)) } ?? "?")", source: pin.source))
        }
        let routed = current.map(versions) ?? []
        for (index, pin) in pins.enumerated() {
            let full = resolve(pin.version) ?? pin.version
            guard !routed.contains(full) else { continue }
            actions.append(
                PlannedAction(
                    kind: .verify, model: model, version: full,
                    detail: "gates: \(gates.map(\.description).joined(separator: ", "))", gates: gates, isDefault: index == 0,
                    isLoaded: loaded.contains(full)))
        }
        var detail = current.map { "from \(VersionDigest.short($0.defaultVersion))" } ?? "first version"
        if let traffic = pinned.traffic {
            detail += ", split " + traffic.map { "\(VersionDigest.short($0.version)) \($0.weight)%" }.joined(separator: " / ")
        }
        if let shadow = pinned.shadow { detail += ", shadow \(VersionDigest.short(shadow))" }
        actions.append(
            PlannedAction(
                kind: .switch, model: model, version: resolve(pinned.defaultVersion) ?? pinned.defaultVersion, detail: detail,
                route: pinned))
        let keep = Set(pins.map { resolve($0.version) ?? $0.version })
        for version in loaded.subtracting(keep).sorted() {
            actions.append(PlannedAction(kind: .unload, model: model, version: version, detail: "after the switch"))
        }
        return actions
    }
}
