public import Foundation
public import GitStore
import Learning
import Synchronization
public import Manifests
public import Reconciler
public import Registry

/// What the console reads: the repository at a ref, its artifact store and its state store. Each page's data is a
/// `Codable` value served as JSON under `/api` and rendered as HTML, built from the same Reconciler types the
/// commands print with `--output json` (``ModelStatus``, ``Plan``, ``HistoryEntry``, ``PendingPromotion``,
/// ``DiffTable``, ``ModelMonitorReport``).
public struct ConsoleSite: Sendable {
    /// The repository, its artifact store and settings.
    public let workspace: Workspace
    /// The deployment records and what serves.
    public let state: any StateStore
    /// The ref pages are read at (`stagecraft console --ref`, HEAD by default).
    public let ref: String
    /// The project as read at the last commit `ref` named: files at a commit never change.
    private let read = ProjectAtCommit()

    /// The console of `workspace`, whose records `state` keeps, read at `ref`.
    public init(workspace: Workspace, state: any StateStore, ref: String) {
        self.workspace = workspace
        self.state = state
        self.ref = ref
    }

    var promotion: Promotion { Promotion(workspace: workspace, state: state) }

    /// The commit `ref` names now and the project read there, environments in pipeline order.
    func project() throws -> (commit: ObjectID, project: Project, environments: [String]) {
        let commit = try workspace.repository.resolve(ref)
        if let (project, names) = read.project(at: commit) { return (commit, project, names) }
        let (project, _) = try Project.check(GitProjectSource(repository: workspace.repository, ref: commit.hex))
        let all = try workspace.environmentNames(at: commit)
        let names = project.environmentOrder + all.filter { !project.environmentOrder.contains($0) }
        read.keep(project, names: names, at: commit)
        return (commit, project, names)
    }

    /// A reconciler of `environment` that reads its local server and never starts one.
    func reconciler(_ environment: String, at commit: ObjectID) throws -> EnvironmentReconciler {
        try EnvironmentReconciler(workspace: workspace, state: state, environment: environment, ref: commit.hex) { _, _ in }
    }

    /// How pages name versions: their aliases (`@champion`), and colours from `builds` (the artifact store's).
    func versionNames(builds: [BuildInfo]) -> VersionNames {
        var aliases: [String: String] = [:]
        for alias in (try? VersionAliases.all(in: workspace.repository)) ?? [] { aliases[alias.digest] = "@" + alias.alias }
        let built = builds.map { (model: $0.model, digest: $0.digest, built: $0.createdAt) }
        return VersionNames(aliases: aliases, colours: VersionColours(builds: built))
    }

    /// Changes whenever what any page shows may have changed: a branch moved (a promotion, an approval), a record was
    /// written or finished, or a version began to serve.
    public func changeStamp() throws -> String {
        var text = ""
        for (branch, tip) in try workspace.repository.branchTips().sorted(by: { $0.key < $1.key }) { text += "\(branch)=\(tip.hex);" }
        return text + "records=" + (try state.revision())
    }
}

/// The last project read, by commit.
final class ProjectAtCommit: Sendable {
    private let last = Mutex<(commit: ObjectID, project: Project, names: [String])?>(nil)

    func project(at commit: ObjectID) -> (Project, [String])? {
        last.withLock { last in last.flatMap { $0.commit == commit ? ($0.project, $0.names) : nil } }
    }

    func keep(_ project: Project, names: [String], at commit: ObjectID) { last.withLock { $0 = (commit, project, names) } }
}

// MARK: Board

/// Environments as columns in pipeline order, models as rows.
public struct Board: Codable, Sendable {
    /// An environment: where it is served, whether that runs, what it is promoted from, who approves.
    public struct Column: Codable, Sendable {
        public var name: String
        public var upstream: String?
        public var server: String
        public var running: Bool
        /// `1 of ada@example.com, bob@example.com` when promotions into it wait for approval.
        public var approval: String?
        /// Why its state could not be read.
        public var error: String?
    }

