import Foundation
import GitStore
import Learning
import Mustache
import Reconciler
import Registry

/// Who is looking: a signed-in user may act (every form carries the session's CSRF token); anyone else reads.
public struct Viewer: Sendable {
    public var user: ConsoleUser?
    public var csrf: String?

    /// Someone not signed in.
    public static let anonymous = Viewer(user: nil, csrf: nil)
    public var canAct: Bool { user != nil }
}

/// Renders the pages from their data with the Mustache templates.
struct Pages: Sendable {
    let library: MustacheLibrary
    let toolVersion: String
    let repository: String

    init(toolVersion: String, repository: String) {
        var templates: [String: MustacheTemplate] = [:]
        for (name, text) in Templates.all {
            do { templates[name] = try MustacheTemplate(string: text) } catch { preconditionFailure("template \(name): \(error)") }
        }
        library = MustacheLibrary(templates: templates)
        self.toolVersion = toolVersion
        self.repository = repository
    }

    struct Layout {
        var title: String
        var body: String
        var environments: [String]
        var user: User?
        var refresh: String
        var live: String
        var version: String
        var repository: String
        var commit: String

        struct User {
            var name: String
            var email: String
            var csrf: String
        }
    }

    func page(
        title: String, body: String, viewer: Viewer, environments: [String], commit: String, refresh: Int? = nil, live: Bool = false
    ) -> String {
        let user = viewer.user.map { Layout.User(name: $0.name, email: $0.email, csrf: viewer.csrf ?? "") }
        let layout = Layout(
            title: title, body: body, environments: environments, user: user, refresh: refresh.map(String.init) ?? "",
            live: live ? "on" : "off",
            version: toolVersion, repository: repository, commit: String(commit.prefix(12)))
        return library.render(layout, withTemplate: "layout") ?? ""
    }

    // MARK: Versions

    /// A version as a link in its colour (built directly: it appears in every cell, and a template costs more).
    func chip(_ digest: String, model: String, names: VersionNames) -> String {
        let short = VersionDigest.short(digest)
        let alias = names.aliases[digest].map { " " + Html.escape($0) } ?? ""
        return "<a class=\"v\" style=\"--v:\(names.colours.colour(digest))\" href=\"/models/\(Html.escape(model))#v-\(short)\" "
            + "title=\"\(Html.escape(digest))\">\(Html.escape(short))\(alias)</a>"
    }

    /// `2026-12-04 07:36:58 UTC`.
    static func shown(_ date: Date) -> String {
        Timestamp.string(date).prefix(19).replacingOccurrences(of: "T", with: " ") + " UTC"
    }

    static func gateText(_ gate: GateResult) -> String {
        "\(gate.gate): \(gate.valueText)" + (gate.passed ? " ✓" : " ✗")
    }

    // MARK: Board

    struct BoardBody {
        var commit: String
        var branch: String
        var columns: [Column]
        var rows: [Row]
        var canAct: Bool

        struct Column {
            var name: String
            var upstream: String?
            var server: String
            var running: Bool
            var approval: String?
            var error: String?
        }
        struct Row {
            var model: String
            var cells: [Cell]
        }
        struct Share {
            var chip: String
            var weight: Int?
        }
        struct Gate {
            var text: String
            var passed: Bool
        }
        struct Last {
            var outcome: String
            var gates: [Gate]
        }
        struct Promotable {
            var model: String
            var environment: String
            var short: String
            var from: String
            var canAct: Bool
        }
        struct Pending {
            var model: String
            var environment: String
            var version: String
            var short: String
            var count: Int
            var needed: Int
            var canAct: Bool
        }
        struct Cell {
            var environment: String
            var model: String
            var listed: Bool
            var sync: String
            var health: String
            var serving: [Share]
            var split: String?
            var desired: String?
            var shadow: String?
            var last: Last?
            var promotable: Promotable?
            var pending: [Pending]
            var canRollBack: Bool
            var rollbackTo: String?
        }
    }

