import Foundation
public import GitStore
import Learning
public import Manifests
public import Registry

/// Why a reconcile could not finish, as Flux's source-controller classifies it: what would make it succeed.
public enum FailureClass: String, Codable, Sendable {
    /// Needs a new commit: an invalid file, a failed gate, a digest that does not match its pin, a build that fails.
    case stalled
    /// Needs something else to happen first: the lock is held, the upstream environment has not verified the version.
    case waiting
    /// May succeed when tried again: the server did not start or answer, an I/O error.
    case transient

    /// The class of an error thrown while reconciling.
    public init(_ error: any Error) {
        switch error {
        case let error as ReconcileError:
            switch error.code {
            case .invalid, .build, .gate: self = .stalled
            case .locked, .refused, .fenced: self = .waiting
            default: self = .transient
            }
        case is InvalidProject: self = .stalled
        case let error as GitError where error.code == .locked: self = .waiting
        case let error as StateStoreError where error.code == .fenced: self = .waiting
        default: self = .transient
        }
    }
}

/// An action that ran: what it was, how it ended and how long it took.
public struct ExecutedAction: Codable, Sendable {
    /// How an action ended.
    public enum Outcome: String, Codable, Sendable { case succeeded, failed }

    /// The action as planned.
    public var action: PlannedAction
    /// How it ended.
    public var outcome: Outcome
    /// How long it took.
    public var seconds: Double
    /// Why it failed.
    public var error: String?
    /// The failure's class, when it failed.
    public var failure: FailureClass?

    /// The action's kind.
    public var kind: PlannedAction.Kind { action.kind }
    /// The action as `plan` prints it.
    public var description: String { action.description }
}

/// What a reconcile did.
public struct ReconcileReport: Codable, Sendable {
    /// The environment reconciled.
    public var environment: String
    /// The commit deployed (after a `track` environment's promotions, the last promotion commit).
    public var commit: String
    /// Commits made for a `track` environment before deploying.
    public var promotions: [PromotionResult]
    /// The actions that ran, in order, each with its outcome and duration (actions skipped after a failure are not
    /// listed).
    public var actions: [ExecutedAction]
    /// The deployment records this run finished (and those it settled for a killed run).
    public var records: [DeploymentRecord]
    /// Nothing was out of sync.
    public var wasInSync: Bool
    /// Where the environment is served (`127.0.0.1:8101`, or the target's address).
    public var server: String?
    /// The class of the first failure, when something failed: what would make the next reconcile succeed.
    public var failure: FailureClass?
    /// True when an action or a deployment failed.
    public var failed: Bool { failure != nil || records.contains { $0.outcome == .failed } }
}

/// Runs a plan's actions in order through the seams, one step per action kind. A model's chain (build, verify,
/// switch, unload) stops at its first failure, which is recorded and leaves the previous version serving; the
/// other models go on. A server that cannot be started stops the whole run.
public final class Executor {
    /// What it acts through.
    public let seams: ReconcileSeams
    /// The environment file as read at the commit.
    public let environment: EnvironmentManifest
    /// Who the records name.
    public var actor: String
    /// The branch a `track` environment's promotions are committed to.
    public var branch: String
    /// Reports what is being done, for a progress display.
    public var progress: (String) -> Void = { _ in }

    /// The commit deployed: the ref's, then each promotion commit.
    public private(set) var commit: ObjectID
    /// The actions that ran, in order, with their outcomes.
    public private(set) var executed: [ExecutedAction] = []
    /// The deployment records finished by this run.
    public private(set) var records: [DeploymentRecord] = []
    /// The promotion commits made by this run.
    public private(set) var promotions: [PromotionResult] = []
    private var environmentCommit: ObjectID?

    /// An executor for `environment` as read at `commit`.
    public init(seams: ReconcileSeams, environment: EnvironmentManifest, commit: ObjectID, actor: String, branch: String) {
        self.seams = seams
        self.environment = environment
        self.commit = commit
        self.actor = actor
        self.branch = branch
    }

    /// A model's deployment in progress: its record and the versions this run loaded for it.
    private struct Chain {
        var record: DeploymentRecord?
        var results: [GateResult] = []
        var loadedHere: [String] = []
        var failed = false
    }

    private var chains: [String: Chain] = [:]
    /// Models whose pin commit was found approved in this run.
    private var approved: Set<String> = []
    /// Versions (`model digest`) found verified upstream (or forced) in this run.
    private var upstreamChecked: Set<String> = []

