import ArgumentParser
import Foundation
import GitStore
import LoopbackHTTP
import Manifests
import Reconciler
import Registry

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Environment × model: desired and serving versions, sync, health, last outcome.",
        discussion: """
            Sync: Synced when a reconcile would do nothing for the model (the one
            definition plan and reconcile use), else OutOfSync. Health: Healthy (serving the pin), Progressing (a
            reconcile is applying), Degraded (serving, but the last attempt failed
            or the server holds another version), Missing (nothing serves). LIVE:
            the serving version's live metric over the predictions that received
            true labels (stagecraft feedback).
            --check exits 2 when anything is out of sync.

            Examples:
              stagecraft status
              stagecraft status --env prod --check
              stagecraft status --output json
            """
    )

    @Option(name: .long, help: "Only this environment.", transform: Name.environment)
    var env: String?

    @Flag(name: .long, help: "Exit 2 when anything is out of sync.")
    var check = false

    @Flag(name: .long, help: "Redraw every --interval until interrupted.")
    var watch = false

    @Option(name: .long, help: "How often --watch redraws (e.g. 2s).")
    var interval: String = "2s"

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, wide, json
    }

    @Option(name: [.customShort("o"), .long], help: "text, wide (full digests, when it changed, the server) or json.")
    var output: Format = .text

    @OptionGroup var repository: RepositoryOptions
    @OptionGroup(title: "Serving target") var serving: TargetOptions

    struct Row: Encodable {
        var environment: String
        var model: String
        var desired: String?
        var serving: [VersionShare]
        var sync: String
        var health: String
        var lastOutcome: String?
        var lastChange: Date?
        /// Live metrics of the default serving version over the predictions that received true labels (feedback).
        var live: [String: Double]?
        /// Why the environment's state could not be read (its row then says Unknown).
        var error: String?
        /// What serves the environment when it is not its own server (`kserve:<namespace> (context …)`).
        var target: String?
        /// Where the environment is served, and whether it runs (`127.0.0.1:8101, running`).
        var server: String?
        /// Who holds the environment's lease, when the state store keeps leases (a shared store).
        var lease: Lease?
    }

    /// The live metrics the server reports for `version` of `model`, when it has labels.
    static func live(_ client: ServerClient?, model: String, version: String?) -> [String: Double]? {
        guard let client, let version else { return nil }
        return client.liveMetrics(model: model)?[version]
    }

    /// `accuracy 0.92 (60 labels)`, or `rmse …` for regression; `-` without labels.
    static func liveText(_ live: [String: Double]?) -> String {
        guard let live, let labels = live["labels"], labels > 0 else { return "-" }
        let metric = live["accuracy"] != nil ? "accuracy" : "rmse"
        return "\(metric) \(live[metric].map(GateResult.format) ?? "n/a") (\(Int(labels)) labels)"
    }

    func validate() throws {
        guard DurationText.seconds(interval) != nil else {
            throw ValidationError("--interval: '\(interval)' is not a duration such as 500ms, 2s or 1m")
        }
        if watch && output == .json { throw ValidationError("--watch redraws a table: use -o text or -o wide") }
    }

    func run() async throws {
        guard watch else {
            let (text, inSync) = try snapshot()
            Console.current.write(text, error: false)
            if check && !inSync { throw CommandFailure(.outOfSync) }
            return
        }
        // Redrawn every interval until interrupted: on a terminal in place, else one table after another.
        let pause = DurationText.seconds(interval)!
        try await LoopService.runUntilSignalled("status") {
            await LoopService.onThread { () -> Double? in
                let console = Console.current
                let text: String
                do { text = try snapshot().text } catch { text = "error: \(error)\n" }
                let stamp = "Every \(interval): stagecraft status  \(Timestamp.string(Date()))\n\n"
                console.write(
                    (console.isTerminal ? "\u{1B}[H\u{1B}[2J" : "") + stamp + text + (console.isTerminal ? "" : "\n"), error: false)
                return pause
            }
        }
    }

    /// The table (or JSON) as of now, and whether everything is in sync.
    private func snapshot() throws -> (text: String, inSync: Bool) {
        let console = Console.current
        let repo = try repository.openOrFetch()
        let workspace = try Workspace(repository: repo, toolVersion: Stagecraft.version, ref: repository.ref)
        let state = try workspace.openState(notice: Console.current.warn)
        let commit = try repo.resolve(repository.ref)
        // A name given that names no environment is a usage error, as for the commands on one environment.
        if let env { _ = try EnvironmentFiles.read(env, at: commit, in: repo) }
        // Pipeline order (each environment after its upstream), as `envs` lists them.
        let names =
            try env.map { [$0] }
            ?? EnvironmentOrder.names(
                try Project.check(GitProjectSource(repository: repo, ref: commit.hex)).0, all: workspace.environmentNames(at: commit))
        var rows: [Row] = []
        var allInSync = true
        for name in names {
            // One environment that cannot be read (its server another repository's, its file invalid) does not hide the others.
            do {
                let (environmentRows, plan) = try self.rows(environment: name, commit: commit, workspace: workspace, state: state)
                rows += environmentRows
                allInSync = allInSync && plan.inSync
            } catch {
                allInSync = false
                let message = (error as? ReconcileError)?.message ?? String(describing: error)
                rows.append(
                    Row(
                        environment: name, model: "-", desired: nil, serving: [], sync: "Unknown", health: "Unknown",
                        lastOutcome: nil, lastChange: nil, live: nil, error: message))
            }
        }
        // With a shared store, who holds each environment's lease (reconcilers on several hosts).
        var leases: [String: Lease] = [:]
        if let store = state as? any LeaseStore {
            for name in names { leases[name] = try store.lease(environment: name) }
            for index in rows.indices { rows[index].lease = leases[rows[index].environment] }
        }
        if output == .json { return (try JSONOutput.encode(rows) + "\n", allInSync) }
        let wide = output == .wide
        var cells = [
            ["ENVIRONMENT", "MODEL", "DESIRED", "SERVING", "SYNC", "HEALTH", "LAST", "LIVE"] + (wide ? ["CHANGED", "SERVER"] : [])
        ]
        for row in rows {
            func version(_ digest: String) -> String { wide ? digest : VersionDigest.short(digest) }
            let shares: [String] = row.serving.map { share in
                share.weight == 100 ? version(share.version) : "\(version(share.version)) \(share.weight)%"
            }
            let serving = shares.joined(separator: " ")
            let desired: String = row.desired.map { version($0) } ?? "-"
            var line: [String] = [
                row.environment, row.model, desired, serving.isEmpty ? "-" : serving, row.sync, row.health, row.lastOutcome ?? "-",
                Self.liveText(row.live),
            ]
            if wide { line += [row.lastChange.map { Timestamp.string($0) } ?? "-", row.server ?? "-"] }
            cells.append(line)
        }
        var text = ""
        for (index, line) in table(cells).enumerated() { text += (index == 0 ? console.styled(line, .bold) : line) + "\n" }
        for row in rows { if let error = row.error { text += "\(row.environment): \(error)\n" } }
        var told: Set<String> = []
        for row in rows where row.target != nil && told.insert(row.environment).inserted {
            text += "\(row.environment): served by \(row.target!)\n"
        }
        for name in names where state is any LeaseStore {
            let lease = leases[name]
            let running = lease.map { $0.expiresAt > Date() } ?? false
            text +=
                "\(name): " + (running ? LeaseKeeper.describe(lease) : "lease free" + (lease.map { " (last epoch \($0.epoch))" } ?? ""))
                + "\n"
        }
        return (text, allInSync)
    }

    /// One row per model of `name` (those its file lists, then any other its server routes), and the plan whose
    /// actions say what is out of sync.
    private func rows(
        environment name: String, commit: ObjectID, workspace: Workspace, state: any StateStore
    ) throws -> ([Row], Plan) {
        let manifest = try workspace.environment(name, at: commit)
        let target = try serving.servingTarget(workspace: workspace, environment: manifest, commit: commit) { _, _ in }
        let reconciler = EnvironmentReconciler(
            workspace: workspace, state: state, environment: manifest, ref: commit.hex, commit: commit, target: target)
        let (plan, models) = try reconciler.status()
        let local = plan.serverRunning && serving.target == .local
        let connection = local ? try? workspace.serverClient(for: manifest) : nil
        let rows = models.map { status in
            Row(
                environment: name, model: status.model, desired: status.desired, serving: status.serving,
                sync: status.sync.rawValue, health: status.health.rawValue, lastOutcome: status.lastOutcome?.rawValue,
                lastChange: status.lastChange,
                live: Self.live(connection, model: status.model, version: status.serving.isEmpty ? nil : status.serving[0].version),
                target: serving.target == .local ? nil : plan.server,
                server: "\(plan.server), \(plan.serverRunning ? "running" : "not running")")
        }
        return (rows, plan)
    }
}