    func board(_ board: Board, viewer: Viewer) -> String {
        let rows = board.rows.map { row in
            BoardBody.Row(
                model: row.model,
                cells: row.cells.map { cell in
                    let status = cell.status
                    let serving = status?.serving ?? []
                    let servingVersions = Set(serving.map(\.version))
                    return BoardBody.Cell(
                        environment: cell.environment, model: row.model, listed: status != nil, sync: status?.sync.rawValue ?? "",
                        health: status?.health.rawValue ?? "",
                        serving: serving.map {
                            BoardBody.Share(
                                chip: chip($0.version, model: row.model, names: board.names),
                                weight: $0.weight == 100 ? nil : $0.weight)
                        },
                        split: serving.count > 1 ? Charts.split(serving, colours: board.names.colours) : nil,
                        desired: status?.desired.flatMap { desired in
                            servingVersions.contains(desired) ? nil : chip(desired, model: row.model, names: board.names)
                        },
                        shadow: status?.shadow.map { chip($0, model: row.model, names: board.names) },
                        last: cell.last.map { record in
                            BoardBody.Last(
                                outcome: record.outcome.rawValue,
                                gates: record.gates.map { BoardBody.Gate(text: Self.gateText($0), passed: $0.passed) })
                        },
                        promotable: cell.promotable.map {
                            BoardBody.Promotable(
                                model: row.model, environment: cell.environment, short: VersionDigest.short($0.version), from: $0.from,
                                canAct: viewer.canAct)
                        },
                        pending: cell.pending.map {
                            BoardBody.Pending(
                                model: row.model, environment: cell.environment, version: $0.version,
                                short: VersionDigest.short($0.version),
                                count: $0.approvals.count, needed: $0.needed, canAct: viewer.canAct)
                        },
                        canRollBack: viewer.canAct && cell.rollbackTo != nil, rollbackTo: cell.rollbackTo.map(VersionDigest.short))
                })
        }
        let body = BoardBody(
            commit: String(board.commit.prefix(12)), branch: board.branch,
            columns: board.environments.map {
                BoardBody.Column(
                    name: $0.name, upstream: $0.upstream, server: $0.server, running: $0.running, approval: $0.approval, error: $0.error)
            }, rows: rows, canAct: viewer.canAct)
        return library.render(body, withTemplate: "board") ?? ""
    }

    // MARK: Model page

    struct ModelBody {
        var model: String
        var total: Int
        var hasPending: Bool
        var pending: [Pending]
        var versions: [Option]
        var comparison: DiffTable?
        var events: [Event]
        var page: Int
        var pages: Int
        var previous: Int?
        var next: Int?

        struct Pending {
            var model: String
            var environment: String
            var version: String
            var chip: String
            var promoter: String
            var count: Int
            var needed: Int
            var canAct: Bool
        }
        struct Option {
            var digest: String
            var label: String
            var selectedA: Bool
            var selectedB: Bool
        }
        struct Event {
            var kind: String
            var date: String
            var shown: String
            var title: String
            var anchor: String?
            var chip: String?
            var environment: String?
            var commit: String?
            var author: String?
            var hasDetails: Bool
            var details: [String]
        }
    }

    func model(_ page: ModelPage, viewer: Viewer, compare: (String, String)?) -> String {
        let events = page.events.map { event in
            var details: [String] = []
            for trailer in event.trailers where trailer.key != "Stagecraft-Model" && trailer.key != "Stagecraft-Version" {
                details.append("\(trailer.key): \(trailer.value)")
            }
            if !event.gates.isEmpty { details.append(event.gates.map(Self.gateText).joined(separator: ", ")) }
            if let reason = event.reason { details.append(reason) }
            if let metrics = event.metrics, !metrics.isEmpty {
                let figures = metrics.sorted { $0.key < $1.key }.map { "\($0.key) \(GateResult.format($0.value))" }
                details.append("holdout " + figures.joined(separator: ", "))
            }
            return ModelBody.Event(
                kind: event.kind, date: Timestamp.string(event.date), shown: Self.shown(event.date), title: event.title,
                anchor: event.kind == "build" ? event.version.map { "v-" + VersionDigest.short($0) } : nil,
                chip: event.version.map { chip($0, model: page.model, names: page.names) }, environment: event.environment,
                commit: event.commit.map { String($0.prefix(12)) }, author: event.author, hasDetails: !details.isEmpty, details: details)
        }
        let first = compare?.0 ?? page.versions.dropFirst().first?.digest ?? page.versions.first?.digest
        let second = compare?.1 ?? page.versions.first?.digest
        let options = page.versions.map { version in
            ModelBody.Option(
                digest: version.digest,
                label: VersionDigest.short(version.digest) + (version.alias.map { " " + $0 } ?? "") + " (built "
                    + Timestamp.string(version.built).prefix(16).replacingOccurrences(of: "T", with: " ") + ")",
                selectedA: first.map { version.digest.hasPrefix($0) } ?? false,
                selectedB: second.map { version.digest.hasPrefix($0) } ?? false)
        }
        let body = ModelBody(
            model: page.model, total: page.total, hasPending: !page.pending.isEmpty,
            pending: page.pending.map {
                ModelBody.Pending(
                    model: page.model, environment: $0.environment, version: $0.version,
                    chip: chip($0.version, model: page.model, names: page.names),
                    promoter: $0.promoter, count: $0.approvals.count, needed: $0.needed, canAct: viewer.canAct)
            }, versions: options, comparison: page.comparison, events: events, page: page.page, pages: page.pages,
            previous: page.page > 1 ? page.page - 1 : nil, next: page.page < page.pages ? page.page + 1 : nil)
        return library.render(body, withTemplate: "model") ?? ""
    }