    /// Runs `actions` in order; returns the first failure's class, or nil when all succeeded.
    @discardableResult
    public func run(_ actions: [PlannedAction]) -> FailureClass? {
        var first: FailureClass?
        for action in actions {
            if let model = action.model, chains[model]?.failed == true { continue }
            let start = ContinuousClock.now
            var done = ExecutedAction(action: action, outcome: .succeeded, seconds: 0)
            do {
                try step(action)
            } catch {
                done.outcome = .failed
                done.error = String(describing: error)
                done.failure = FailureClass(error)
                // An unload is clean-up: what it leaves loaded, the next reconcile unloads.
                if action.kind != .unload { first = first ?? done.failure }
                if let model = action.model { fail(model, action: action, error: error) }
            }
            let elapsed = start.duration(to: .now).components
            done.seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
            executed.append(done)
            if done.outcome == .failed && action.kind == .startServer { break }
        }
        return first
    }

    private func step(_ action: PlannedAction) throws {
        switch action.kind {
        case .startServer:
            progress("starting the server of \(environment.name) on \(seams.target.address)")
            try seams.target.start(environment, commit: commit)
        case .promote: try promote(action)
        case .build: try build(action)
        case .verify: try verify(action)
        case .switch: try switchTraffic(action)
        case .unload:
            guard let model = action.model, let version = action.version else { return }
            try seams.target.unload(model: model, version: version)
        case .remove: try remove(action)
        }
    }

    // MARK: Steps

    private func promote(_ action: PlannedAction) throws {
        guard let model = action.model, let source = action.source, let start = ObjectID(hex: source) else { return }
        progress("building \(model) at \(branch) (\(start.short))")
        let built: BuildInfo
        do {
            Failpoint.hit("before-build")
            built = try seams.builds.build(model: model, at: source)
        } catch {
            throw ReconcileError(.build, "building \(model) at \(branch) (\(start.short)) failed: \(error)")
        }
        try? seams.state.recordBuild(built)
        let metrics = built.metrics.sorted { $0.key < $1.key }.map { "\($0.key) \(GateResult.format($0.value))" }
            .joined(separator: ", ")
        var trailers = [
            Trailer(key: "Stagecraft-Model", value: model), Trailer(key: "Stagecraft-Version", value: built.digest),
            Trailer(key: "Stagecraft-Source", value: source), Trailer(key: "Stagecraft-From", value: branch),
            Trailer(key: "Stagecraft-To", value: environment.name),
            Trailer(key: "Stagecraft-Evidence", value: "build holdout: \(metrics)"),
        ]
        // A retrain commit's trigger travels with the promotion, so that history shows why the version came.
        let manifest = "\(Project.manifestsFolder)/\(model).yaml"
        if let change = try seams.git.history(of: manifest, from: start, limit: 1).first,
            let trigger = try seams.git.commit(change).trailer("Stagecraft-Trigger")
        {
            trailers.append(Trailer(key: "Stagecraft-Trigger", value: trigger))
        }
        let message = Trailers.append(
            trailers, to: "Promote \(model) \(VersionDigest.short(built.digest)) from \(branch) to \(environment.name)")
        let automation = Signature(name: "stagecraft", email: "stagecraft@localhost")
        // Each promotion is a commit on the branch's head (the previous promotion, or whatever someone pushed
        // meanwhile: the file is read again there); the manifests and data stay those of `source`.
        let made = try Promotion.retryingWhenMoved { () throws -> ObjectID? in
            guard let head = try seams.git.branchTip(branch) else {
                throw ReconcileError(.invalid, "no branch '\(branch)' (stagecraft.yaml's spec.branch)")
            }
            return try Promotion.commitPin(
                git: seams.git, model: model, environment: environment.name, version: built.digest, source: source,
                at: head, branch: branch, message: message, author: automation)
        }
        guard let made else { return }
        commit = made
        environmentCommit = nil
        Failpoint.hit("after-promotion")
        progress("promoted \(model) \(VersionDigest.short(built.digest)) to \(environment.name) (commit \(made.short))")
        promotions.append(
            PromotionResult(
                commit: made.hex, branch: branch, model: model, environment: environment.name, version: built.digest,
                source: source, from: branch, evidence: "build holdout: \(metrics)", forced: false, alreadyPinned: false))
    }

