public import Foundation
public import GitStore
import Learning
public import Manifests
public import Registry

/// Plans and applies one environment at one ref: the steps of DESIGN.md's "Reconcile". It reads git, the state
/// store and the serving target only through ``ReconcileSeams``; the ``Planner`` decides, the ``Executor`` acts.
public final class EnvironmentReconciler {
    /// What it reads and acts through (during a reconcile under a lease, fenced by it).
    public private(set) var seams: ReconcileSeams
    /// The environment reconciled.
    public let environment: String
    /// The ref its file is read at (`HEAD`, a branch, a commit).
    public let ref: String
    /// The project branch, where a `track` environment's promotions are committed.
    public let branch: String
    /// Reports what is being done, for a progress display.
    public var progress: (String) -> Void = { _ in }
    /// Told, before a reconcile waits for the environment's lock, who holds it.
    public var waitingForLock: (String) -> Void = { _ in }
    /// Who the records name.
    public var actor: String
    /// The folder whose `.stagecraft/locks/` holds the environment's lock; nil: no lock (a single-process test).
    public var lockRoot: URL?
    /// The environment file as last read, and the commit it was read at (read once per commit).
    private var lastRead: (commit: ObjectID, manifest: EnvironmentManifest)?

    /// A reconciler of `environment` at `ref` over `seams`.
    public init(seams: ReconcileSeams, environment: String, ref: String, branch: String, actor: String) {
        self.seams = seams
        self.environment = environment
        self.ref = ref
        self.branch = branch
        self.actor = actor
    }

    /// A reconciler over `workspace`: its repository, builder and artifact store, `state`, and the environment's local
    /// server, which `startServer` starts (in the background) when it does not run.
    public convenience init(
        workspace: Workspace, state: any StateStore, environment: String, ref: String,
        startServer: @escaping (EnvironmentManifest, ObjectID) throws -> Void
    ) throws {
        let commit = try workspace.repository.resolve(ref)
        let manifest = try workspace.environment(environment, at: commit)
        let client = try workspace.serverClient(for: manifest)
        client.launch = startServer
        self.init(workspace: workspace, state: state, environment: manifest, ref: ref, commit: commit, target: client)
    }

    /// A reconciler over `workspace` and `state` that serves `environment` (as read at `commit`) on `target`.
    public init(
        workspace: Workspace, state: any StateStore, environment: EnvironmentManifest, ref: String, commit: ObjectID,
        target: any ServingTarget
    ) {
        let seams = ReconcileSeams(
            git: workspace.repository, state: state, target: target, builds: WorkspaceBuilds(workspace: workspace),
            gates: Verifier(workspace: workspace))
        self.seams = seams
        self.environment = environment.name
        self.ref = ref
        self.branch = workspace.settings.branch
        self.actor = workspace.actor.name
        lockRoot = workspace.root
        lastRead = (commit, environment)
    }

    private var git: any GitSource { seams.git }

    /// The environment file at `commit`, checked as `validate` checks it; read once per commit.
    public func environmentFile(at commit: ObjectID) throws -> EnvironmentManifest { try validated(at: commit) }

    /// The environment file at `commit`, checked as `validate` checks it.
    private func validated(at commit: ObjectID) throws -> EnvironmentManifest {
        let read = lastRead.flatMap { $0.commit == commit ? $0.manifest : nil }
        let manifest = try EnvironmentFiles.validated(environment, at: commit, in: git, read: read)
        lastRead = (commit, manifest)
        return manifest
    }
    private var state: any StateStore { seams.state }

    /// The commit the ref names now.
    public func currentCommit() throws -> ObjectID { try git.resolve(ref) }

    /// Whether the environment's server answers: a cheap check for `--watch` (one request).
    public func serverIsLive() -> Bool { seams.target.isLive() }

    // MARK: Plan

