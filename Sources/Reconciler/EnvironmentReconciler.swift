import Foundation
public import GitStore
import Learning
public import Manifests
public import Registry

/// One step of a plan.
public struct PlannedAction: Codable, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Codable, Sendable {
        case startServer = "start-server"
        /// A `track` environment: commit the branch head's build as the new pin.
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

    public var kind: Kind
    public var model: String?
    public var version: String?
    public var detail: String

    public var description: String {
        var text = kind.rawValue
        if let model { text += " \(model)" }
        if let version { text += " \(VersionDigest.short(version))" }
        return text + (detail.isEmpty ? "" : ": \(detail)")
    }
}

/// Desired against actual for one environment, and the ordered actions that make them equal.
public struct Plan: Codable, Sendable {
    public var environment: String
    /// The commit the environment file was read at.
    public var commit: String
    public var server: String
    public var serverRunning: Bool
    public var actions: [PlannedAction]
    public var inSync: Bool { actions.isEmpty }
}

/// What a reconcile did.
public struct ReconcileReport: Codable, Sendable {
    public var environment: String
    public var commit: String
    /// Commits made for a `track` environment before deploying.
    public var promotions: [PromotionResult]
    /// The actions that were applied.
    public var actions: [PlannedAction]
    /// The deployment records this run finished (and those it settled for a killed run).
    public var records: [DeploymentRecord]
    /// Nothing was out of sync.
    public var wasInSync: Bool
    public var failed: Bool { records.contains { $0.outcome == .failed } }
}

/// Plans and applies one environment at one ref: the steps of DESIGN.md's "Reconcile".
public final class EnvironmentReconciler {
    public let workspace: Workspace
    public let state: any StateStore
    public let environment: String
    public let ref: String
    /// Starts the environment's server (in the background) serving what the state store records; returns once it listens.
    public let startServer: (EnvironmentManifest, ObjectID) throws -> Void
    /// Reports what is being done, for a progress display.
    public var progress: (String) -> Void = { _ in }
    /// Who the records name.
    public var actor: String

    public init(
        workspace: Workspace, state: any StateStore, environment: String, ref: String,
        startServer: @escaping (EnvironmentManifest, ObjectID) throws -> Void
    ) {
        self.workspace = workspace
        self.state = state
        self.environment = environment
        self.ref = ref
        self.startServer = startServer
        self.actor = workspace.actor.name
    }

    private var repository: Repository { workspace.repository }

    /// The commit to read: the ref, which for a `track` environment is the project branch unless given.
    private func resolveRef() throws -> ObjectID { try repository.resolve(ref) }

    /// Whether the environment's server answers, at the address the environment file names at the ref: a cheap
    /// check for `--watch` (one file read, one request).
    public func serverIsLive() throws -> Bool {
        try workspace.serverClient(for: try workspace.environment(environment, at: try resolveRef())).isLive()
    }

    // MARK: Plan

    /// Desired versus actual, without changing anything. For a `track` environment it computes each manifest's
    /// digest at the ref (reading the data, not training) to show the promotions a reconcile would commit.
    public func plan() throws -> Plan {
        let commit = try resolveRef()
        let manifest = try workspace.validatedEnvironment(environment, at: commit)
        let client = try workspace.serverClient(for: manifest)
        let running = client.isLive()
        let actual = running ? try client.state() : try expectedAfterStart()
        var actions: [PlannedAction] = []
        if !running {
            actions.append(PlannedAction(kind: .startServer, model: nil, version: nil, detail: "\(manifest.host):\(manifest.port)"))
        }
        var desired = manifest
        if manifest.track {
            let digests = try workspace.builder.inputs(models: manifest.models.map(\.model), ref: commit.hex).map(\.digest)
            for (deployment, digest) in zip(manifest.models, digests) {
                guard deployment.version.map({ !digest.hasPrefix($0) }) ?? true,
                    try !declined(model: deployment.model, digest: digest, commit: commit)
                else { continue }
                actions.append(
                    PlannedAction(
                        kind: .promote, model: deployment.model, version: digest,
                        detail: "build of "
                            + "\(commit.short) replaces the pin in \(manifest.file)"))
                if let index = desired.models.firstIndex(where: { $0.model == deployment.model }) {
                    desired.models[index].version = digest
                    desired.models[index].source = commit.hex
                    desired.models[index].traffic = nil
                }
            }
        }
        actions += modelActions(desired, actual: actual)
        return Plan(
            environment: environment, commit: commit.hex, server: "\(manifest.host):\(manifest.port)", serverRunning: running,
            actions: actions)
    }