    private func build(_ action: PlannedAction) throws {
        guard let model = action.model, let pin = action.version else { return }
        try checkUpstream(model, pin: pin)
        try begin(model, version: pin, source: action.source)
        guard let source = action.source else {
            throw ReconcileError(.build, "version \(pin) is not built and has no source commit to build it from")
        }
        progress("building \(model) at \(source.prefix(12))")
        let built: BuildInfo
        do {
            Failpoint.hit("before-build")
            built = try seams.builds.build(model: model, at: source)
        } catch {
            throw ReconcileError(.build, "building \(model) at \(source.prefix(12)) failed: \(error)")
        }
        guard built.digest.hasPrefix(pin) else {
            let inputs = built.data.sorted { $0.key < $1.key }.map { "\($0.key) sha256 \($0.value.prefix(12))" }
                .joined(separator: ", ")
            throw ReconcileError(
                .build,
                "building \(model) at \(source.prefix(12)) gives \(VersionDigest.short(built.digest)), not the pinned "
                    + "\(pin): the manifest's spec, the data (\(inputs)) or the ML core's format version "
                    + "\(ModelFile.currentFormatVersion) differ from those the pin was built with")
        }
        try? seams.state.recordBuild(built)
    }

    private func verify(_ action: PlannedAction) throws {
        guard let model = action.model, let pin = action.version else { return }
        try checkUpstream(model, pin: pin)
        try begin(model, version: pin, source: nil)
        try checkApproval(model)
        guard let version = seams.builds.resolve(pin) else {
            throw ReconcileError(.build, "version \(pin) of \(model) is not in the artifact store")
        }
        progress("verifying \(model) \(VersionDigest.short(version)) in \(environment.name)")
        let results: [GateResult]
        do {
            if action.isLoaded != true {
                try seams.target.load(model: model, version: version)
                chains[model, default: Chain()].loadedHere.append(version)
                Failpoint.hit("after-load")
            }
            results = try seams.gates.verify(model: model, version: version, gates: action.gates ?? [], on: seams.target)
        } catch {
            throw ReconcileError(.server, "verifying \(VersionDigest.short(version)) failed", cause: error)
        }
        let named = results.map { result in
            var result = result
            if action.isDefault == false { result.gate = "\(VersionDigest.short(version)): \(result.gate)" }
            return result
        }
        var chain = chains[model] ?? Chain()
        chain.results += named
        chain.record?.gates = chain.results
        chains[model] = chain
        let failed = named.filter { !$0.passed }
        guard failed.isEmpty else {
            throw ReconcileError(
                .gate, "gate failed: " + failed.map { "\($0.gate) (measured \($0.valueText))" }.joined(separator: "; "))
        }
    }

    private func switchTraffic(_ action: PlannedAction) throws {
        guard let model = action.model, let pinned = action.route else { return }
        try begin(model, version: pinned.defaultVersion, source: nil)
        try checkApproval(model)
        guard let route = Planner.resolved(pinned, seams.builds.resolve) else {
            throw ReconcileError(.build, "a pinned version of \(model) is not in the artifact store")
        }
        progress("switching \(model) to \(VersionDigest.short(route.defaultVersion)) in \(environment.name)")
        do {
            try seams.target.route(model: model, to: route)
        } catch {
            throw ReconcileError(.server, "the switch failed", cause: error)
        }
        Failpoint.hit("after-switch")
        guard var record = chains[model]?.record else { return }
        record.version = route.defaultVersion
        record.outcome = .succeeded
        record.finishedAt = Timestamp.now()
        let served = ServedModel(
            environment: environment.name, model: model, version: route.defaultVersion, source: record.source,
            traffic: route.traffic, shadow: route.shadow, recordID: record.id, since: record.finishedAt!)
        try seams.state.finish(record, served: served, removed: nil)
        chains[model]?.record = nil
        records.append(record)
        Failpoint.hit("after-finish")
        progress("✓ \(model) \(VersionDigest.short(route.defaultVersion)) serves in \(environment.name)")
    }

    private func remove(_ action: PlannedAction) throws {
        guard let model = action.model, let version = action.version else { return }
        progress("removing \(model) from \(environment.name)")
        let sources = (try? seams.target.state().sources) ?? [:]
        try seams.target.unload(model: model, version: nil)
        var record = DeploymentRecord(
            environment: environment.name, model: model, version: version, source: sources[version],
            environmentCommit: try lastEnvironmentCommit().hex, actor: actor, target: seams.target.recordedName)
        record.outcome = .removed
        record.reason = "no longer pinned in \(environment.file)"
        record.finishedAt = Timestamp.now()
        try seams.state.finish(record, served: nil, removed: model)
        records.append(record)
    }

