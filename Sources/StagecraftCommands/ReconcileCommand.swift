import ArgumentParser
import Foundation
import GitStore
import Manifests
import NIOCore
import Reconciler
import Registry
import ServiceLifecycle
import WebConsole

/// `--repo`, `--ref` and `--env` for the commands that act on one environment, and how they open the workspace.
struct EnvironmentOptions: ParsableArguments {
    @Option(name: .long, help: "The environment (environments/<env>.yaml).", transform: Name.environment)
    var env: String

    @OptionGroup var repository: RepositoryOptions

    @OptionGroup(title: "Serving target") var serving: TargetOptions

    /// The workspace, its state store, and a reconciler for the environment that starts servers in the background (or
    /// serves on KServe with `--target kserve`).
    func reconciler(progress: @escaping (String) -> Void = { _ in }) throws -> EnvironmentReconciler {
        let repo = try repository.openOrFetch()
        let workspace = try Workspace(repository: repo, toolVersion: Stagecraft.version, ref: repository.ref)
        let state = try workspace.openState(notice: Console.current.warn)
        let root = workspace.root
        let repoPath = repo.workingDirectory ?? repo.gitDirectory
        let commit = try repo.resolve(repository.ref)
        let manifest = try workspace.environment(env, at: commit)
        try serving.checkExpressible(manifest, workspace: workspace, state: state)
        let target = try serving.servingTarget(workspace: workspace, environment: manifest, commit: commit) { manifest, commit in
            try ServerLauncher.start(
                ["serve", "--env", manifest.name, "--repo", repoPath, "--ref", commit.hex, "--deployed"],
                files: RunFiles(root: root, environment: manifest.name), host: manifest.host, port: manifest.port)
        }
        let reconciler = EnvironmentReconciler(
            workspace: workspace, state: state, environment: manifest, ref: repository.ref, commit: commit, target: target)
        reconciler.progress = progress
        let console = Console.current
        reconciler.waitingForLock = { console.printError($0) }
        return reconciler
    }
}

struct PlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show what reconcile would do to make an environment match git.",
        discussion: """
            Compares the environment file at --ref (read from git objects) with what
            the environment's server has loaded and the state store records, and
            prints the ordered actions. Changes nothing.
            Exit status: 0 in sync, 2 out of sync, 1 error.

            Examples:
              stagecraft plan --env qa
              stagecraft plan --env prod --ref origin/main --output json
              stagecraft plan --env dev --repo https://example.com/models.git
            """
    )

    @OptionGroup var environment: EnvironmentOptions
    @OptionGroup var format: OutputOptions

    func run() async throws {
        let console = Console.current
        let plan = try environment.reconciler().plan()
        if format.json {
            struct Output: Encodable {
                var plan: Plan
                var inSync: Bool
            }
            console.print(try JSONOutput.encode(Output(plan: plan, inSync: plan.inSync)))
        } else {
            let server = plan.serverRunning ? plan.server : "\(plan.server), not running"
            console.print("Plan for \(console.styled(plan.environment, .bold)) at \(plan.commit.prefix(12)) (server \(server))")
            if plan.inSync {
                console.print(console.styled("✓", .green) + " in sync: nothing to do")
            } else {
                for action in plan.actions { console.print("  " + Self.symbol(action.kind, console) + " " + action.description) }
                console.print(
                    "\(count(plan.actions.count, "action")); apply with: stagecraft reconcile --env \(plan.environment)"
                        + environment.serving.arguments.map { " " + $0 }.joined())
            }
        }
        if !plan.inSync { throw CommandFailure(.outOfSync) }
    }

    static func symbol(_ kind: PlannedAction.Kind, _ console: Console) -> String {
        switch kind {
        case .startServer, .build, .promote: return console.styled("+", .green)
        case .verify, .switch: return console.styled("~", .yellow)
        case .unload, .remove: return console.styled("-", .red)
        }
    }
}

