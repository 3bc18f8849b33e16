import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Prometheus
import GitStore
import Learning
import LoopbackHTTP
import Manifests
import Reconciler
import Registry
import WebConsole

struct MonitorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "monitor",
        abstract: "Check served models for drift and live-metric decay; raise alarms; retrain on feedback.",
        discussion: """
            For each model ENV serves, compares the last captured requests of the
            serving version (spec.monitor.window rows) with the reference profile
            stored in its model file: PSI for every feature and the predictions,
            Kolmogorov–Smirnov (numeric) or chi-squared (categorical) with p-values.
            Joins captured requests with feedback labels for live metrics and counts
            the labelled rows since the build (newRows). Any threshold of the
            environment's spec.monitor crossed is an alarm: a JSON log line on
            standard error, .stagecraft/monitor/<env>.prom (Prometheus textfile),
            the webhook when one is set, and exit 1. With --retrain, the labelled
            rows are appended to a new training data file and the manifest points at
            it by a commit (actor stagecraft, trailer Stagecraft-Trigger); reconcile
            the track environment (dev) to build, verify and serve it.

            Examples:
              stagecraft monitor --env prod
              stagecraft monitor --env dev --retrain && stagecraft reconcile --env dev
              stagecraft monitor --env prod --html report.html --output json
              stagecraft monitor --env prod --watch          (every spec.monitor.schedule)
            """
    )

    @Option(name: .long, help: "The environment to monitor.", transform: Name.environment)
    var env: String

    @Flag(name: .long, help: "On an alarm, commit a retrain on the labelled captured rows.")
    var retrain = false

    @Option(name: .long, help: ArgumentHelp("Also write a self-contained HTML report here.", valueName: "file"))
    var html: String?

    @Flag(name: .long, help: "Keep evaluating, every spec.monitor.schedule (or --interval).")
    var watch = false

    @Option(name: .long, help: "How often --watch evaluates (default: spec.monitor.schedule, else 1h).")
    var interval: String?

    @OptionGroup var repository: RepositoryOptions
    @OptionGroup var format: OutputOptions

    func validate() throws {
        if let interval, DurationText.seconds(interval) == nil {
            throw ValidationError(
                "--interval: '\(interval)' is not a duration "
                    + "such as 30s, 5m or 7d")
        }
    }

    func run() async throws {
        let repo = try repository.open()
        let workspace = try Workspace(repository: repo, toolVersion: Stagecraft.version, ref: repository.ref)
        let monitor = Monitor(workspace: workspace, state: try workspace.openState(notice: Console.current.warn))
        let context = RoundState((command: self, monitor: monitor, workspace: workspace, repo: repo))
        guard watch else {
            if try await Self.once(context) { throw CommandFailure(.failure) }
            return
        }
        try await LoopService.runUntilSignalled("monitor") {
            let (command, _, workspace, repo) = context.value
            do { _ = try await Self.once(context) } catch { Console.current.printError(console: error) }
            let spec = try? workspace.environment(command.env, at: try repo.resolve(command.repository.ref)).monitor
            return command.interval.flatMap(DurationText.seconds) ?? spec?.schedule.flatMap(DurationText.seconds) ?? 3600
        }
    }

    /// One evaluation (on a thread of its own), then the webhook; returns true when an alarm was raised.
    private static func once(
        _ context: RoundState<(command: MonitorCommand, monitor: Monitor, workspace: Workspace, repo: Repository)>
    ) async throws -> Bool {
        let alarm = try await LoopService.onThread {
            let (command, monitor, workspace, _) = context.value
            return try command.evaluate(monitor, workspace: workspace)
        }
        if let alarm { try await context.value.command.post(alarm.reports, to: alarm.webhook) }
        return alarm != nil
    }

    /// The alarms of an evaluation, and where to post them.
    struct Alarm: Sendable {
        var reports: [ModelMonitorReport]
        var webhook: URL
    }

    /// One evaluation: alarms logged, retrains committed, metrics, report and output written; the alarms to post
    /// (nil when there is none, or no webhook: then true alarms still make the command fail).
    private func evaluate(_ monitor: Monitor, workspace: Workspace) throws -> Alarm? {
        let console = Console.current
        let commit = try workspace.repository.resolve(repository.ref)
        let environment = try workspace.environment(env, at: commit)
        let reports = try monitor.evaluate(environment: env, at: commit)
        var retrains: [RetrainResult] = []
        let alarmed = reports.filter { !$0.triggers.isEmpty }
        for report in alarmed {
            let line: [String: Any] = [
                "time": Timestamp.string(Date()), "level": "warning", "label": "stagecraft.monitor", "message": "monitor alarm",
                "environment": env, "model": report.model, "version": report.version, "triggers": report.triggers.map(\.description),
            ]
            console.printError(String(decoding: try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]), as: UTF8.self))
            if retrain { retrains.append(try Retrainer(monitor: monitor).retrain(report)) }
        }
        try writeMetrics(reports, root: workspace.root)
        if let html {
            try MonitorPage.render(reports, environment: env, spec: environment.monitor ?? MonitorSpec()).write(
                toFile: html, atomically: true, encoding: .utf8)
        }
        if format.json {
            struct Output: Encodable {
                var environment: String
                var models: [ModelMonitorReport]
                var retrains: [RetrainResult]
                var alarm: Bool
            }
            console.print(try JSONOutput.encode(Output(environment: env, models: reports, retrains: retrains, alarm: !alarmed.isEmpty)))
        } else {
            print(reports, retrains: retrains)
        }
        guard !alarmed.isEmpty else { return nil }
        guard let webhook = environment.monitor?.webhook else { return Alarm(reports: alarmed, webhook: Self.noWebhook) }
        guard let url = URL(string: webhook), url.host != nil, ["http", "https"].contains(url.scheme ?? "") else {
            throw CommandFailure(.failure, "webhook '\(webhook)' is not an http:// or https:// URL")
        }
        return Alarm(reports: alarmed, webhook: url)
    }

    /// Stands for "no webhook" in an ``Alarm``.
    static let noWebhook = URL(fileURLWithPath: "/")

    private func print(_ reports: [ModelMonitorReport], retrains: [RetrainResult]) {
        let console = Console.current
        if reports.isEmpty { console.print("'\(env)' serves no model yet") }
        for report in reports {
            let mark = report.triggers.isEmpty ? console.styled("✓", .green) : console.styled("✗", .red)
            console.print(
                "\(mark) \(report.model) \(VersionDigest.short(report.version)) in \(env): \(report.rows) captured rows, "
                    + "\(report.labels) labelled, \(report.newRows) new labelled rows")
            for drift in report.drift + [report.predictionDrift].compactMap({ $0 }) {
                var text = "    \(drift.name.padding(toLength: 20, withPad: " ", startingAt: 0)) psi \(GateResult.format(drift.psi))"
                if let ks = drift.ks, let p = drift.ksPValue { text += "  ks \(GateResult.format(ks)) (p \(GateResult.format(p)))" }
                if let chi = drift.chiSquared, let p = drift.chiSquaredPValue {
                    text +=
                        "  chi² \(GateResult.format(chi)) (p "
                        + "\(GateResult.format(p)))"
                }
                if let levels = drift.newLevels, !levels.isEmpty { text += "  new levels: \(levels.joined(separator: ", "))" }
                console.print(text)
            }
            let live = report.live.filter { ["accuracy", "auc", "f1", "rmse", "mae", "r2"].contains($0.key) }.sorted { $0.key < $1.key }
            if !live.isEmpty {
                console.print(
                    "    live: "
                        + live.map {
                            "\($0.key) "
                                + "\(GateResult.format($0.value))"
                        }.joined(separator: "  "))
            }
            for trigger in report.triggers { console.print("    " + console.styled("alarm: ", .red) + trigger.description) }
        }
        for result in retrains {
            console.print(
                "retrain \(result.model): \(result.addedRows) labelled rows → \(result.data), commit "
                    + "\(result.commit.prefix(12)) on \(result.branch)")
        }
    }

    /// `.stagecraft/monitor/<env>.prom`, for a Prometheus node exporter's textfile collector.
    private func writeMetrics(_ reports: [ModelMonitorReport], root: URL) throws {
        let registry = PrometheusCollectorRegistry()
        let alarm = MetricNameDescriptor(
            metricName: "stagecraft_monitor_alarm", unitName: "", helpText: "1 when a monitor threshold is crossed.")
        let psi = MetricNameDescriptor(
            metricName: "stagecraft_monitor_psi", unitName: "",
            helpText: "Population stability index of a feature in the monitored window.")
        for report in reports {
            let labels = [("environment", env), ("model", report.model), ("version", String(report.version.prefix(12)))]
            registry.makeGauge(descriptor: alarm, labels: labels).set(to: report.triggers.isEmpty ? 0 : 1)
            for item in report.drift + [report.predictionDrift].compactMap({ $0 }) {
                registry.makeGauge(descriptor: psi, labels: labels + [("feature", item.name)]).set(to: item.psi)
            }
        }
        let text = registry.emitToString()
        let folder = root.appendingPathComponent(".stagecraft/monitor")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try text.write(to: folder.appendingPathComponent("\(env).prom"), atomically: true, encoding: .utf8)
    }

    /// POSTs the alarms as JSON to the webhook (http or https, through async-http-client, 10 s timeout).
    private func post(_ reports: [ModelMonitorReport], to webhook: URL) async throws {
        guard webhook != Self.noWebhook else { return }
        let body: [String: Any] = [
            "environment": env,
            "alarms": reports.map { report in
                ["model": report.model, "version": report.version, "triggers": report.triggers.map(\.description)] as [String: Any]
            },
        ]
        var request = HTTPClientRequest(url: webhook.absoluteString)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])))
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        } catch {
            throw CommandFailure(.failure, "webhook \(Self.redacted(webhook)) could not be reached: \(error)")
        }
        guard (200..<300).contains(Int(response.status.code)) else {
            throw CommandFailure(.failure, "webhook \(Self.redacted(webhook)) answered \(response.status.code)")
        }
    }

    /// The webhook's address without credentials, query or fragment (they may hold a token): for messages.
    static func redacted(_ url: URL) -> String {
        var parts = URLComponents(url: url, resolvingAgainstBaseURL: false)
        parts?.user = nil
        parts?.password = nil
        parts?.query = nil
        parts?.fragment = nil
        return parts?.string ?? "(webhook)"
    }
}

