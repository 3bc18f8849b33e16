import ArgumentParser
import Foundation
import GitStore
import LoopbackHTTP
import Manifests
import Reconciler
import Registry

struct DescribeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe",
        abstract: "Everything about one model in one environment, or about a whole environment.",
        discussion: """
            Desired and serving versions with their source commits, traffic split and
            shadow, sync and health, every gate with its last measured value, the last
            deployment's outcome and reason (why it is Degraded), the server (URL, pid,
            since when, loaded versions), who holds the environment's lock, live metrics
            from feedback, and drift alarms from captured traffic.

            Examples:
              stagecraft describe breast-cancer --env qa
              stagecraft describe env prod
              stagecraft describe penguins --env prod --output json
            """
    )

    @Argument(help: "MODEL, or 'env ENV' for a whole environment.")
    var subject: [String]

    @Option(name: .long, help: "The environment (with MODEL).", transform: Name.environment)
    var env: String?

    @OptionGroup var repository: RepositoryOptions
    @OptionGroup var format: OutputOptions

    func validate() throws {
        switch subject.count {
        case 1:
            guard env != nil else { throw ValidationError("describe MODEL needs --env ENV (or: describe env ENV)") }
            _ = try Name.model(subject[0])
        case 2 where subject[0] == "env":
            _ = try Name.environment(subject[1])
            if env != nil { throw ValidationError("give the environment once: describe env ENV") }
        default: throw ValidationError("expected MODEL --env ENV, or env ENV")
        }
    }

    /// One model in one environment.
    struct Description: Encodable {
        var environment: String
        var model: String
        var desired: String?
        var desiredSource: String?
        var serving: [VersionShare]
        var servingSource: String?
        var shadow: String?
        var sync: String
        var health: String
        var gates: [GateResult]
        var gatesVersion: String?
        var lastOutcome: String?
        var lastReason: String?
        var lastChange: Date?
        var loaded: [String]
        var live: [String: Double]?
        var alarms: [String]?
    }

    /// The environment around them.
    struct EnvironmentDescription: Encodable {
        var environment: String
        var upstream: String?
        var commit: String
        var server: String
        var running: Bool
        var pid: Int32?
        var since: Date?
        var lock: String?
        var approval: String?
        var models: [Description]
    }

    func run() async throws {
        let console = Console.current
        let name = subject.count == 2 ? subject[1] : env!
        let repo = try repository.openOrFetch()
        let workspace = try Workspace(repository: repo, toolVersion: Stagecraft.version, ref: repository.ref)
        let state = try workspace.openState(notice: console.warn)
        let commit = try repo.resolve(repository.ref)
        let reconciler = try EnvironmentReconciler(
            workspace: workspace, state: state, environment: name, ref: commit.hex, startServer: { _, _ in })
        let manifest = try reconciler.environmentFile(at: commit)
        let model = subject.count == 1 ? subject[0] : nil
        if let model, manifest.deployment(model) == nil {
            let known = manifest.models.map(\.model)
            throw CommandFailure(
                .failure,
                "'\(name)' has no model '\(model)'\(Spelling.didYouMean(model, among: known)) (models: \(known.joined(separator: ", ")))")
        }
        let (plan, statuses) = try reconciler.status()
        let records = try state.records(environment: name, model: model)
        let files = RunFiles(root: workspace.root, environment: name)
        let pid = files.runningPID()
        let connection = plan.serverRunning ? try? workspace.serverClient(for: manifest) : nil
        let monitored = (try? Monitor(workspace: workspace, state: state).evaluate(environment: name, at: commit)) ?? []
        let served = try state.served(environment: name)
        var descriptions: [Description] = []
        for status in statuses where model == nil || status.model == model {
            let deployment = manifest.deployment(status.model)
            let last = records.last { $0.model == status.model }
            // The gates as last measured: the last record of this model that measured any.
            let measured = records.last { $0.model == status.model && !$0.gates.isEmpty }
            let servingVersion = status.serving.first?.version
            descriptions.append(
                Description(
                    environment: name, model: status.model, desired: status.desired, desiredSource: deployment?.source,
                    serving: status.serving,
                    servingSource: status.servingSource ?? servingVersion.flatMap { _ in served[status.model]?.source },
                    shadow: status.shadow, sync: status.sync.rawValue, health: status.health.rawValue,
                    gates: measured?.gates ?? [], gatesVersion: measured?.version, lastOutcome: last?.outcome.rawValue,
                    lastReason: last?.reason, lastChange: last?.finishedAt ?? last?.startedAt,
                    loaded: status.loaded,
                    live: StatusCommand.live(connection, model: status.model, version: servingVersion),
                    alarms: monitored.first { $0.model == status.model }.map { $0.triggers.map(\.description) }))
        }
        let since = pid.flatMap { _ in files.pidFileWritten }
        let described = EnvironmentDescription(
            environment: name, upstream: manifest.upstream, commit: plan.commit, server: "http://\(manifest.host):\(manifest.port)",
            running: plan.serverRunning, pid: pid, since: since, lock: EnvironmentLock.holder(root: workspace.root, environment: name),
            approval: manifest.requiredApproval.map { "\($0.count) of \($0.approvers.joined(separator: ", "))" }, models: descriptions)
        if format.json {
            console.print(try model == nil ? JSONOutput.encode(described) : JSONOutput.encode(descriptions[0]))
            return
        }
        console.print(Self.text(described, console: console))
    }

    static func text(_ described: EnvironmentDescription, console: Console) -> String {
        var lines: [String] = []
        func field(_ label: String, _ value: String) {
            lines.append((label + ":").padding(toLength: 14, withPad: " ", startingAt: 0) + value)
        }
        let server =
            described.running
            ? "\(described.server), running (pid \(described.pid.map(String.init) ?? "?")"
                + (described.since.map { ", since " + Timestamp.string($0) } ?? "") + ")"
            : "\(described.server), not running"
        field(
            "Environment",
            described.environment + (described.upstream.map { " (upstream \($0))" } ?? "") + " at " + described.commit.prefix(12))
        field("Server", server)
        field("Lock", described.lock.map { "held by \($0)" } ?? "free")
        if let approval = described.approval { field("Approval", approval) }
        for model in described.models {
            lines.append("")
            field("Model", console.styled(model.model, .bold))
            field(
                "Desired", model.desired.map { VersionDigest.short($0) + (model.desiredSource.map { " from \($0)" } ?? "") } ?? "not pinned"
            )
            let serving = model.serving.map { VersionDigest.short($0.version) + " \($0.weight)%" }.joined(separator: ", ")
            field("Serving", serving.isEmpty ? "nothing" : serving + (model.servingSource.map { " (source \($0.prefix(12)))" } ?? ""))
            if let shadow = model.shadow { field("Shadow", VersionDigest.short(shadow)) }
            let health = model.health == "Healthy" ? console.styled(model.health, .green) : console.styled(model.health, .yellow)
            field("Status", "\(model.sync), \(health)")
            if !model.loaded.isEmpty { field("Loaded", model.loaded.map(VersionDigest.short).joined(separator: ", ")) }
            if let last = model.lastOutcome {
                field("Last", last + (model.lastChange.map { " at " + Timestamp.string($0) } ?? ""))
                if let reason = model.lastReason, last != "succeeded" { field("Reason", reason) }
            }
            if !model.gates.isEmpty {
                lines.append("Gates" + (model.gatesVersion.map { " (last measured on \(VersionDigest.short($0)))" } ?? "") + ":")
                let rows = model.gates.map { [$0.gate, $0.valueText, $0.passed ? "passed" : "FAILED"] }
                lines += table(rows).map { "  " + $0 }
            }
            field("Live", StatusCommand.liveText(model.live))
            if let alarms = model.alarms {
                field("Alarms", alarms.isEmpty ? "none" : alarms.joined(separator: "; "))
            } else {
                field("Alarms", "not evaluated (no captured traffic)")
            }
        }
        return lines.joined(separator: "\n")
    }
}
