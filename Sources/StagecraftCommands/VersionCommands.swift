import ArgumentParser
import Foundation
import GitStore
import Manifests
import Reconciler
import Registry

/// A version as the command line names it: a digest (or a prefix of at least 12 hex digits), `@alias`, or a
/// deployment record's id.
enum VersionReference {
    /// The full digest `text` names, for `model` when known.
    static func resolve(_ text: String, model: String?, workspace: Workspace, state: (any StateStore)?) throws -> String {
        if text.hasPrefix("@") {
            let alias = String(text.dropFirst())
            let all = try VersionAliases.all(in: workspace.repository).filter { $0.alias == alias && (model == nil || $0.model == model) }
            guard all.count == 1 else {
                let known = try VersionAliases.all(in: workspace.repository).filter { model == nil || $0.model == model }
                    .map { "@\($0.alias)" + (model == nil ? " (\($0.model))" : "") }
                if all.count > 1 {
                    throw CommandFailure(
                        .failure,
                        "@\(alias) names versions of several models (\(all.map(\.model).joined(separator: ", "))); say which model")
                }
                let of = model.map { " of '\($0)'" } ?? ""
                let aliases = known.isEmpty ? "none" : known.joined(separator: ", ")
                throw CommandFailure(
                    .failure, "no alias @\(alias)\(of) (aliases: \(aliases)); name a version with: stagecraft tag VERSION \(alias)")
            }
            return all[0].digest
        }
        let hex = text.unicodeScalars.allSatisfy { ("0"..."9").contains($0) || ("a"..."f").contains($0) }
        if hex, text.count >= 12 {
            if let digest = workspace.artifacts.resolve(text) { return digest }
            if let record = try state?.records(environment: nil, model: model).last(where: { $0.version.hasPrefix(text) }) {
                return record.version
            }
            throw CommandFailure(.failure, "no version \(text)\(model.map { " of '\($0)'" } ?? "") in the artifact store or the records")
        }
        if let state, let record = try state.records(environment: nil, model: model).first(where: { $0.id == text }) {
            return record.version
        }
        throw CommandFailure(
            .usage, "'\(text.prefix(80))' is not a version: give a digest (12 or more hex digits), @alias, or a deployment record's id")
    }
}

struct TagCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tag",
        abstract: "Give a version a human name (an alias), usable wherever a version is: @name.",
        discussion: """
            Writes an annotated git tag stagecraft/<model>/<alias> on the version's
            source commit, its message carrying the digest: the alias travels with the
            repository (push tags to share it). Then promote --version @champion,
            rollback --to @champion, diff @champion @challenger.
            Without arguments, lists the aliases.

            Examples:
              stagecraft tag b35c54cc93bb champion
              stagecraft tag @challenger champion --force
              stagecraft tag
            """
    )

    @Argument(help: "The version (a digest prefix of 12+ hex digits, or @alias).")
    var version: String?

    @Argument(help: "The alias: 1 to 63 of a-z, 0-9, '.', '_' and '-'.")
    var alias: String?

    @Flag(name: .long, help: "Move the alias when it names another version.")
    var force = false

    @OptionGroup var repository: RepositoryOptions
    @OptionGroup var format: OutputOptions

    func validate() throws {
        if version != nil && alias == nil { throw ValidationError("give the alias too: stagecraft tag VERSION ALIAS") }
        if let alias, !VersionAliases.isValid(alias) {
            throw ValidationError("'\(alias.prefix(80))' is not an alias: 1 to 63 of a-z, 0-9, '.', '_' and '-', a letter or digit first")
        }
    }

    func run() async throws {
        let console = Console.current
        let repo = try repository.open()
        let workspace = try Workspace(repository: repo, toolVersion: Stagecraft.version, ref: repository.ref)
        guard let version, let alias else {
            let all = try VersionAliases.all(in: repo)
            if format.json {
                struct Alias: Encodable {
                    var model: String
                    var alias: String
                    var version: String
                }
                console.print(try JSONOutput.encode(all.map { Alias(model: $0.model, alias: $0.alias, version: $0.digest) }))
            } else if all.isEmpty {
                console.print("no aliases; name a version with: stagecraft tag VERSION ALIAS")
            } else {
                for line in table(
                    [["MODEL", "ALIAS", "VERSION"]] + all.map { [$0.model, "@" + $0.alias, VersionDigest.short($0.digest)] })
                {
                    console.print(line)
                }
            }
            return
        }
        let state = try? workspace.openState(notice: console.warn)
        let digest = try VersionReference.resolve(version, model: nil, workspace: workspace, state: state)
        let build = try workspace.artifacts.buildInfo(digest)
        try VersionAliases.tag(build, as: alias, in: repo, by: workspace.actor, force: force)
        console.print(
            console.styled("✓", .green) + " @\(alias) is \(build.model) \(VersionDigest.short(digest)) (tag "
                + "\(VersionAliases.tagName(model: build.model, alias: alias)) on \(build.source.prefix(12)))")
    }
}