struct ReconcileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "Make an environment serve what git says: build, verify gates, switch traffic, record.",
        discussion: """
            Plans (see 'stagecraft plan'), then applies: starts the environment's
            server if it is not running, builds missing versions, verifies gates
            (offline on the holdout set, online in a slot of the real server that
            takes no traffic), switches traffic atomically, unloads what is no longer
            pinned, and records every deployment in .stagecraft/state.db and in
            refs/notes/stagecraft. A track environment (dev) first builds each model
            at the branch head and promotes it by commit.
            A failing gate leaves the old version serving and exits 1.
            Exit status: 0 done, 1 failed, 3 lock held (--no-wait).

            Examples:
              stagecraft reconcile --env dev
              stagecraft reconcile --env qa --junit gates.xml
              stagecraft reconcile --env prod --watch --interval 30s
              stagecraft reconcile --env qa --repo ssh://git@host/models.git --watch \\
                --webhook 127.0.0.1:9292 --webhook-secret-file /etc/stagecraft/hook-secret
            """
    )

    @OptionGroup var environment: EnvironmentOptions
    @OptionGroup var format: OutputOptions

    @Flag(name: .long, help: "Keep going: poll the ref and reconcile when its commit changes or the server died.")
    var watch = false

    @Option(name: .long, help: "How often --watch polls (e.g. 500ms, 30s, 5m).")
    var interval: String = "30s"

    @Flag(name: .long, help: "Exit 3 at once when another reconcile of the environment is running, instead of waiting.")
    var noWait = false

    @Option(name: .long, help: ArgumentHelp("Write the gate results as a JUnit XML report.", valueName: "file"))
    var junit: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "With --watch: listen for a forge's push webhooks here, and reconcile at once on a push to the ref's branch "
                + "(polling stays as the fallback).", valueName: "host:port"))
    var webhook: String?

    @Option(
        name: .long,
        help: ArgumentHelp("The webhook's shared secret: the file's content, without a final newline.", valueName: "file"))
    var webhookSecretFile: String?

    func validate() throws {
        guard DurationText.seconds(interval) != nil else {
            throw ValidationError(
                "--interval: '\(interval)' is not a duration such as "
                    + "500ms, 30s or 5m")
        }
        if let webhook {
            guard watch else { throw ValidationError("--webhook needs --watch: it wakes the watching loop") }
            guard Self.listenAddress(webhook) != nil else {
                throw ValidationError("--webhook: '\(webhook.prefix(80))' is not host:port, such as 127.0.0.1:9292")
            }
            guard webhookSecretFile != nil else {
                throw ValidationError("--webhook needs --webhook-secret-file: deliveries are checked against the secret")
            }
        } else if webhookSecretFile != nil {
            throw ValidationError("--webhook-secret-file goes with --webhook")
        }
    }

    /// `host:port` with a port of 1–65535.
    static func listenAddress(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port)
        else { return nil }
        let host = String(text[..<colon])
        return host.isEmpty ? nil : (host, port)
    }

    /// The webhook's secret, read from its file; an empty or unreadable file is a usage error.
    private func webhookSecret() throws -> [UInt8] {
        guard let webhookSecretFile else { return [] }
        guard var secret = FileManager.default.contents(atPath: webhookSecretFile).map(Array.init) else {
            throw CommandFailure(.usage, "--webhook-secret-file: cannot read \(webhookSecretFile)")
        }
        while let last = secret.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { secret.removeLast() }
        guard !secret.isEmpty else { throw CommandFailure(.usage, "--webhook-secret-file: \(webhookSecretFile) is empty") }
        return secret
    }

    func run() async throws {
        let console = Console.current
        let line = ProgressLine(console: console)
        let reconciler = try environment.reconciler { message in
            if console.isTerminal { line.update(message) }
        }
        let context = RoundState((command: self, reconciler: reconciler, line: line))
        guard watch else {
            // The reconcile blocks (git, files, the lock, the server's start): on a thread of its own.
            let failed = try await LoopService.onThread {
                let (command, reconciler, line) = context.value
                return try command.once(reconciler, line: line).failed
            }
            if failed { throw CommandFailure(.failure) }
            return
        }
        let retry = RoundState(WatchRetry(interval: DurationText.seconds(interval)!))
        // A remote repository is fetched again before each look, so that a push is seen.
        let repository = environment.repository
        let refresh: @Sendable () throws -> Void = { try repository.refresh() }
        var beside: [any Service] = []
        var wake: WakeSignal?
        if let webhook, let address = Self.listenAddress(webhook) {
            let signal = WakeSignal()
            let branch = try Self.followedBranch(repository)
            let hook = PushWebhook(secret: try webhookSecret(), following: branch)
            beside.append(
                WebhookListener.application(host: address.host, port: address.port, webhook: hook, wake: signal) { message in
                    console.printError(message)
                })
            wake = signal
        }
        do {
            try await LoopService.runUntilSignalled("reconcile", wake: wake, beside: beside) {
                await LoopService.onThread { Self.round(context, retry: retry, refresh: refresh) }
            }
        } catch let error as IOError where webhook != nil {
            // The only listener of a watching reconcile is the webhook's.
            let reason = error.errnoCode == EADDRINUSE ? "another process listens there" : error.description
            throw CommandFailure(.failure, "cannot listen for webhooks on \(webhook!): \(reason); choose another --webhook")
        }
    }

    /// The branch a push must name to wake the loop: `--ref` itself, or HEAD's branch in a local repository.
    static func followedBranch(_ repository: RepositoryOptions) throws -> String {
        guard repository.ref == "HEAD" else { return repository.ref }
        guard !repository.isURL, let branch = try repository.open().currentBranch() else {
            throw CommandFailure(.usage, "--webhook: pass --ref BRANCH, the branch whose pushes should wake this reconciler")
        }
        return branch
    }

    /// One round of `--watch`: a reconcile when something changed (or a failure is to be tried again); the pause.
    private static func round(
        _ context: RoundState<(command: ReconcileCommand, reconciler: EnvironmentReconciler, line: ProgressLine)>,
        retry: RoundState<WatchRetry>, refresh: @Sendable () throws -> Void
    ) -> Double {
        let console = Console.current
        let (command, reconciler, line) = context.value
        do {
            try refresh()
        } catch {
            // The last fetched commit is still served; the next look fetches again.
            console.printError(console.styled("warning: ", .yellow) + "\(error) (serving what was fetched before)")
        }
        let commit = try? reconciler.currentCommit().hex
        let live = reconciler.serverIsLive()  // cheap: no plan unless something changed
        guard retry.value.shouldReconcile(commit: commit, live: live) else { return retry.value.pause }
        do {
            let report = try command.once(reconciler, line: line)
            retry.value.finished(commit: report.commit, failure: report.failure ?? (report.failed ? .stalled : nil))
        } catch {
            let failure = FailureClass(error)
            retry.value.finished(commit: commit, failure: failure)
            console.printError(
                console.styled("error: ", .red) + String(describing: error) + " (\(failure.rawValue): " + retry.value.nextStep + ")")
        }
        return retry.value.pause
    }

    private func once(_ reconciler: EnvironmentReconciler, line: ProgressLine) throws -> ReconcileReport {
        let console = Console.current
        let report = try reconciler.reconcile(wait: !noWait)
        line.finish()
        for problem in environment.repository.publish(promotionsOn: report.promotions.isEmpty ? nil : reconciler.branch) {
            console.printError(console.styled("warning: ", .yellow) + problem)
        }
        if let junit { try JUnitReport.write(report, to: junit) }
        if format.json {
            console.print(try JSONOutput.encode(report))
            return report
        }
        for promotion in report.promotions {
            console.print(
                "promoted \(promotion.model) \(VersionDigest.short(promotion.version)) to \(promotion.environment) (commit "
                    + "\(promotion.commit.prefix(12)))")
        }
        for action in report.actions where action.outcome == .failed {
            // A failure with a record is printed with the record's gates below.
            if let model = action.action.model, report.records.contains(where: { $0.model == model && $0.outcome == .failed }) {
                continue
            }
            console.printError(
                console.styled("✗", .red) + " \(action.description) failed (\(action.failure?.rawValue ?? "")): "
                    + (action.error ?? ""))
        }
        for record in report.records {
            let mark =
                record.outcome == .succeeded
                ? console.styled("✓", .green) : record.outcome == .failed ? console.styled("✗", .red) : console.styled("•", .yellow)
            var text = "\(mark) \(record.model) \(VersionDigest.short(record.version)) \(record.outcome.rawValue) in \(record.environment)"
            if !record.gates.isEmpty {
                text += " — " + record.gates.map { "\($0.gate) [\($0.valueText)]\($0.passed ? "" : " FAILED")" }.joined(separator: ", ")
            }
            if let reason = record.reason, record.outcome != .succeeded { text += "\n  \(reason)" }
            console.print(text)
        }
        let serving = report.server.map { $0.contains(":") && !$0.hasPrefix("kserve:") ? "http://\($0)" : $0 }
        let at = serving.map { "; serving at \($0)" } ?? ""
        if report.wasInSync {
            console.print(console.styled("✓", .green) + " \(report.environment) is in sync at \(report.commit.prefix(12))\(at)")
        } else if !report.failed {
            console.print(
                console.styled("✓", .green) + " \(report.environment) reconciled at \(report.commit.prefix(12)) "
                    + "(\(count(report.actions.count, "action")))\(at)")
        }
        return report
    }

}