    // MARK: Environment page

    struct EnvironmentBody {
        var name: String
        var server: String
        var running: Bool
        var upstream: String?
        var approval: String?
        var planError: String?
        var inSync: Bool
        var hasActions: Bool
        var actions: [Action]
        var canAct: Bool
        var traffic: Traffic?
        var models: [Model]
        var driftError: String?
        var psiLimit: String

        struct Action {
            var kind: String
            var text: String
        }
        struct Traffic {
            var rate: String
            var p99: String
            var errors: String
            var requests: String
            var window: String
        }
        struct Share {
            var chip: String
            var weight: Int?
        }
        struct Drift {
            var rows: Int
            var labels: Int
            var hasAlarms: Bool
            var alarms: [String]
            var chart: String
        }
        struct Model {
            var model: String
            var sync: String
            var health: String
            var serving: [Share]
            var live: String?
            var drift: Drift?
        }
    }

    func environment(_ page: EnvironmentPage, viewer: Viewer) -> String {
        let traffic = page.traffic.map { summary in
            EnvironmentBody.Traffic(
                rate: summary.requestsPerSecond.map { String(format: "%.1f", $0) } ?? "-",
                p99: summary.p99Milliseconds.map { "≤ " + GateResult.format($0) + " ms" } ?? "-",
                errors: summary.errorRate.map { String(format: "%.2f%%", $0 * 100) } ?? "-", requests: String(Int(summary.requests)),
                window: summary.window)
        }
        let models = page.models.map { status in
            let report = page.drift.first { $0.model == status.model }
            return EnvironmentBody.Model(
                model: status.model, sync: status.sync.rawValue, health: status.health.rawValue,
                serving: status.serving.map {
                    EnvironmentBody.Share(
                        chip: chip($0.version, model: status.model, names: page.names), weight: $0.weight == 100 ? nil : $0.weight)
                },
                live: page.live[status.model].flatMap { $0.isEmpty ? nil : Charts.live($0) },
                drift: report.flatMap { report in
                    report.rows == 0
                        ? nil
                        : EnvironmentBody.Drift(
                            rows: report.rows, labels: report.labels, hasAlarms: !report.triggers.isEmpty,
                            alarms: report.triggers.map(\.description),
                            chart: Charts.drift(
                                report.drift + [report.predictionDrift].compactMap { $0 }, threshold: page.psi))
                })
        }
        let body = EnvironmentBody(
            name: page.name, server: page.server, running: page.running, upstream: page.upstream, approval: page.approval,
            planError: page.planError, inSync: page.plan?.inSync ?? false, hasActions: !(page.plan?.actions.isEmpty ?? true),
            actions: (page.plan?.actions ?? []).map { EnvironmentBody.Action(kind: $0.kind.rawValue, text: $0.description) },
            canAct: viewer.canAct, traffic: traffic, models: models, driftError: page.driftError,
            psiLimit: GateResult.format(Charts.psiLimit(page.psi).limit))
        return library.render(body, withTemplate: "environment") ?? ""
    }