struct DiffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare: an environment's file with what serves, two environments, or two versions.",
        discussion: """
            diff --env qa               environments/qa.yaml at --ref against what serves in qa
            diff --env qa --env prod    the two environments side by side: versions, traffic, gates
            diff VERSION VERSION        two builds: spec, parameters, data hashes, holdout metrics,
                                        and the environments that run each (digests, @aliases)
            Lines that differ are marked with ≠.
            Exit status: 0 equal, 1 different (as diff), 64 usage.

            Examples:
              stagecraft diff --env prod
              stagecraft diff --env qa --env prod
              stagecraft diff @champion b35c54cc93bb
            """
    )

    @Argument(help: "Two versions to compare.")
    var versions: [String] = []

    @Option(name: .long, help: "An environment (once: its file against what serves; twice: the two side by side).")
    var env: [String] = []

    @OptionGroup var repository: RepositoryOptions
    @OptionGroup var format: OutputOptions

    func validate() throws {
        for name in env { _ = try Name.environment(name) }
        switch (versions.count, env.count) {
        case (2, 0), (0, 1), (0, 2): return
        default: throw ValidationError("expected --env ENV, --env ENV --env ENV, or VERSION VERSION")
        }
    }

    typealias Row = DiffTable.Row
    typealias Output = DiffTable

    func run() async throws {
        let repo = try repository.openOrFetch()
        let workspace = try Workspace(repository: repo, toolVersion: Stagecraft.version, ref: repository.ref)
        let state = try workspace.openState(notice: Console.current.warn)
        let commit = try repo.resolve(repository.ref)
        let output: Output
        if versions.count == 2 {
            output = try Self.builds(versions[0], versions[1], workspace: workspace, state: state, commit: commit)
        } else if env.count == 2 {
            output = try Self.environments(env[0], env[1], workspace: workspace, commit: commit)
        } else {
            output = try Self.serving(env[0], workspace: workspace, state: state, commit: commit)
        }
        try Self.print(output, json: format.json)
        if !output.equal { throw CommandFailure(.failure) }
    }

    static func print(_ output: Output, json: Bool) throws {
        let console = Console.current
        if json {
            console.print(try JSONOutput.encode(output))
            return
        }
        console.print("--- \(output.left)")
        console.print("+++ \(output.right)")
        let lines = table(output.rows.map { [$0.field, $0.left, $0.right] })
        for (row, line) in zip(output.rows, lines) {
            console.print(row.differs ? console.styled("≠ " + line, .yellow) : "  " + line)
        }
        if output.equal { console.print("no difference") }
    }

    /// `X`, or `X 90%, Y 10%`, with ` shadow Z`; `-` for nothing.
    static func text(_ route: ServerState.Route?) -> String {
        guard let route else { return "-" }
        var text =
            route.traffic.map { $0.map { "\(VersionDigest.short($0.version)) \($0.weight)%" }.joined(separator: ", ") }
            ?? VersionDigest.short(route.defaultVersion)
        if let shadow = route.shadow { text += " shadow \(VersionDigest.short(shadow))" }
        return text
    }

    static func rows(_ fields: [(String, String, String)]) -> [Row] { DiffTable.rows(fields) }

    /// The environment file against what serves.
    static func serving(_ name: String, workspace: Workspace, state: any StateStore, commit: ObjectID) throws -> Output {
        let reconciler = try EnvironmentReconciler(workspace: workspace, state: state, environment: name, ref: commit.hex) { _, _ in }
        let manifest = try reconciler.environmentFile(at: commit)
        let running = reconciler.serverIsLive()
        let actual = running ? try reconciler.seams.target.state() : Planner.expectedAfterStart(try state.served(environment: name))
        let models = manifest.models.map { $0.model } + actual.routes.keys.sorted().filter { manifest.deployment($0) == nil }
        let fields = models.map { model in
            let desired = manifest.deployment(model).flatMap { deployment in
                workspace.route(deployment) ?? deployment.version.map { ServerState.Route(defaultVersion: $0, traffic: nil, shadow: nil) }
            }
            return (model, text(desired), text(actual.routes[model]))
        }
        let file = "\(manifest.file) at \(commit.short)"
        let serving = "serving in \(name) (\(manifest.host):\(manifest.port), \(running ? "running" : "not running: as recorded"))"
        let rows = rows(fields)
        return Output(left: file, right: serving, rows: rows, equal: !rows.contains { $0.differs })
    }

    /// Two environments side by side.
    static func environments(_ first: String, _ second: String, workspace: Workspace, commit: ObjectID) throws -> Output {
        let a = try workspace.environment(first, at: commit)
        let b = try workspace.environment(second, at: commit)
        let models = a.models.map { $0.model } + b.models.map { $0.model }.filter { a.deployment($0) == nil }
        var fields: [(String, String, String)] = []
        for model in models {
            func pinned(_ environment: EnvironmentManifest) -> String {
                guard let deployment = environment.deployment(model) else { return "(absent)" }
                return text(Planner.pinnedRoute(deployment))
            }
            func gates(_ environment: EnvironmentManifest) -> String {
                environment.deployment(model) == nil
                    ? "-" : environment.gates(for: model).map(\.description).sorted().joined(separator: ", ")
            }
            fields.append((model, pinned(a), pinned(b)))
            fields.append(("\(model) gates", gates(a), gates(b)))
        }
        let rows = rows(fields)
        return Output(
            left: "\(first) (\(a.file) at \(commit.short))", right: "\(second) (\(b.file))", rows: rows,
            equal: !rows.contains { $0.differs })
    }

    /// Two builds.
    static func builds(_ first: String, _ second: String, workspace: Workspace, state: any StateStore, commit: ObjectID) throws
        -> Output
    {
        let a = try workspace.artifacts.buildInfo(try VersionReference.resolve(first, model: nil, workspace: workspace, state: state))
        let b = try workspace.artifacts.buildInfo(try VersionReference.resolve(second, model: nil, workspace: workspace, state: state))
        return try DiffTable.builds(a, b, workspace: workspace, state: state, commit: commit)
    }
}
