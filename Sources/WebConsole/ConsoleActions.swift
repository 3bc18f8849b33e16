import Foundation
import GitStore
import HTTPTypes
import Hummingbird
import Manifests
import NIOCore
import NIOPosix
import Reconciler
import Registry

/// The console's actions. Each shows first what it will do (the diff it will commit, or the plan it will apply) and
/// then does exactly what the command does, through the same Reconciler calls: `Promotion.promote`, `approve`,
/// `reject`, `rollback`, and a reconcile as `stagecraft reconcile --env` runs it. Signed-in users only: anyone else
/// gets 401, a form without the session's CSRF token (or from another origin) 403.
enum ConsoleAction {
    enum Kind: String, CaseIterable, Sendable {
        case promote, approve, reject, rollback, reconcile
    }
}

extension ConsoleServer {
    /// The confirmation page of `kind`, from the query's `model`, `to`/`env` and `version`.
    func confirmation(_ kind: ConsoleAction.Kind, _ request: Request) async -> Response {
        let viewer = self.viewer(request)
        guard viewer.canAct else { return await denied(request, .notSignedIn) }
        let query = Form.parse(request.uri.query ?? "")
        guard (kind == .reconcile || ModelManifest.isValidName(query["model"] ?? "")),
            ModelManifest.isValidName(query["env"] ?? query["to"] ?? "")
        else { return Self.badRequest("a model and an environment are named with 1 to 63 of a-z, 0-9 and '-'") }
        return await html(request) { viewer in
            Rendered(title: "Confirm", body: pages.confirm(try self.confirm(kind, query, viewer: viewer)), live: false)
        }
    }

    func confirm(_ kind: ConsoleAction.Kind, _ query: [String: String], viewer: Viewer) throws -> Pages.Confirm {
        let model = query["model"] ?? ""
        let environment = query["env"] ?? query["to"] ?? ""
        var confirm = Pages.Confirm(
            heading: "", summary: "", error: nil, file: nil, branch: nil, lines: [], message: nil, hasPlan: false, plan: [],
            canSubmit: true, action: "/actions/\(kind.rawValue)", csrf: viewer.csrf ?? "",
            fields: [.init(name: "model", value: model), .init(name: "env", value: environment)], needsReason: false, button: "",
            back: "/")
        func show(_ preview: PinPreview) {
            confirm.file = preview.file
            confirm.branch = preview.branch
            confirm.lines = Pages.diff(preview.before, preview.after)
            confirm.message = preview.message
            confirm.fields.append(.init(name: "version", value: preview.version))
        }
        do {
            switch kind {
            case .promote:
                confirm.heading = "Promote \(model) to \(environment)"
                confirm.button = "Commit the promotion"
                let preview = try site.promotion.previewPromotion(
                    model: model, to: environment, version: query["version"].flatMap { $0.isEmpty ? nil : $0 }, force: false)
                confirm.summary =
                    "\(VersionDigest.short(preview.version)) from \(preview.from), as \(viewer.user?.description ?? "")."
                    + (preview.pending ? " \(environment) asks for approval: the commit waits on its own branch." : "")
                show(preview)
            case .rollback:
                confirm.heading = "Roll back \(model) in \(environment)"
                confirm.button = "Commit the rollback"
                let preview = try site.promotion.previewRollback(model: model, environment: environment)
                confirm.summary = "Pin \(VersionDigest.short(preview.version)), the version that passed there before."
                show(preview)
            case .approve, .reject:
                let pending = try self.pending(model: model, environment: environment, version: query["version"])
                let repository = site.workspace.repository
                let path = Workspace.environmentFile(environment)
                let base = try repository.resolve(site.workspace.settings.branch)
                let before = String(decoding: try repository.fileIfPresent(at: path, in: base) ?? Data(), as: UTF8.self)
                let promoted = ObjectID(hex: pending.promotion).flatMap { try? repository.fileIfPresent(at: path, in: $0) }
                confirm.file = path
                confirm.branch = site.workspace.settings.branch
                confirm.lines = Pages.diff(before, promoted.map { String(decoding: $0, as: UTF8.self) } ?? before)
                confirm.fields.append(.init(name: "version", value: pending.version))
                confirm.summary =
                    "\(VersionDigest.short(pending.version)) promoted by \(pending.promoter); "
                    + "\(pending.approvals.count) of \(pending.needed) "
                    + "approval(s) so far."
                if kind == .approve {
                    confirm.heading = "Approve \(model) for \(environment)"
                    confirm.button = "Approve as \(viewer.user?.description ?? "")"
                    confirm.summary += " The last approval needed commits the pin on \(site.workspace.settings.branch)."
                } else {
                    confirm.heading = "Reject \(model) for \(environment)"
                    confirm.button = "Reject"
                    confirm.needsReason = true
                    confirm.branch = pending.branch
                    confirm.file = nil
                }
            case .reconcile:
                confirm.heading = "Reconcile \(environment) now"
                confirm.button = "Reconcile \(environment)"
                let plan = try site.reconciler(environment, at: try site.workspace.repository.resolve(site.ref)).plan()
                confirm.plan = plan.actions.map(\.description)
                confirm.hasPlan = !plan.actions.isEmpty
                confirm.summary =
                    plan.inSync ? "\(environment) is in sync: a reconcile would do nothing." : "A reconcile would do this, in order:"
            }
        } catch {
            confirm.error = Self.message(error)
            confirm.canSubmit = false
        }
        confirm.fields.removeAll { $0.value.isEmpty }
        return confirm
    }