    // MARK: Confirmations and notices

    struct Confirm {
        var heading: String
        var summary: String
        var error: String?
        var file: String?
        var branch: String?
        var lines: [Line]
        var message: String?
        var hasPlan: Bool
        var plan: [String]
        var canSubmit: Bool
        var action: String
        var csrf: String
        var fields: [Field]
        var needsReason: Bool
        var button: String
        var back: String

        struct Line {
            var mark: String
            var text: String
        }
        struct Field {
            var name: String
            var value: String
        }
    }

    func confirm(_ confirm: Confirm) -> String { library.render(confirm, withTemplate: "confirm") ?? "" }

    /// A line diff of two small texts (an environment file before and after a pin change): the changed lines between
    /// their common head and tail, with up to three lines of context.
    static func diff(_ before: String, _ after: String) -> [Confirm.Line] {
        let a = before.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let b = after.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var head = 0
        while head < min(a.count, b.count) && a[head] == b[head] { head += 1 }
        var tail = 0
        while tail < min(a.count, b.count) - head && a[a.count - 1 - tail] == b[b.count - 1 - tail] { tail += 1 }
        if head == a.count && head == b.count { return [Confirm.Line(mark: "_", text: "  (no change: already pinned)")] }
        var lines: [Confirm.Line] = []
        for line in a[max(0, head - 3)..<head] { lines.append(Confirm.Line(mark: "_", text: "  " + line)) }
        for line in a[head..<(a.count - tail)] { lines.append(Confirm.Line(mark: "-", text: "- " + line)) }
        for line in b[head..<(b.count - tail)] { lines.append(Confirm.Line(mark: "+", text: "+ " + line)) }
        for line in a[(a.count - tail)..<min(a.count, a.count - tail + 3)] { lines.append(Confirm.Line(mark: "_", text: "  " + line)) }
        return lines
    }

    struct Notice {
        var heading: String
        var lines: [Line]
        var back: String

        struct Line {
            var kind: String
            var text: String
        }
    }

    func notice(_ heading: String, _ lines: [(kind: String, text: String)], back: String = "/") -> String {
        library.render(
            Notice(heading: heading, lines: lines.map { Notice.Line(kind: $0.kind, text: $0.text) }, back: back), withTemplate: "notice")
            ?? ""
    }

    struct Login {
        var error: String?
    }

    func login(error: String?) -> String { library.render(Login(error: error), withTemplate: "login") ?? "" }
}

// The board's parts answer the template's names directly: looking them up by reflection (Mirror) is most of a
// 50-model board's rendering time.
extension Pages.BoardBody: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "commit": commit
        case "branch": branch
        case "columns": columns
        case "rows": rows
        case "canAct": canAct
        default: nil
        }
    }
}

extension Pages.BoardBody.Row: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "model": model
        case "cells": cells
        default: nil
        }
    }
}

extension Pages.BoardBody.Cell: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "environment": environment
        case "model": model
        case "listed": listed
        case "sync": sync
        case "health": health
        case "serving": serving
        case "split": split
        case "desired": desired
        case "shadow": shadow
        case "last": last
        case "promotable": promotable
        case "pending": pending
        case "canRollBack": canRollBack
        case "rollbackTo": rollbackTo
        default: nil
        }
    }
}

extension Pages.BoardBody.Share: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "chip": chip
        case "weight": weight
        default: nil
        }
    }
}

extension Pages.BoardBody.Gate: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "text": text
        case "passed": passed
        default: nil
        }
    }
}

extension Pages.BoardBody.Last: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "outcome": outcome
        case "gates": gates
        default: nil
        }
    }
}

extension Pages.BoardBody.Promotable: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "model": model
        case "environment": environment
        case "short": short
        case "from": from
        case "canAct": canAct
        default: nil
        }
    }
}

extension Pages.BoardBody.Pending: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "model": model
        case "environment": environment
        case "version": version
        case "short": short
        case "count": count
        case "needed": needed
        case "canAct": canAct
        default: nil
        }
    }
}

extension Pages.BoardBody.Column: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "name": self.name
        case "upstream": upstream
        case "server": server
        case "running": running
        case "approval": approval
        case "error": error
        default: nil
        }
    }
}
