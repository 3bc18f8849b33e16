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

    @OptionGroup var repository: RepositoryOptions
    @OptionGroup var format: OutputOptions
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
    }

    /// The live metrics the server reports for `version` of `model`, when it has labels.
    static func live(_ connection: HTTPConnection?, model: String, version: String?) -> [String: Double]? {
        guard let connection, let version, let response = try? connection.send("GET", "/v2/models/\(model)/feedback"),
            response.status == 200
        else { return nil }
        return ((response.json["live"] as? [String: Any])?[version] as? [String: Any])?.compactMapValues { ($0 as? NSNumber)?.doubleValue }
    }

    /// `accuracy 0.92 (60 labels)`, or `rmse …` for regression; `-` without labels.
    static func liveText(_ live: [String: Double]?) -> String {
        guard let live, let labels = live["labels"], labels > 0 else { return "-" }
        let metric = live["accuracy"] != nil ? "accuracy" : "rmse"
        return "\(metric) \(live[metric].map(GateResult.format) ?? "n/a") (\(Int(labels)) labels)"
    }

    func run() async throws {
        let console = Console.current
        let repo = try repository.openOrFetch()
        let workspace = try Workspace(repository: repo, toolVersion: Stagecraft.version, ref: repository.ref)
        let state = try workspace.openState(notice: Console.current.warn)
        let commit = try repo.resolve(repository.ref)
        // A name given that names no environment is a usage error, as for the commands on one environment.
        if let env { _ = try EnvironmentFiles.read(env, at: commit, in: repo) }
        // Pipeline order (each environment after its upstream), as `envs` lists them.
        let names = try env.map { [$0] }
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
        if format.json {
            console.print(try JSONOutput.encode(rows))
        } else {
            var cells = [["ENVIRONMENT", "MODEL", "DESIRED", "SERVING", "SYNC", "HEALTH", "LAST", "LIVE"]]
            for row in rows {
                let serving = row.serving.map {
                    $0.weight == 100 ? VersionDigest.short($0.version) : "\(VersionDigest.short($0.version)) \($0.weight)%"
                }.joined(separator: " ")
                cells.append([
                    row.environment, row.model, row.desired.map(VersionDigest.short) ?? "-", serving.isEmpty ? "-" : serving,
                    row.sync, row.health, row.lastOutcome ?? "-", Self.liveText(row.live),
                ])
            }
            for (index, text) in table(cells).enumerated() {
                console.print(index == 0 ? console.styled(text, .bold) : text)
            }
            for row in rows { if let error = row.error { console.print("\(row.environment): \(error)") } }
            var told: Set<String> = []
            for row in rows where row.target != nil && told.insert(row.environment).inserted {
                console.print("\(row.environment): served by \(row.target!)")
            }
        }
        if check && !allInSync { throw CommandFailure(.outOfSync) }
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
        let connection = local ? try? HTTPConnection(host: manifest.host, port: manifest.port, timeout: 5) : nil
        let rows = models.map { status in
            Row(
                environment: name, model: status.model, desired: status.desired, serving: status.serving,
                sync: status.sync.rawValue, health: status.health.rawValue, lastOutcome: status.lastOutcome?.rawValue,
                lastChange: status.lastChange,
                live: Self.live(connection, model: status.model, version: status.serving.isEmpty ? nil : status.serving[0].version),
                target: serving.target == .local ? nil : plan.server)
        }
        return (rows, plan)
    }
}
