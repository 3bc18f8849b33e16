import ArgumentParser
import Foundation
import GitStore
import Manifests
import Reconciler
import Registry

struct ApproveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve",
        abstract: "Approve a promotion waiting for approval (an environment with spec.approval).",
        discussion: """
            A promotion to an environment whose file says
            'approval: {required: true, approvers: [...], count: N}' is committed on
            a branch of its own, stagecraft/promote/<env>/<model>/<version>. Each
            approver other than the promoter (by git identity: user.email) approves
            it; the last approval needed commits the pin on the project branch, with
            the promotion's trailers plus Stagecraft-Promoted-By and one
            Stagecraft-Approved-By per approval. reconcile refuses a pin without them.
            Without MODEL, lists what waits in ENV.

            Examples:
              stagecraft approve --env prod
              stagecraft approve breast-cancer --env prod
              stagecraft approve penguins --env prod --version 3f2a9c1e5b7d
            """
    )

    @Argument(help: "The model whose promotion to approve; none lists what waits.", transform: Name.model)
    var model: String?

    @Option(name: .long, help: "The environment promoted into.", transform: Name.environment)
    var env: String

    @Option(name: .long, help: "The version, when several promotions of the model wait.")
    var version: String?

    @OptionGroup var repository: RepositoryOptions
    @OptionGroup var format: OutputOptions

    func run() async throws {
        let console = Console.current
        let repo = try repository.open()
        let workspace = try Workspace(repository: repo, toolVersion: Stagecraft.version, ref: repository.ref)
        let promotion = Promotion(workspace: workspace, state: try workspace.openState(notice: console.warn))
        guard let model else {
            let waiting = try promotion.pendingPromotions(environment: env)
            if format.json {
                console.print(try JSONOutput.encode(waiting))
            } else if waiting.isEmpty {
                console.print("no promotion to \(env) waits for approval")
            } else {
                for pending in waiting {
                    console.print(
                        "\(pending.model) \(VersionDigest.short(pending.version)) promoted by \(pending.promoter): "
                            + "\(pending.approvals.count) of \(pending.needed) approval(s)"
                            + (pending.approvals.isEmpty ? "" : " (\(pending.approvals.joined(separator: ", ")))")
                            + " on \(pending.branch)")
                }
            }
            return
        }
        let result = try promotion.approve(model: model, environment: env, version: version, approver: workspace.actor)
        if format.json {
            console.print(try JSONOutput.encode(result))
            return
        }
        let short = VersionDigest.short(result.pending.version)
        if let merged = result.merged {
            console.print(
                console.styled("✓", .green) + " approved \(model) \(short) for \(env) as \(result.approver): commit "
                    + "\(merged.prefix(12)) on \(result.branch) (promoted by \(result.pending.promoter))")
            console.print("  next: stagecraft reconcile --env \(env)")
        } else {
            let left = result.pending.needed - result.pending.approvals.count
            console.print(
                console.styled("✓", .green) + " approved \(model) \(short) for \(env) as \(result.approver): "
                    + "\(result.pending.approvals.count) of \(result.pending.needed); \(left) more needed")
        }
    }
}

struct RejectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reject",
        abstract: "Close a promotion waiting for approval, with a reason.",
        discussion: """
            Commits who rejected it and why on its branch, keeps that under
            refs/stagecraft/rejected/, and deletes the branch. An approver of the
            environment, or the promoter, may reject.

            Examples:
              stagecraft reject breast-cancer --env prod --reason "recall dropped on the March cohort"
            """
    )

    @Argument(help: "The model whose promotion to reject.", transform: Name.model)
    var model: String

    @Option(name: .long, help: "The environment promoted into.", transform: Name.environment)
    var env: String

    @Option(name: .long, help: "Why (kept in the commit).")
    var reason: String

    @Option(name: .long, help: "The version, when several promotions of the model wait.")
    var version: String?

    @OptionGroup var repository: RepositoryOptions

    func validate() throws {
        if reason.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw ValidationError("--reason is empty: say why") }
    }

    func run() async throws {
        let console = Console.current
        let repo = try repository.open()
        let workspace = try Workspace(repository: repo, toolVersion: Stagecraft.version, ref: repository.ref)
        let promotion = Promotion(workspace: workspace, state: try workspace.openState(notice: console.warn))
        let pending = try promotion.reject(
            model: model, environment: env, version: version, by: workspace.actor, reason: reason.replacingOccurrences(of: "\n", with: " "))
        console.print(
            console.styled("✓", .green) + " rejected \(model) \(VersionDigest.short(pending.version)) for \(env) (promoted by "
                + "\(pending.promoter)): \(reason)")
    }
}
