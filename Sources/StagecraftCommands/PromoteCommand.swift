import ArgumentParser
import Foundation
import GitStore
import Manifests
import Reconciler
import Registry

struct PromoteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "Promote a model version into an environment by a commit.",
        discussion: """
            Changes only the version and source of MODEL in environments/<env>.yaml
            (every other byte and comment stays) and commits on the project branch,
            with trailers carrying the evidence (Stagecraft-Model, -Version, -Source,
            -From, -To, -Evidence). The version defaults to what the upstream
            environment serves; a version whose verification there is missing or
            failed is refused unless --force, which is recorded. Then run
            'stagecraft reconcile --env ENV' (or let CI do it).

            Examples:
              stagecraft promote breast-cancer --to qa
              stagecraft promote penguins --to prod --branch promote-penguins
              stagecraft promote penguins --to qa --version 3f2a9c1e5b7d --force
            """
    )

    @Argument(help: "The model to promote.", transform: Name.model)
    var model: String

    @Option(name: .long, help: "The environment to promote into.", transform: Name.environment)
    var to: String

    @Option(name: .long, help: "The version (digest, at least 12 hex digits, or @alias); default: what the upstream serves.")
    var version: String?

    @Flag(name: .long, help: "Promote even without a passed verification upstream (recorded in a Stagecraft-Forced trailer).")
    var force = false

    @OptionGroup var publishing: PublishingOptions

    func run() async throws {
        var pinned = version
        try publishing.commit(verb: "promoted") { promotion, author in
            if let alias = pinned, alias.hasPrefix("@") {
                pinned = try VersionReference.resolve(alias, model: model, workspace: promotion.workspace, state: promotion.state)
            }
            let result = try promotion.promote(
                model: model, to: to, version: pinned, force: force, branch: publishing.branch, author: author)
            pinned = result.version  // a retry after a lost push race promotes the same version
            return result
        }
    }
}

struct RollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Pin the version that passed in an environment before the one it serves, by a commit.",
        discussion: """
            Finds, in the environment's deployment records, the last version that
            passed there other than the one serving, and commits it as the pin (a
            Stagecraft-Rollback-Of trailer names the version taken out; a track
            environment does not promote that version again). Then reconcile.

            Examples:
              stagecraft rollback breast-cancer --env qa
              stagecraft rollback penguins --env prod && stagecraft reconcile --env prod
            """
    )

    @Argument(help: "The model to roll back.", transform: Name.model)
    var model: String

    @Option(name: .long, help: "The environment.", transform: Name.environment)
    var env: String

    @Option(name: .long, help: "Roll back to this version (digest, @alias or a deployment record's id), which passed there.")
    var to: String?

    @OptionGroup var publishing: PublishingOptions

    func run() async throws {
        try publishing.commit(verb: "rolled back") { promotion, author in
            let target = try to.map {
                try VersionReference.resolve($0, model: model, workspace: promotion.workspace, state: promotion.state)
            }
            return try promotion.rollback(model: model, environment: env, to: target, branch: publishing.branch, author: author)
        }
    }
}

/// `--branch`, `--push`, `--repo`, `--ref` and `--output` of the commands that change pins by a commit, and how they
/// run: make the commit, push it (making it again on top of the remote when the push lost a race), print it.
struct PublishingOptions: ParsableArguments {
    @Option(name: .long, help: "Commit on this branch (created from the project branch) instead, for a pull request.")
    var branch: String?

    @Flag(name: .long, help: "Push the branch to its remote (origin) afterwards, retrying when someone else pushed first.")
    var push = false

    @OptionGroup var repository: RepositoryOptions
    @OptionGroup var format: OutputOptions

    func commit(verb: String, _ change: (Promotion, Signature) throws -> PromotionResult) throws {
        let repo = try repository.open()
        let workspace = try Workspace(repository: repo, toolVersion: Stagecraft.version, ref: repository.ref)
        let state = try workspace.openState(notice: Console.current.warn)
        // Pushing to a shared remote: the upstream's verification may have been recorded on another host; its
        // records come with the remote's notes.
        if push, let url = try repo.remoteURL("origin") {
            _ = try workspace.importRemoteRecords(from: url, into: state)
        }
        let promotion = Promotion(workspace: workspace, state: state)
        var result = try change(promotion, workspace.actor)
        if push { result = try Publisher(workspace: workspace).push(result) { try change(promotion, workspace.actor) } }
        try Self.print(result, json: format.json, verb: verb)
    }

    static func print(_ result: PromotionResult, json: Bool, verb: String) throws {
        let console = Console.current
        if json {
            console.print(try JSONOutput.encode(result))
            return
        }
        if result.alreadyPinned {
            console.print(
                console.styled("✓", .green) + " \(result.model) \(VersionDigest.short(result.version)) is already pinned in "
                    + "\(result.environment) at \(result.commit.prefix(12)) on \(result.branch); nothing to commit")
            return
        }
        let forced = result.forced ? console.styled(" (forced)", .yellow) : ""
        if result.pending {
            console.print(
                console.styled("✓", .green) + " \(verb) \(result.model) \(VersionDigest.short(result.version)) to "
                    + "\(result.environment)\(forced), waiting for approval: commit \(result.commit.prefix(12)) on \(result.branch)")
            console.print("  evidence: \(result.evidence)")
            console.print(
                "  next: an approver of \(result.environment) runs: stagecraft approve \(result.model) --env \(result.environment)")
            return
        }
        console.print(
            console.styled("✓", .green) + " \(verb) \(result.model) \(VersionDigest.short(result.version)) in "
                + "\(result.environment)\(forced): commit \(result.commit.prefix(12)) on \(result.branch)")
        console.print("  evidence: \(result.evidence)")
        console.print("  next: stagecraft reconcile --env \(result.environment)")
    }
}