    /// Desired versus actual, without changing anything: the environment file at the ref (checked as `validate`
    /// checks it), what the server holds (or will hold once started) and, for a `track` environment, the digest
    /// each model builds to at the branch head (reading the data, not training).
    public func plan() throws -> Plan {
        let commit = try currentCommit()
        let manifest = try validated(at: commit)
        let running = seams.target.isLive()
        let actual = running ? try seams.target.state() : Planner.expectedAfterStart(try state.served(environment: environment))
        let promotions = manifest.track ? try self.promotions(manifest) : []
        let actions = Planner.plan(
            manifest, actual: actual, running: running, promotions: promotions, resolve: seams.builds.resolve,
            address: seams.target.address)
        return Plan(
            environment: environment, commit: commit.hex, server: seams.target.address, serverRunning: running, actions: actions)
    }

    /// For a `track` environment: each model whose digest at the branch head differs from its pin and is not
    /// declined here.
    func promotions(_ manifest: EnvironmentManifest) throws -> [PlannedPromotion] {
        guard let head = try git.branchTip(branch) else {
            throw ReconcileError(.invalid, "no branch '\(branch)' (stagecraft.yaml's spec.branch)")
        }
        let digests = try seams.builds.digests(models: manifest.models.map(\.model), at: head.hex)
        var promotions: [PlannedPromotion] = []
        for (deployment, digest) in zip(manifest.models, digests) {
            if let pin = deployment.version, digest.hasPrefix(pin) { continue }
            if try declined(model: deployment.model, digest: digest, commit: head) { continue }
            promotions.append(PlannedPromotion(model: deployment.model, version: digest, source: head.hex))
        }
        return promotions
    }

    // MARK: Reconcile

    /// Plans and applies, holding the environment's lock. A failed gate or build leaves the previous version
    /// serving and is recorded; the report says so (``ReconcileReport/failed``) and classifies the failure.
    public func reconcile(wait: Bool = true) throws -> ReconcileReport {
        // A shared store (reconcilers on several hosts) holds the environment's lease, and every write of this
        // reconcile is fenced by it; a local store is locked with flock.
        if lockRoot != nil, let leases = seams.state as? any LeaseStore {
            let keeper = try LeaseKeeper(store: leases, environment: environment, wait: wait, waiting: waitingForLock)
            let unfenced = seams
            seams = seams.fenced(by: keeper)
            defer {
                seams = unfenced
                keeper.release()
            }
            return try reconcileHeld()
        }
        let lock = try lockRoot.map { try EnvironmentLock(root: $0, environment: environment, wait: wait, waiting: waitingForLock) }
        defer { withExtendedLifetime(lock) {} }
        return try reconcileHeld()
    }

    /// Plans and applies, the lock or lease held.
    private func reconcileHeld() throws -> ReconcileReport {
        let commit = try currentCommit()
        let live = seams.target.isLive()

        // Nothing changed in git since the last reconcile that ended in sync, and the server holds what it left.
        if live, try state.syncedCommit(environment: environment) == commit.hex,
            try seams.target.state().serves(same: Planner.expectedAfterStart(state.served(environment: environment))),
            try state.records(environment: environment, model: nil).allSatisfy({ $0.outcome != .inProgress })
        {
            return ReconcileReport(
                environment: environment, commit: commit.hex, promotions: [], actions: [], records: [], wasInSync: true,
                server: seams.target.address)
        }
        // What is deployed is what validate accepts.
        let manifest = try validated(at: commit)
        let served = try state.served(environment: environment)
        let actual = live ? try seams.target.state() : Planner.expectedAfterStart(served)
        var records = try recover(actual: actual)
        try EnvironmentFiles.writeNotes(state, to: git)

        let promotions = manifest.track ? try self.promotions(manifest) : []
        let actions = Planner.plan(
            manifest, actual: actual, running: live, promotions: promotions, resolve: seams.builds.resolve,
            address: seams.target.address)
        let executor = Executor(seams: seams, environment: manifest, commit: commit, actor: actor, branch: branch)
        executor.progress = progress
        let failure = executor.run(actions)
        records += executor.records
        try EnvironmentFiles.writeNotes(state, to: git)
        let report = ReconcileReport(
            environment: environment, commit: executor.commit.hex, promotions: executor.promotions, actions: executor.executed,
            records: records, wasInSync: actions.isEmpty && records.isEmpty, server: seams.target.address, failure: failure)
        try state.setSyncedCommit(report.failed ? nil : executor.commit.hex, environment: environment)
        return report
    }