/// When `reconcile --watch` reconciles again: on a new commit or a dead server; after a transient failure, with
/// backoff (the interval doubled per failure, up to 10 minutes); after a stalled one, only on a new commit; after a
/// waiting one (lock held, upstream not verified), at the next interval.
struct WatchRetry {
    let interval: Double
    private(set) var last: String?
    private(set) var failure: FailureClass?
    private var failures = 0

    init(interval: Double) { self.interval = interval }

    /// Seconds to wait before the next look.
    var pause: Double {
        guard failure == .transient else { return interval }
        return min(interval * pow(2, Double(min(failures, 12))), max(interval, 600))
    }

    /// What happens next, for a message.
    var nextStep: String {
        switch failure {
        case .stalled: return "waiting for a new commit"
        case .transient: return "trying again in \(DurationText.format(pause))"
        case .waiting, nil: return "trying again in \(DurationText.format(interval))"
        }
    }

    func shouldReconcile(commit: String?, live: Bool) -> Bool {
        switch failure {
        case .stalled: return commit != last
        case .transient, .waiting: return true
        case nil: return commit != last || !live
        }
    }

    mutating func finished(commit: String?, failure: FailureClass?) {
        last = commit
        self.failure = failure
        failures = failure == .transient ? failures + 1 : 0
    }
}

