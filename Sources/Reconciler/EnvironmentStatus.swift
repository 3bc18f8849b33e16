public import Foundation
import Manifests
public import Registry
import GitStore

/// One model of one environment as `status` shows it.
public struct ModelStatus: Codable, Sendable {
    /// Synced when a reconcile would do nothing for the model (the planner's definition), else OutOfSync.
    public enum Sync: String, Codable, Sendable { case synced = "Synced", outOfSync = "OutOfSync", unknown = "Unknown" }
    /// Healthy (serving the pin), Progressing (a reconcile is applying), Degraded (serving, but the last attempt failed
    /// or the server holds another version), Missing (nothing serves).
    public enum Health: String, Codable, Sendable {
        case healthy = "Healthy", progressing = "Progressing", degraded = "Degraded", missing = "Missing", unknown = "Unknown"
    }

    /// The environment.
    public var environment: String
    /// The model.
    public var model: String
    /// The pinned version (full digest when built).
    public var desired: String?
    /// What answers, by weight (empty when the server does not run).
    public var serving: [VersionShare]
    /// Whether a reconcile would do anything for the model.
    public var sync: Sync
    /// Whether what serves is what should.
    public var health: Health
    /// The outcome of the model's last deployment record here.
    public var lastOutcome: DeploymentOutcome?
    /// When that record finished (or started).
    public var lastChange: Date?
    /// The source commit of the default serving version, as the server reports it.
    public var servingSource: String?
    /// The version that gets a copy of the requests, if any.
    public var shadow: String?
    /// Every version the server holds for the model (serving or not), sorted.
    public var loaded: [String] = []
}

extension EnvironmentReconciler {
    /// The plan, and one status per model: those the environment file lists, then any other its server routes.
    public func status() throws -> (plan: Plan, models: [ModelStatus]) {
        let plan = try self.plan()
        guard let commit = ObjectID(hex: plan.commit) else { return (plan, []) }
        let manifest = try environmentFile(at: commit)  // as the plan read it
        let actual = plan.serverRunning ? try seams.target.state() : nil
        let records = try seams.state.records(environment: environment, model: nil)
        let models =
            manifest.models.map(\.model)
            + (actual?.routes.keys.sorted() ?? []).filter { model in !manifest.models.contains { $0.model == model } }
        var statuses: [ModelStatus] = []
        for model in models {
            let deployment = manifest.deployment(model)
            let desired = deployment?.version.map { seams.builds.resolve($0) ?? $0 }
            let route = actual?.routes[model]
            let serving = route.map { $0.traffic ?? [VersionShare(version: $0.defaultVersion, weight: 100)] } ?? []
            let last = records.last { $0.model == model }
            let wanted = deployment.flatMap(Planner.pinnedRoute).flatMap { Planner.resolved($0, seams.builds.resolve) }
            let synced = plan.isInSync(model: model) || (desired == nil && route == nil && !plan.actions.contains { $0.model == model })
            let health: ModelStatus.Health
            if last?.outcome == .inProgress {
                health = .progressing
            } else if route == nil {
                health = desired == nil ? .healthy : .missing
            } else if route == wanted && !Self.failedWhilePinned(last, wanted) {
                health = .healthy
            } else {
                health = .degraded
            }
            statuses.append(
                ModelStatus(
                    environment: environment, model: model, desired: desired, serving: serving,
                    sync: synced ? .synced : .outOfSync, health: health, lastOutcome: last?.outcome,
                    lastChange: last?.finishedAt ?? last?.startedAt, servingSource: serving.first.flatMap { actual?.sources[$0.version] },
                    shadow: route?.shadow, loaded: (actual?.versions[model] ?? []).sorted()))
        }
        return (plan, statuses)
    }

    /// Whether the last attempt failed for a version the environment still pins. A failure of a version no longer
    /// pinned (a rollback took it out) does not make what serves Degraded.
    public static func failedWhilePinned(_ last: DeploymentRecord?, _ wanted: ServerState.Route?) -> Bool {
        guard let last, last.outcome == .failed, let wanted else { return false }
        return Planner.versions(of: wanted).contains(last.version)
    }
}