    /// What the server will hold once started: what the state store records as serving.
    private func expectedAfterStart() throws -> ServerState {
        let served = try state.served(environment: environment)
        var versions: [String: Set<String>] = [:]
        var routes: [String: ServerState.Route] = [:]
        for (model, entry) in served {
            versions[model] = entry.versions
            routes[model] = ServerState.Route(defaultVersion: entry.version, traffic: entry.traffic, shadow: entry.shadow)
        }
        return ServerState(versions: versions, sources: [:], routes: routes)
    }

    /// A pinned version and the commit it is built from.
    struct Pin {
        var version: String
        var source: String?
    }

    /// The versions a deployment needs loaded: the pin first, then the split's and the shadow.
    static func pins(_ deployment: ModelDeployment) -> [Pin] {
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

    func modelActions(_ manifest: EnvironmentManifest, actual: ServerState) -> [PlannedAction] {
        var actions: [PlannedAction] = []
        for deployment in manifest.models {
            let pins = Self.pins(deployment)
            guard !pins.isEmpty else { continue }
            let model = deployment.model
            for pin in pins where workspace.digest(pin.version) == nil {
                actions.append(
                    PlannedAction(
                        kind: .build, model: model, version: pin.version,
                        detail: "from "
                            + "\(pin.source.map { String($0.prefix(12)) } ?? "?")"))
            }
            let current = actual.routes[model]
            let routed = current.map(Self.versions) ?? []
            if let desired = workspace.route(deployment), desired == current {
                let extra = (actual.versions[model] ?? []).subtracting(Self.versions(of: desired))
                for version in extra.sorted() {
                    actions.append(PlannedAction(kind: .unload, model: model, version: version, detail: "not pinned"))
                }
                continue
            }
            for pin in pins {
                let full = workspace.digest(pin.version) ?? pin.version
                if !routed.contains(full) {
                    actions.append(
                        PlannedAction(
                            kind: .verify, model: model, version: full,
                            detail: "gates: "
                                + "\(manifest.gates(for: model).map(\.description).joined(separator: ", "))"))
                }
            }
            let target = workspace.digest(deployment.version!) ?? deployment.version!
            var detail = current.map { "from \(VersionDigest.short($0.defaultVersion))" } ?? "first version"
            if let traffic = deployment.traffic {
                detail +=
                    ", split "
                    + traffic.map {
                        "\(VersionDigest.short($0.version)) "
                            + "\($0.weight)%"
                    }.joined(separator: " / ")
            }
            if let shadow = deployment.shadow { detail += ", shadow \(VersionDigest.short(shadow.version))" }
            actions.append(PlannedAction(kind: .switch, model: model, version: target, detail: detail))
            let keep = Set(pins.map { workspace.digest($0.version) ?? $0.version })
            for version in (actual.versions[model] ?? []).subtracting(keep).sorted() {
                actions.append(PlannedAction(kind: .unload, model: model, version: version, detail: "after the switch"))
            }
        }
        let pinned = Set(manifest.models.filter { $0.version != nil }.map(\.model))
        for model in actual.routes.keys.sorted() where !pinned.contains(model) {
            actions.append(
                PlannedAction(
                    kind: .remove, model: model, version: actual.routes[model]?.defaultVersion,
                    detail: "no longer "
                        + "pinned in \(manifest.file)"))
        }
        return actions
    }

    // MARK: Reconcile

    /// Plans and applies, holding the environment's lock. A failed gate or build leaves the previous version
    /// serving and is recorded; the report says so (``ReconcileReport/failed``).
    public func reconcile(wait: Bool = true) throws -> ReconcileReport {
        let lock = try EnvironmentLock(root: workspace.root, environment: environment, wait: wait)
        defer { withExtendedLifetime(lock) {} }
        var commit = try resolveRef()
        var manifest = try workspace.environment(environment, at: commit)
        var client = try workspace.serverClient(for: manifest)

        // Fast path: nothing changed in git since the last reconcile that ended in sync, and the server holds it.
        let live = client.isLive()
        if live, try state.syncedCommit(environment: environment) == commit.hex,
            try client.state().serves(same: expectedAfterStart()),
            try state.records(environment: environment, model: nil).allSatisfy({ $0.outcome != .inProgress })
        {
            return ReconcileReport(environment: environment, commit: commit.hex, promotions: [], actions: [], records: [], wasInSync: true)
        }
        // What is deployed is what validate accepts (the fast path above only skips a commit already reconciled in sync).
        manifest = try workspace.validatedEnvironment(environment, at: commit)
        var applied: [PlannedAction] = []
        if !live {
            progress("starting the server of \(environment) on \(manifest.host):\(manifest.port)")
            try startServer(manifest, commit)
            applied.append(PlannedAction(kind: .startServer, model: nil, version: nil, detail: "\(manifest.host):\(manifest.port)"))
        }
        var records = try recover(client: client)
        try workspace.writeNotes(state)

        var promotions: [PromotionResult] = []
        if manifest.track {
            promotions = try promoteBranchHead(manifest: manifest, commit: commit)
            if !promotions.isEmpty {
                commit = try repository.resolve(workspace.settings.branch)
                manifest = try workspace.validatedEnvironment(environment, at: commit)
                client = try workspace.serverClient(for: manifest)
                applied += promotions.map {
                    PlannedAction(
                        kind: .promote, model: $0.model, version: $0.version,
                        detail: "commit "
                            + "\($0.commit.prefix(12))")
                }
            }
        }

        let actual = try client.state()
        let actions = modelActions(manifest, actual: actual)
        applied += actions
        var environmentCommit: ObjectID?
        func lastEnvironmentCommit() throws -> ObjectID {
            if let environmentCommit { return environmentCommit }
            let found = try repository.history(of: manifest.file, from: commit, limit: 1).first ?? commit
            environmentCommit = found
            return found
        }
        for deployment in manifest.models where actions.contains(where: { $0.model == deployment.model }) {
            if let record = try apply(
                deployment, manifest: manifest, actual: actual, client: client, environmentCommit: lastEnvironmentCommit)
            {
                records.append(record)
            }
        }
        for action in actions where action.kind == .remove {
            guard let model = action.model, let version = action.version else { continue }
            progress("removing \(model) from \(environment)")
            try client.unload(model: model, version: nil)
            var record = DeploymentRecord(
                environment: environment, model: model, version: version, source: actual.sources[version],
                environmentCommit: try lastEnvironmentCommit().hex, actor: actor)
            record.outcome = .removed
            record.reason = "no longer pinned in \(manifest.file)"
            record.finishedAt = Timestamp.now()
            try state.finish(record, served: nil, removed: model)
            records.append(record)
        }
        try workspace.writeNotes(state)
        let report = ReconcileReport(
            environment: environment, commit: commit.hex, promotions: promotions, actions: applied, records: records,
            wasInSync: applied.isEmpty)
        try state.setSyncedCommit(report.failed ? nil : commit.hex, environment: environment)
        return report
    }

    /// Settles the records a killed reconcile left in progress: when the server already routes to the version the
    /// switch happened, so the record is finished as succeeded; otherwise it is marked interrupted.
    func recover(client: ServerClient) throws -> [DeploymentRecord] {
        let open = try state.records(environment: environment, model: nil).filter { $0.outcome == .inProgress }
        guard !open.isEmpty else { return [] }
        let actual = try client.state()
        var settled: [DeploymentRecord] = []
        for var record in open {
            record.finishedAt = Timestamp.now()
            var served: ServedModel?
            if let route = actual.routes[record.model], route.defaultVersion == record.version {
                record.outcome = .succeeded
                record.reason = "completed by the next reconcile: the previous one was stopped after the switch"
                served = ServedModel(
                    environment: environment, model: record.model, version: route.defaultVersion, source: record.source,
                    traffic: route.traffic, shadow: route.shadow, recordID: record.id, since: record.finishedAt!)
            } else {
                record.outcome = .interrupted
                record.reason = "the reconcile was stopped before the switch; the previous version kept serving"
            }
            try state.finish(record, served: served, removed: nil)
            settled.append(record)
        }
        return settled
    }

    /// Builds, verifies and switches one model; returns its record, or nil when only unloads were needed.
    func apply(
        _ deployment: ModelDeployment, manifest: EnvironmentManifest, actual: ServerState, client: ServerClient,
        environmentCommit: () throws -> ObjectID
    ) throws -> DeploymentRecord? {
        let model = deployment.model
        let pins = Self.pins(deployment)
        let current = actual.routes[model]
        if let desired = workspace.route(deployment), desired == current {
            for version in (actual.versions[model] ?? []).subtracting(Self.versions(of: desired)).sorted() {
                try client.unload(model: model, version: version)
            }
            return nil
        }
        var record = DeploymentRecord(
            environment: environment, model: model, version: workspace.digest(pins[0].version) ?? pins[0].version,
            source: pins[0].source, environmentCommit: try environmentCommit().hex, actor: actor)
        try state.begin(record)
        Failpoint.hit("after-begin")
        var loadedHere: [String] = []
        func fail(_ reason: String) throws -> DeploymentRecord {
            for version in loadedHere { try? client.unload(model: model, version: version) }
            record.outcome = .failed
            record.reason = reason
            record.finishedAt = Timestamp.now()
            try state.finish(record, served: nil, removed: nil)
            progress("✗ \(model) \(VersionDigest.short(record.version)) in \(environment): \(reason)")
            return record
        }
        // Build what is missing; each digest must equal its pin.
        for pin in pins where workspace.digest(pin.version) == nil {
            guard let source = pin.source else {
                return try fail(
                    "version \(pin.version) is not built and has no source commit to build "
                        + "it from")
            }
            progress("building \(model) at \(source.prefix(12))")
            let built: BuildResult
            do {
                built = try workspace.builder.build(model: model, ref: source)
            } catch {
                return try fail("building \(model) at \(source.prefix(12)) failed: \(error)")
            }
            guard built.digest.hasPrefix(pin.version) else {
                let inputs = built.info.data.sorted { $0.key < $1.key }.map {
                    "\($0.key) sha256 "
                        + "\($0.value.prefix(12))"
                }.joined(separator: ", ")
                return try fail(
                    "building \(model) at \(source.prefix(12)) gives \(VersionDigest.short(built.digest)), not the pinned \(pin.version): the manifest's spec, the data (\(inputs)) or the ML core's format version \(ModelFile.currentFormatVersion) differ from those the pin was built with"
                )
            }
            try? (state as? SQLiteStateStore)?.recordBuild(built.info)
        }
        guard let desired = workspace.route(deployment) else { return try fail("a pinned version is not in the artifact store") }
        record.version = desired.defaultVersion
        // Verify each version that does not take traffic yet, in a slot of the real server.
        let routed = current.map(Self.versions) ?? []
        let gates = manifest.gates(for: model)
        var results: [GateResult] = []
        for version in Self.versions(of: desired).subtracting(routed).sorted(by: {
            ($0 != desired.defaultVersion ? 1 : 0, $0) < ($1 != desired.defaultVersion ? 1 : 0, $1)
        }) {
            progress("verifying \(model) \(VersionDigest.short(version)) in \(environment)")
            do {
                if !(actual.versions[model] ?? []).contains(version) {
                    try client.load(model: model, version: version)
                    loadedHere.append(version)
                    Failpoint.hit("after-load")
                }
                let checked = try Verifier(workspace: workspace).verify(model: model, version: version, gates: gates, server: client)
                results += checked.map { result in
                    var result = result
                    if version != desired.defaultVersion { result.gate = "\(VersionDigest.short(version)): \(result.gate)" }
                    return result
                }
            } catch {
                record.gates = results
                return try fail("verifying \(VersionDigest.short(version)) failed: \(error)")
            }
        }
        record.gates = results
        let failedGates = results.filter { !$0.passed }
        if !failedGates.isEmpty {
            let summary = failedGates.map { "\($0.gate) (measured \($0.valueText))" }.joined(separator: "; ")
            return try fail("gate failed: \(summary)")
        }
        progress("switching \(model) to \(VersionDigest.short(desired.defaultVersion)) in \(environment)")
        do {
            try client.route(model: model, defaultVersion: desired.defaultVersion, traffic: desired.traffic, shadow: desired.shadow)
        } catch {
            return try fail("the switch failed: \(error)")
        }
        Failpoint.hit("after-switch")
        // Unloading is clean-up: the switch has happened, and a version left loaded is unloaded by the next reconcile.
        for version in ((try? client.state().versions[model]) ?? []).subtracting(Self.versions(of: desired)).sorted() {
            do { try client.unload(model: model, version: version) } catch {
                progress(
                    "could not unload \(VersionDigest.short(version)) "
                        + "of \(model): \(error)")
            }
        }
        record.outcome = .succeeded
        record.finishedAt = Timestamp.now()
        let served = ServedModel(
            environment: environment, model: model, version: desired.defaultVersion, source: record.source,
            traffic: desired.traffic, shadow: desired.shadow, recordID: record.id, since: record.finishedAt!)
        try state.finish(record, served: served, removed: nil)
        Failpoint.hit("after-finish")
        progress("✓ \(model) \(VersionDigest.short(desired.defaultVersion)) serves in \(environment)")
        return record
    }

    // MARK: Track

    /// For a `track` environment: builds each model at the branch head and, where the digest differs from the
    /// pin, commits the new pin (actor `stagecraft`). A digest that already failed here, or that a rollback took
    /// out, is not promoted again.
    func promoteBranchHead(manifest: EnvironmentManifest, commit: ObjectID) throws -> [PromotionResult] {
        var results: [PromotionResult] = []
        let promotion = Promotion(workspace: workspace, state: state)
        let branch = workspace.settings.branch
        let start = try repository.resolve(branch)
        let all = try workspace.builder.inputs(models: manifest.models.map(\.model), ref: start.hex)
        for (deployment, inputs) in zip(manifest.models, all) {
            if let pin = deployment.version, inputs.digest.hasPrefix(pin) { continue }
            if try declined(model: deployment.model, digest: inputs.digest, commit: start) { continue }
            progress("building \(deployment.model) at \(branch) (\(start.short))")
            let built = try workspace.builder.build(inputs, ref: start.hex)
            try? (state as? SQLiteStateStore)?.recordBuild(built.info)
            let metrics = built.metrics.holdout.sorted { $0.key < $1.key }.map {
                "\($0.key) "
                    + "\(GateResult.format($0.value))"
            }.joined(separator: ", ")
            var trailers = [
                Trailer(key: "Stagecraft-Model", value: deployment.model), Trailer(key: "Stagecraft-Version", value: built.digest),
                Trailer(key: "Stagecraft-Source", value: start.hex), Trailer(key: "Stagecraft-From", value: branch),
                Trailer(key: "Stagecraft-To", value: environment), Trailer(key: "Stagecraft-Evidence", value: "build holdout: \(metrics)"),
            ]
            // A retrain commit's trigger travels with the promotion, so that history shows why the version came.
            if let change = try repository.history(of: "\(Project.manifestsFolder)/\(deployment.model).yaml", from: start, limit: 1).first,
                let trigger = try repository.commit(change).trailer("Stagecraft-Trigger")
            {
                trailers.append(Trailer(key: "Stagecraft-Trigger", value: trigger))
            }
            let message = Trailers.append(
                trailers,
                to: "Promote \(deployment.model) \(VersionDigest.short(built.digest)) from "
                    + "\(branch) to \(environment)")
            let automation = Signature(name: "stagecraft", email: "stagecraft@localhost")
            // Each promotion is a commit on the branch's head (the previous promotion, or whatever someone pushed meanwhile:
            // then the file is read again there); the manifests and data stay those of `start`.
            let made = try Promotion.retryingWhenMoved { () throws -> ObjectID? in
                let head = try repository.resolve(branch)
                return try promotion.commitPin(
                    model: deployment.model, environment: try workspace.environment(environment, at: head),
                    version: built.digest, source: start.hex, at: head, branch: branch, message: message,
                    author: automation)
            }
            guard let made else { continue }
            Failpoint.hit("after-promotion")
            progress("promoted \(deployment.model) \(VersionDigest.short(built.digest)) to \(environment) (commit \(made.short))")
            results.append(
                PromotionResult(
                    commit: made.hex, branch: branch, model: deployment.model, environment: environment, version: built.digest,
                    source: start.hex, from: branch, evidence: "build holdout: \(metrics)", forced: false,
                    alreadyPinned: false))
        }
        return results
    }

    /// True when `digest` of `model` should not be promoted into this environment automatically: it failed a gate
    /// here, or the latest change to the environment file rolled it back.
    func declined(model: String, digest: String, commit: ObjectID) throws -> Bool {
        // Only a failed gate declines a version: a build or server error is worth another try on the next reconcile.
        if try state.records(environment: environment, model: model).contains(where: { record in
            record.version == digest && record.outcome == .failed && record.gates.contains { !$0.passed }
        }) {
            return true
        }
        guard let last = try repository.history(of: Workspace.environmentFile(environment), from: commit, limit: 1).first else {
            return false
        }
        let message = try repository.commit(last)
        return message.trailer("Stagecraft-Rollback-Of") == digest
    }
}