/// A reconcile's gate results as JUnit XML: one test suite, one test case per gate of each record.
enum JUnitReport {
    static func write(_ report: ReconcileReport, to path: String) throws {
        var cases: [String] = []
        var failures = 0
        for record in report.records {
            let prefix = "\(record.model) \(VersionDigest.short(record.version))"
            if record.gates.isEmpty {
                let failed = record.outcome == .failed
                if failed { failures += 1 }
                cases.append(
                    "    <testcase classname=\"stagecraft.\(escape(report.environment))\" name=\"\(escape(prefix)): deploy\">"
                        + (failed ? "<failure message=\"\(escape(record.reason ?? "failed"))\"/>" : "") + "</testcase>")
            }
            for gate in record.gates {
                let value = gate.valueText
                var line =
                    "    <testcase classname=\"stagecraft.\(escape(report.environment))\" name=\"\(escape(prefix)): "
                    + "\(escape(gate.gate))\">"
                line += "<system-out>measured \(escape(value)) (\(gate.stage))</system-out>"
                if !gate.passed {
                    failures += 1
                    line += "<failure message=\"\(escape(gate.gate)) not met: measured \(escape(value))\"/>"
                }
                cases.append(line + "</testcase>")
            }
        }
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <testsuites>
              <testsuite name="stagecraft reconcile \(escape(report.environment))" tests="\(cases.count)" failures="\(failures)">
            \(cases.joined(separator: "\n"))
              </testsuite>
            </testsuites>

            """
        try Data(xml.utf8).write(to: URL(fileURLWithPath: path))
    }

    static func escape(_ text: String) -> String { Html.escape(text) }
}