    /// In an environment that asks for approval, the commit that set `model`'s entry must carry the approvals its
    /// policy (as it stood in that commit) asks: a pin pushed by hand without them is refused, and the old version
    /// keeps serving.
    private func checkApproval(_ model: String) throws {
        guard environment.requiredApproval != nil, !approved.contains(model) else { return }
        if let (pin, file) = try Approvals.pinCommit(of: model, environment: environment.name, at: commit, in: seams.git),
            let policy = file.requiredApproval, let shortfall = Approvals.shortfall(of: try seams.git.commit(pin), policy: policy)
        {
            throw ReconcileError(
                .refused,
                "not approved: the pin of \(model) in \(environment.file) comes from a commit without the approvals "
                    + "\(environment.name) asks: \(shortfall); promote with `stagecraft promote` and have an approver run "
                    + "`stagecraft approve \(model) --env \(environment.name)`")
        }
        approved.insert(model)
    }

    /// A version reaches an environment that has an upstream only once it passed there (or here, before: a rollback),
    /// unless the commit that pinned it says a person forced it (`Stagecraft-Forced`, as `promote --force` writes).
    /// Checked before any record is begun, so that waiting for the upstream leaves none.
    private func checkUpstream(_ model: String, pin: String) throws {
        guard let upstream = environment.upstream else { return }
        let version = seams.builds.resolve(pin) ?? pin
        guard !upstreamChecked.contains("\(model) \(version)") else { return }
        func passed(in name: String) throws -> Bool {
            try seams.state.records(environment: name, model: model).contains { $0.outcome == .succeeded && $0.version.hasPrefix(version) }
        }
        if try passed(in: upstream) || passed(in: environment.name) {
            upstreamChecked.insert("\(model) \(version)")
            return
        }
        if let (pinned, _) = try Approvals.pinCommit(of: model, environment: environment.name, at: commit, in: seams.git),
            try seams.git.commit(pinned).trailer("Stagecraft-Forced") != nil
        {
            upstreamChecked.insert("\(model) \(version)")
            return
        }
        throw ReconcileError(
            .refused,
            "\(model) \(VersionDigest.short(version)) has not passed verification in '\(upstream)', \(environment.name)'s "
                + "upstream: waiting until it does (`stagecraft promote \(model) --to \(environment.name) --force` deploys it "
                + "anyway and records that)")
    }

    // MARK: Records

    /// Starts `model`'s deployment record before the first step of its chain that changes anything.
    private func begin(_ model: String, version pin: String, source: String?) throws {
        guard chains[model]?.record == nil, !(chains[model]?.failed ?? false) else { return }
        let deployment = environmentAfterPromotions(model)
        let version = seams.builds.resolve(deployment?.version ?? pin) ?? deployment?.version ?? pin
        let record = DeploymentRecord(
            environment: environment.name, model: model, version: version, source: deployment?.source ?? source,
            environmentCommit: try lastEnvironmentCommit().hex, actor: actor, target: seams.target.recordedName)
        try seams.state.begin(record)
        chains[model, default: Chain()].record = record
        Failpoint.hit("after-begin")
    }

    /// `model`'s entry as deployed: the file's, with the pin a promotion of this run committed.
    private func environmentAfterPromotions(_ model: String) -> ModelDeployment? {
        var deployment = environment.deployment(model)
        if let promotion = promotions.last(where: { $0.model == model }) {
            deployment?.version = promotion.version
            deployment?.source = promotion.source
        }
        return deployment
    }

    /// Ends `model`'s chain: the versions this run loaded are unloaded and its record (if one was begun) is
    /// finished as failed, so the previous version keeps serving.
    private func fail(_ model: String, action: PlannedAction, error: any Error) {
        var chain = chains[model] ?? Chain()
        chain.failed = true
        for version in chain.loadedHere { try? seams.target.unload(model: model, version: version) }
        chain.loadedHere = []
        if var record = chain.record {
            record.outcome = .failed
            record.reason = (error as? ReconcileError)?.description ?? String(describing: error)
            record.gates = chain.results
            record.finishedAt = Timestamp.now()
            try? seams.state.finish(record, served: nil, removed: nil)
            records.append(record)
            progress("✗ \(model) \(VersionDigest.short(record.version)) in \(environment.name): \(record.reason ?? "")")
            chain.record = nil
        } else if action.kind == .unload {
            chain.failed = false  // clean-up after a switch that happened: the next reconcile unloads it
        }
        chains[model] = chain
    }

    /// The last commit that changed the environment file, up to the commit deployed: where records are noted.
    private func lastEnvironmentCommit() throws -> ObjectID {
        if let environmentCommit { return environmentCommit }
        let found = try seams.git.history(of: environment.file, from: commit, limit: 1).first ?? commit
        environmentCommit = found
        return found
    }
}