    /// A version the upstream serves, verified there, that the environment does not pin: one click promotes it.
    public struct Promotable: Codable, Sendable {
        public var version: String
        public var from: String
        public var evidence: [GateResult]
    }

    /// One model in one environment.
    public struct Cell: Codable, Sendable {
        public var environment: String
        /// Nil when the environment does not list the model.
        public var status: ModelStatus?
        /// The model's last deployment record here, with its gate values.
        public var last: DeploymentRecord?
        public var promotable: Promotable?
        public var pending: [PendingPromotion]
        /// The version a rollback would pin: the last that passed here other than the pinned one (the confirmation
        /// says for certain).
        public var rollbackTo: String?
    }

    /// One model across the environments.
    public struct Row: Codable, Sendable {
        public var model: String
        public var cells: [Cell]
    }

    public var commit: String
    public var branch: String
    public var environments: [Column]
    public var rows: [Row]
    /// Aliases (`@champion`) and colours of versions, by digest.
    public var names: VersionNames
}

/// How pages name versions: aliases (`@champion`) and colours, by digest.
public struct VersionNames: Codable, Sendable {
    public var aliases: [String: String]
    public var colours: VersionColours
}

extension ConsoleSite {
    /// The board as of now: each environment's status (as `stagecraft status` reads it), records and waiting promotions.
    public func board() throws -> Board {
        let (commit, project, names) = try project()
        let records = try state.records(environment: nil, model: nil)
        let pending = (try? promotion.pendingPromotions()) ?? []
        var columns: [Board.Column] = []
        var statuses: [String: [String: ModelStatus]] = [:]
        var served: [String: [String: ServedModel]] = [:]
        for name in names {
            let manifest = project.environments[name]
            var column = Board.Column(
                name: name, upstream: manifest?.upstream, server: manifest.map { "\($0.host):\($0.port)" } ?? "-", running: false,
                approval: manifest?.requiredApproval.map { "\($0.count) of \($0.approvers.joined(separator: ", "))" })
            do {
                let (plan, models) = try reconciler(name, at: commit).status()
                column.running = plan.serverRunning
                statuses[name] = Dictionary(models.map { ($0.model, $0) }, uniquingKeysWith: { a, _ in a })
                served[name] = try state.served(environment: name)
            } catch {
                column.error = (error as? ReconcileError)?.message ?? String(describing: error)
            }
            columns.append(column)
        }
        var models = project.models.keys.sorted()
        for name in names { for model in (statuses[name] ?? [:]).keys.sorted() where !models.contains(model) { models.append(model) } }
        var lastRecord: [String: DeploymentRecord] = [:]
        for record in records { lastRecord["\(record.environment)/\(record.model)"] = record }
        let rows = models.map { model in
            Board.Row(
                model: model,
                cells: columns.map { column in
                    let status = statuses[column.name]?[model]
                    let waiting = pending.filter { $0.environment == column.name && $0.model == model }
                    var promotable: Board.Promotable?
                    if let upstream = column.upstream, let status, let offered = served[upstream]?[model],
                        project.environments[column.name]?.deployment(model) != nil,
                        status.desired.map({ !$0.hasPrefix(offered.version) && !offered.version.hasPrefix($0) }) ?? true,
                        !waiting.contains(where: { $0.version == offered.version }),
                        let passed = records.last(where: {
                            $0.environment == upstream && $0.model == model && $0.version == offered.version && $0.outcome == .succeeded
                        })
                    {
                        promotable = Board.Promotable(version: offered.version, from: upstream, evidence: passed.gates)
                    }
                    let pinned = status?.desired
                    let rollbackTo = pinned.flatMap { pinned in
                        records.last {
                            $0.environment == column.name && $0.model == model && $0.outcome == .succeeded
                                && !$0.version.hasPrefix(pinned) && !pinned.hasPrefix($0.version)
                        }?.version
                    }
                    return Board.Cell(
                        environment: column.name, status: status, last: lastRecord["\(column.name)/\(model)"], promotable: promotable,
                        pending: waiting, rollbackTo: rollbackTo)
                })
        }
        return Board(
            commit: commit.hex, branch: workspace.settings.branch, environments: columns, rows: rows,
            names: versionNames(builds: (try? workspace.artifacts.builds()) ?? []))
    }
}