extension Console {
    /// Prints an error the way commands report them, and goes on.
    func printError(console error: any Error) { printError(styled("error: ", .red) + String(describing: error)) }
}

/// The monitor's self-contained HTML report: drift bars per feature and live metrics, as inline SVG.
enum MonitorPage {
    static func render(_ reports: [ModelMonitorReport], environment: String, spec: MonitorSpec) -> String {
        var body = ""
        for report in reports {
            let items = report.drift + [report.predictionDrift].compactMap { $0 }
            let svg = Charts.drift(items, threshold: spec.psi)
            let live = report.live.filter { ["accuracy", "auc", "f1", "precision", "recall", "r2"].contains($0.key) }
            let chart = Charts.live(report.live)
            let alarms =
                report.triggers.isEmpty
                ? "<p class=\"ok\">No alarm.</p>"
                : "<ul class=\"alarm\">" + report.triggers.map { "<li>\(escape($0.description))</li>" }.joined() + "</ul>"
            body += """
                <section><h2>\(escape(report.model)) <code>\(report.version.prefix(12))</code></h2>
                <p>\(report.rows) captured rows in the window; \(report.labels) with true labels; \
                \(report.newRows) labelled rows since the build.</p>
                \(alarms)<h3>Drift (PSI per feature)</h3>\(svg)<h3>Live metrics (\(report.labels) labels)</h3>\(live.isEmpty ? "<p>No "
                    + "labels yet.</p>" : chart)</section>
                """
        }
        return """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>Stagecraft monitor — \(escape(environment))</title>
            <style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:760px}code{font-size:.9em}\
            .alarm{color:#d7263d}.ok{color:#3a7d44}section{border-top:1px solid #ddd;margin-top:1.5rem}</style>
            </head><body><h1>Monitor: \(escape(environment))</h1><p>\(Timestamp.string(Date()))</p>\(body.isEmpty ? "<p>Nothing "
                + "served.</p>" : body)</body></html>

            """
    }

    static func escape(_ text: String) -> String { Html.escape(text) }
}