    func pending(model: String, environment: String, version: String?) throws -> PendingPromotion {
        let waiting = try site.promotion.pendingPromotions(environment: environment, model: model)
            .filter { version == nil || version!.isEmpty || $0.version.hasPrefix(version!) }
        guard let pending = waiting.first else {
            throw ReconcileError(.refused, "no promotion of '\(model)' to '\(environment)' waits for approval")
        }
        return pending
    }

    /// Does `kind` for the signed-in user of the request.
    func act(_ kind: ConsoleAction.Kind, _ request: Request) async -> Response {
        guard Self.sameOrigin(request) else { return await denied(request, .forbidden("the form was sent from another site")) }
        let form = await Self.form(request)
        let session: ConsoleAccess.Session
        switch access.authorize(cookie: request.cookies[ConsoleAccess.cookie]?.value, csrf: form["csrf"]) {
        case .failure(let denial): return await denied(request, denial)
        case .success(let found): session = found
        }
        let user = session.user
        let model = form["model"] ?? ""
        let environment = form["env"] ?? ""
        guard (kind == .reconcile || ModelManifest.isValidName(model)) && ModelManifest.isValidName(environment) else {
            return Self.badRequest("a model and an environment are named with 1 to 63 of a-z, 0-9 and '-'")
        }
        let version = form["version"].flatMap { $0.isEmpty ? nil : $0 }
        let viewer = Viewer(user: user, csrf: session.csrf)
        let back = "/"
        do {
            let lines = try await NIOThreadPool.singleton.runIfActive { () throws -> [(kind: String, text: String)] in
                let promotion = site.promotion
                switch kind {
                case .promote:
                    let result = try promotion.promote(
                        model: model, to: environment, version: version, force: false, branch: nil, author: user.signature)
                    return Self.lines(result, verb: "Promoted")
                case .rollback:
                    // The version the confirmation showed, even if another passed there meanwhile.
                    let result = try promotion.rollback(
                        model: model, environment: environment, to: version.flatMap { site.workspace.digest($0) ?? $0 }, branch: nil,
                        author: user.signature)
                    return Self.lines(result, verb: "Rolled back")
                case .approve:
                    let result = try promotion.approve(model: model, environment: environment, version: version, approver: user.signature)
                    let short = VersionDigest.short(result.pending.version)
                    if let merged = result.merged {
                        return [
                            (
                                "ok",
                                "✓ Approved \(model) \(short) for \(environment) as \(result.approver): commit \(merged.prefix(12)) "
                                    + "on \(result.branch)."
                            ),
                            ("", "Next: reconcile \(environment)."),
                        ]
                    }
                    return [
                        (
                            "ok",
                            "✓ Approved \(model) \(short) for \(environment): \(result.pending.approvals.count) of "
                                + "\(result.pending.needed)."
                        )
                    ]
                case .reject:
                    let reason = (form["reason"] ?? "").replacingOccurrences(of: "\n", with: " ")
                        .trimmingCharacters(in: .whitespacesAndNewlines)
                    guard !reason.isEmpty else { throw ReconcileError(.refused, "give a reason for the rejection") }
                    let pending = try promotion.reject(
                        model: model, environment: environment, version: version, by: user.signature, reason: reason)
                    return [("ok", "✓ Rejected \(model) \(VersionDigest.short(pending.version)) for \(environment): \(reason)")]
                case .reconcile:
                    let report = try reconcile(environment, user)
                    var lines: [(kind: String, text: String)] = [
                        report.failed
                            ? ("bad", "✗ Reconcile of \(environment) failed; what served before still serves.")
                            : (
                                "ok",
                                report.wasInSync
                                    ? "✓ \(environment) was in sync." : "✓ Reconciled \(environment) at \(report.commit.prefix(12))."
                            )
                    ]
                    for record in report.records {
                        lines.append(
                            (record.outcome == .succeeded ? "" : "bad",
                                "\(record.model) \(VersionDigest.short(record.version)) \(record.outcome.rawValue)"
                                    + (record.reason.map { ": \($0)" } ?? "")))
                    }
                    return lines
                }
            }
            return await document(request, status: .ok, title: "Done", body: pages.notice("Done", lines, back: back), viewer: viewer)
        } catch {
            // Refused (the CLI's refusals) or another reconcile holding the environment: the request conflicts with the
            // state; anything else is the server's failure.
            let code = (error as? ReconcileError)?.code
            let status: HTTPResponse.Status = code == .refused || code == .locked ? .conflict : .internalServerError
            return await document(
                request, status: status, title: "Not done", body: pages.notice("Not done", [("bad", Self.message(error))], back: back),
                viewer: viewer)
        }
    }