// MARK: Model page

/// One model's whole story, newest first, paged: builds, promotions, approvals, rollbacks and the verifications
/// they led to; the versions to compare, and a comparison of two.
public struct ModelPage: Codable, Sendable {
    /// Something that happened to the model.
    public struct Event: Codable, Sendable {
        /// `build`, `promotion`, `approval`, `rollback`, `change` (an environment file edited by hand) or
        /// `verification` (a deployment record).
        public var kind: String
        public var date: Date
        public var title: String
        public var environment: String?
        public var version: String?
        public var commit: String?
        public var author: String?
        public var trailers: [Trailer]
        public var outcome: String?
        public var gates: [GateResult]
        public var reason: String?
        /// A build's holdout metrics.
        public var metrics: [String: Double]?
    }

    /// A built version, to compare.
    public struct Version: Codable, Sendable {
        public var digest: String
        public var built: Date
        public var metrics: [String: Double]
        public var alias: String?
    }

    public var model: String
    public var events: [Event]
    public var page: Int
    public var pages: Int
    public var total: Int
    public var versions: [Version]
    public var pending: [PendingPromotion]
    public var comparison: DiffTable?
    /// Aliases and colours of versions, by digest.
    public var names: VersionNames

    /// Events per page.
    public static let pageSize = 50
}

extension ConsoleSite {
    /// `model`'s page `page` (from 1), comparing `compare` (two digests or prefixes) when given.
    public func modelPage(_ model: String, page: Int, compare: (String, String)?) throws -> ModelPage? {
        let (commit, project, names) = try project()
        let all = try workspace.artifacts.builds()
        let versionNames = versionNames(builds: all)
        let builds = all.filter { $0.model == model }.sorted { $0.createdAt > $1.createdAt }
        let history = try History(workspace: workspace, state: state)
            .entries(environments: names, model: model, since: nil, ref: commit.hex)
        guard project.models[model] != nil || !builds.isEmpty || !history.isEmpty else { return nil }
        var events: [ModelPage.Event] = builds.map { build in
            ModelPage.Event(
                kind: "build", date: build.createdAt, title: "Built \(VersionDigest.short(build.digest)) (\(build.algorithm))",
                environment: nil, version: build.digest, commit: build.source, author: nil, trailers: [], outcome: nil,
                gates: [], reason: nil, metrics: build.metrics)
        }
        for entry in history {
            // A commit that promoted another model is not part of this one's story; the deployments it led to may be
            // (one reconcile records every model it deployed against the environment's last commit).
            if entry.trailers.first(where: { $0.key == "Stagecraft-Model" }).map({ $0.value == model }) ?? true {
                let keys = Set(entry.trailers.map(\.key))
                let kind =
                    keys.contains("Stagecraft-Rollback-Of")
                    ? "rollback"
                    : keys.contains("Stagecraft-Approved-By") ? "approval" : keys.contains("Stagecraft-Model") ? "promotion" : "change"
                events.append(
                    ModelPage.Event(
                        kind: kind, date: entry.date, title: entry.summary, environment: entry.environment,
                        version: entry.trailers.first { $0.key == "Stagecraft-Version" }?.value, commit: entry.commit,
                        author: "\(entry.author) <\(entry.authorEmail)>", trailers: entry.trailers, outcome: nil, gates: [], reason: nil))
            }
            for record in entry.records where record.model == model {
                events.append(
                    ModelPage.Event(
                        kind: "verification", date: record.finishedAt ?? record.startedAt,
                        title: "\(record.outcome.rawValue.capitalized) in \(record.environment)", environment: record.environment,
                        version: record.version, commit: record.environmentCommit, author: record.actor, trailers: [],
                        outcome: record.outcome.rawValue, gates: record.gates, reason: record.reason))
            }
        }
        // Newest first; within one second, what follows from what: a build, its promotion, its verification.
        let order = ["build": 0, "verification": 2]
        events.sort { ($0.date, order[$0.kind] ?? 1) > ($1.date, order[$1.kind] ?? 1) }
        let pages = max(1, (events.count + ModelPage.pageSize - 1) / ModelPage.pageSize)
        let page = min(max(page, 1), pages)
        let shown = Array(events.dropFirst((page - 1) * ModelPage.pageSize).prefix(ModelPage.pageSize))
        var comparison: DiffTable?
        if let (a, b) = compare {
            guard let left = workspace.artifacts.resolve(a), let right = workspace.artifacts.resolve(b) else {
                throw ReconcileError(
                    .refused, "compare: no version '\(a.prefix(64))' or '\(b.prefix(64))' of '\(model)' in the artifact store")
            }
            comparison = try DiffTable.builds(
                try workspace.artifacts.buildInfo(left), try workspace.artifacts.buildInfo(right), workspace: workspace, state: state,
                commit: commit)
        }
        return ModelPage(
            model: model, events: shown, page: page, pages: pages, total: events.count,
            versions: builds.map {
                ModelPage.Version(digest: $0.digest, built: $0.createdAt, metrics: $0.metrics, alias: versionNames.aliases[$0.digest])
            },
            pending: (try? promotion.pendingPromotions(model: model)) ?? [], comparison: comparison, names: versionNames)
    }
}