    /// Settles the records a killed reconcile left in progress: when the server already routes to the version the
    /// switch happened, so the record is finished as succeeded; otherwise it is marked interrupted.
    func recover(actual: ServerState) throws -> [DeploymentRecord] {
        let open = try state.records(environment: environment, model: nil).filter { $0.outcome == .inProgress }
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

    /// True when `digest` of `model` should not be promoted into this environment automatically: it failed a gate
    /// here, or the latest change to the environment file rolled it back.
    func declined(model: String, digest: String, commit: ObjectID) throws -> Bool {
        // Only a failed gate declines a version: a build or server error is worth another try on the next reconcile.
        if try state.records(environment: environment, model: model).contains(where: { record in
            record.version == digest && record.outcome == .failed && record.gates.contains { !$0.passed }
        }) {
            return true
        }
        guard let last = try git.history(of: Workspace.environmentFile(environment), from: commit, limit: 1).first else {
            return false
        }
        return try git.commit(last).trailer("Stagecraft-Rollback-Of") == digest
    }
}

/// Environment files and deployment notes, read and written through a ``GitSource``.
public enum EnvironmentFiles {
    /// The environment file of `environment` at `commit`, decoded and checked on its own.
    public static func read(_ environment: String, at commit: ObjectID, in git: any GitSource) throws -> EnvironmentManifest {
        let path = Workspace.environmentFile(environment)
        guard let data = try git.fileIfPresent(at: path, in: commit) else {
            let names = try names(at: commit, in: git)
            throw ReconcileError(
                .unknownEnvironment,
                "no environment '\(environment)' at \(commit.short) (expected \(path); environments: "
                    + "\(names.isEmpty ? "none" : names.joined(separator: ", ")))")
        }
        let (manifest, diagnostics) = EnvironmentManifest.decode(String(decoding: data, as: UTF8.self), file: path)
        guard let manifest, diagnostics.isEmpty else { throw InvalidProject(diagnostics) }
        return manifest
    }

    /// The environment file of `environment` at `commit`, checked as `validate` checks it: the file on its own,
    /// against the manifests of its models (gates that fit their tasks, models that exist) and the project settings.
    /// - Throws: ``InvalidProject`` with `validate`'s `file:line:column` messages for that file and the settings.
    /// - Parameter read: the file as already read at `commit`, if it was.
    public static func validated(
        _ environment: String, at commit: ObjectID, in git: any GitSource, read alreadyRead: EnvironmentManifest? = nil
    ) throws -> EnvironmentManifest {
        let manifest = try alreadyRead ?? read(environment, at: commit, in: git)
        let (_, diagnostics) = try Project.check(GitProjectSource(git: git, commit: commit))
        let relevant = diagnostics.filter { [manifest.file, ProjectSettings.file, "."].contains($0.location.file) }
        guard relevant.isEmpty else { throw InvalidProject(relevant) }
        return manifest
    }

    /// The environments at `commit`: the names of `environments/*.yaml`, sorted.
    public static func names(at commit: ObjectID, in git: any GitSource) throws -> [String] {
        (try git.directory(at: Project.environmentsFolder, in: commit) ?? [])
            .map(\.name).filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// Writes every finished record not yet in the git notes onto its environment-file commit. A record already in
    /// its note (a run killed between the two writes) is not written twice.
    public static func writeNotes(_ state: any StateStore, to git: any GitSource) throws {
        let records = try state.unnoted()
        guard !records.isEmpty else { return }
        let author = Signature(name: "stagecraft", email: "stagecraft@localhost")
        for record in records {
            guard let commit = ObjectID(hex: record.environmentCommit) else { continue }
            let existing = try git.note(for: commit, notesRef: Repository.stagecraftNotes) ?? ""
            if !DeploymentRecord.parseNote(existing).contains(where: { $0.id == record.id }) {
                try git.appendNoteLine(record.jsonLine(), to: commit, author: author, notesRef: Repository.stagecraftNotes)
            }
        }
        try state.markNoted(records.map(\.id))
    }
}