    static func badRequest(_ message: String) -> Response {
        Response(
            status: .badRequest, headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: message + "\n")))
    }

    static func lines(_ result: PromotionResult, verb: String) -> [(kind: String, text: String)] {
        let short = VersionDigest.short(result.version)
        if result.alreadyPinned {
            return [("ok", "✓ \(result.model) \(short) is already pinned in \(result.environment); nothing to commit.")]
        }
        if result.pending {
            return [
                (
                    "ok",
                    "✓ \(verb) \(result.model) \(short) to \(result.environment), waiting for approval: commit "
                        + "\(result.commit.prefix(12)) on \(result.branch)."
                ),
                ("", "Evidence: \(result.evidence)"),
                ("", "Next: an approver of \(result.environment) approves it."),
            ]
        }
        return [
            (
                "ok",
                "✓ \(verb) \(result.model) \(short) in \(result.environment): commit \(result.commit.prefix(12)) on \(result.branch)."
            ),
            ("", "Evidence: \(result.evidence)"),
            ("", "Next: reconcile \(result.environment)."),
        ]
    }

    /// A form posted from the console's own pages: `Sec-Fetch-Site` (when the browser sends it) is same-origin, and
    /// `Origin` (when sent) names the host the request was sent to.
    static func sameOrigin(_ request: Request) -> Bool {
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!], site != "same-origin", site != "none" { return false }
        if let origin = request.headers[.origin] {
            guard let host = request.head.authority ?? request.headers[HTTPField.Name("Host")!] else { return false }
            return origin == "http://\(host)" || origin == "https://\(host)"
        }
        return true
    }
}