// MARK: Environment page

/// One environment now: what a reconcile would do, traffic, live feedback metrics and drift per served model.
public struct EnvironmentPage: Codable, Sendable {
    public var name: String
    public var upstream: String?
    public var server: String
    public var running: Bool
    public var approval: String?
    public var plan: Plan?
    public var planError: String?
    public var models: [ModelStatus]
    public var traffic: TrafficSample.Summary?
    /// The serving version's live metrics, by model.
    public var live: [String: [String: Double]]
    public var drift: [ModelMonitorReport]
    public var driftError: String?
    /// The PSI past which a feature counts as drifted (the environment's monitor.psi, else 0.2).
    public var psi: Threshold?
    public var pending: [PendingPromotion]
    /// Aliases and colours of versions, by digest.
    public var names: VersionNames
}

extension ConsoleSite {
    /// Environment `name` now (nil when there is no such environment); traffic is summarised by `sampler`.
    public func environmentPage(_ name: String, sampler: TrafficSampler) throws -> EnvironmentPage? {
        let (commit, project, names) = try project()
        guard names.contains(name) else { return nil }
        let manifest = try workspace.environment(name, at: commit)
        var page = EnvironmentPage(
            name: name, upstream: manifest.upstream, server: "\(manifest.host):\(manifest.port)", running: false,
            approval: manifest.requiredApproval.map { "\($0.count) of \($0.approvers.joined(separator: ", "))" }, plan: nil,
            planError: nil, models: [], traffic: nil, live: [:], drift: [], driftError: nil,
            psi: manifest.monitor?.psi, pending: (try? promotion.pendingPromotions(environment: name)) ?? [],
            names: versionNames(builds: (try? workspace.artifacts.builds()) ?? []))
        _ = project
        do {
            let (plan, models) = try reconciler(name, at: commit).status()
            page.plan = plan
            page.models = models
            page.running = plan.serverRunning
        } catch {
            page.planError = (error as? ReconcileError)?.message ?? String(describing: error)
        }
        if page.running, let client = try? workspace.serverClient(for: manifest) {
            if let text = client.metricsText() { page.traffic = sampler.record(environment: name, metrics: text) }
            for status in page.models {
                if let version = status.serving.first?.version, let live = client.liveMetrics(model: status.model)?[version] {
                    page.live[status.model] = live
                }
            }
        }
        do {
            page.drift = try Monitor(workspace: workspace, state: state).evaluate(environment: name, at: commit)
        } catch {
            page.driftError = (error as? ReconcileError)?.message ?? String(describing: error)
        }
        return page
    }
}