/// Pushes a promotion's branch to `origin`; when the remote moved on (another promotion landed first), fetches
/// it, re-applies the same edit on top and tries again.
struct Publisher {
    let workspace: Workspace

    /// Returns the promotion as it landed on the remote.
    func push(_ result: PromotionResult, reapply: () throws -> PromotionResult) throws -> PromotionResult {
        let repository = workspace.repository
        guard let url = try repository.remoteURL("origin") else {
            throw CommandFailure(.failure, "--push: the repository has no remote 'origin'")
        }
        let branch = result.branch
        var landed = result
        var attempt = 1
        while true {
            let refused: GitError
            do {
                try repository.push(to: url, refspecs: ["refs/heads/\(branch):refs/heads/\(branch)"])
                return landed
            } catch {
                refused = error
            }
            guard refused.code == .conflict, attempt < 5 else { throw refused }
            attempt += 1
            // Someone else pushed first: take their branch and re-apply the same change on top of it.
            try repository.fetch(from: url, refspecs: ["+refs/heads/\(branch):refs/remotes/origin/\(branch)"])
            guard let theirs = try repository.resolveIfPresent("refs/remotes/origin/\(branch)") else { throw refused }
            try repository.resetBranch(branch, to: theirs)
            landed = try reapply()
        }
    }
}

struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Who shipped what, when, on what evidence: environment changes joined with deployments.",
        discussion: """
            Lists every commit that changed an environment file (author, trailers)
            with the deployment records it led to (outcome, gate values, actor) and
            the time from commit to serving. Records come from .stagecraft/state.db,
            or from refs/notes/stagecraft when the state store is gone.

            Examples:
              stagecraft history
              stagecraft history --env prod --model penguins
              stagecraft history --since 2026-11-01 --output json
            """
    )

    @Option(name: .long, help: "Only this environment.", transform: Name.environment)
    var env: String?

    @Option(name: .long, help: "Only this model.", transform: Name.model)
    var model: String?

    @Option(name: .long, help: ArgumentHelp("Only changes since this date (YYYY-MM-DD or ISO 8601).", valueName: "date"))
    var since: String?

    @OptionGroup var repository: RepositoryOptions
    @OptionGroup var format: OutputOptions

    func validate() throws {
        if let since, Self.date(since) == nil { throw ValidationError("--since: '\(since)' is not a date such as 2026-11-01") }
    }

    static func date(_ text: String) -> Date? {
        if let date = Timestamp.date(text) { return date }
        if let date = try? Date(text, strategy: .iso8601) { return date }
        return try? Date(text + "T00:00:00Z", strategy: .iso8601)
    }

    func run() async throws {
        let console = Console.current
        let repo = try repository.openOrFetch()
        let workspace = try Workspace(repository: repo, toolVersion: Stagecraft.version, ref: repository.ref)
        let environments: [String]
        if let env {
            environments = [env]
        } else {
            environments = try workspace.environmentNames(at: try repo.resolve(repository.ref))
        }
        if let model {
            let models =
                try GitProjectSource(repository: repo, ref: repository.ref).fileNames(in: Project.manifestsFolder)?
                .filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted() ?? []
            guard models.contains(model) else {
                throw CommandFailure(
                    .failure,
                    "no model '\(model)'\(Spelling.didYouMean(model, among: models)) (models: "
                        + "\(models.isEmpty ? "none" : models.joined(separator: ", ")))")
            }
        }
        let history = History(workspace: workspace, state: try workspace.openState(notice: Console.current.warn))
        let entries = try history.entries(environments: environments, model: model, since: since.flatMap(Self.date), ref: repository.ref)
        if format.json {
            console.print(try JSONOutput.encode(entries))
            return
        }
        // One write for the whole listing: thousands of entries print in one system call.
        var text = ""
        for entry in entries {
            text +=
                console.styled(String(entry.commit.prefix(12)), .yellow) + " \(entry.environment)  \(Timestamp.string(entry.date))  "
                + "\(entry.author) <\(entry.authorEmail)>\n"
            text += "    \(entry.summary)\n"
            for trailer in entry.trailers
            where [
                "Stagecraft-Evidence", "Stagecraft-Forced", "Stagecraft-Rollback-Of", "Stagecraft-Trigger", "Stagecraft-Promoted-By",
                "Stagecraft-Approved-By",
            ].contains(trailer.key) {
                text += "    \(trailer.key): \(trailer.value)\n"
            }
            for record in entry.records {
                let gates = record.gates.map { "\($0.gate) [\($0.valueText)]\($0.passed ? "" : " FAILED")" }.joined(separator: ", ")
                text +=
                    "    → \(record.outcome.rawValue) \(record.model) \(VersionDigest.short(record.version))"
                    + (record.target.map { " on \($0)" } ?? "") + " by \(record.actor) at "
                    + "\(Timestamp.string(record.finishedAt ?? record.startedAt))" + (gates.isEmpty ? "" : ": \(gates)") + "\n"
                if let reason = record.reason, record.outcome != .succeeded { text += "      \(reason)\n" }
            }
            if let seconds = entry.commitToServingSeconds { text += "    commit to serving: \(String(format: "%.1f", seconds)) s\n" }
        }
        if !text.isEmpty { console.write(text, error: false) }
        if entries.isEmpty {
            console.print(
                "no changes to \(environments.map { "environments/\($0).yaml" }.joined(separator: ", ")) at "
                    + "\(repository.ref)")
        }
    }
}
