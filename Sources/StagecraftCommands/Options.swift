import ArgumentParser
import Foundation
import GitStore
import Manifests

/// `--repo` and `--ref`: which repository, at which revision.
struct RepositoryOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The GitOps repository (a work tree or a bare repository).", valueName: "path"))
    var repo: String = "."

    @Option(name: .long, help: ArgumentHelp("The branch, tag or commit to read the files at.", valueName: "ref"))
    var ref: String = "HEAD"

    func open() throws -> Repository {
        let opened: Result<Repository, GitError> = Result { () throws(GitError) in try Repository.open(at: repo) }
        if case .failure(let error) = opened, error.code == .notFound, !isURL {
            throw CommandFailure(
                .failure, "not a git repository: \(repo == "." ? "this folder" : repo); run `stagecraft init` or pass `--repo`")
        }
        return try opened.get()
    }

    /// Whether `--repo` names a remote (`https://…`, `ssh://…`, `file://…`, `git@host:…`) rather than a folder.
    var isURL: Bool { repo.contains("://") || (repo.contains("@") && repo.contains(":")) }

    /// Opens `--repo`; a URL is first fetched into a bare cache under `.stagecraft/repos/` of the current folder.
    func openOrFetch() throws -> Repository {
        guard isURL else { return try open() }
        return try Repository.mirror(repo, into: cachePath)
    }

    /// Fetches `--repo` into its cache again when it is a URL, so that what was pushed since is seen; nothing for a
    /// folder.
    func refresh() throws {
        guard isURL else { return }
        _ = try Repository.mirror(repo, into: cachePath)
    }

    /// After a reconcile of a URL `--repo`: pushes back what it wrote to git, so that every host sees it. First the
    /// branch holding a `track` environment's promotion commits (when the remote's branch moved on meanwhile, the push
    /// is refused and the next round, on the fetched branch, promotes again on top of it); then the deployment notes,
    /// merged with the remote's and pushed again when another host pushed notes first. Nothing for a folder.
    /// - Returns: what did not go back, for a warning (it is tried again after the next reconcile).
    func publish(promotionsOn branch: String?) -> [String] {
        guard isURL else { return [] }
        var problems: [String] = []
        do {
            let repository = try Repository.open(at: cachePath)
            if let branch {
                do {
                    try repository.push(to: repo, refspecs: ["refs/heads/\(branch):refs/heads/\(branch)"])
                } catch  where error.code == .conflict {
                    problems.append(
                        "the remote's \(branch) moved on, so this promotion was not pushed: the next round promotes on top of it")
                }
            }
            guard try repository.resolveIfPresent(Repository.stagecraftNotes) != nil else { return problems }
            let notes = "\(Repository.stagecraftNotes):\(Repository.stagecraftNotes)"
            for attempt in 1...5 {
                do {
                    try repository.push(to: repo, refspecs: [notes])
                    return problems
                } catch  where error.code == .conflict && attempt < 5 {
                    // Another host pushed records first: take theirs, keep ours, push the union.
                    try repository.takeNotes(from: repo)
                }
            }
        } catch {
            problems.append("cannot push the records to \(repo): \(error)")
        }
        return problems
    }

    /// The bare cache of a URL `--repo`: `.stagecraft/repos/<name>.git` under the current folder.
    private var cachePath: String {
        let name = repo.split(whereSeparator: { $0 == "/" || $0 == ":" }).last.map { String($0) } ?? "repository"
        return FileManager.default.currentDirectoryPath + "/.stagecraft/repos/" + (name.hasSuffix(".git") ? name : name + ".git")
    }
}

/// `--output text|json`.
struct OutputOptions: ParsableArguments {
    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    @Option(name: .long, help: "Output format: text for people, json for scripts.")
    var output: Format = .text

    var json: Bool { output == .json }
}

/// JSON as commands print it: sorted keys, stable across runs.
enum JSONOutput {
    static func encode(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

/// Names given on the command line, checked before any path is built from them: environments and models are named
/// as their files are, 1 to 63 of `a-z`, `0-9` and `-`, so `--env ../../x` never reaches the file system.
enum Name {
    /// An environment's name (`environments/<env>.yaml`).
    static func environment(_ text: String) throws -> String { try check(text, kind: "environment", file: "environments/<env>.yaml") }

    /// A model's name (`manifests/<model>.yaml`).
    static func model(_ text: String) throws -> String { try check(text, kind: "model", file: "manifests/<model>.yaml") }

    private static func check(_ text: String, kind: String, file: String) throws -> String {
        guard ModelManifest.isValidName(text) else {
            let shown = text.count > 80 ? String(text.prefix(80)) + "…" : text
            throw ValidationError(
                "'\(shown)' is not a valid \(kind) name: \(kind)s are named as \(file) is, with 1 to 63 of a-z, 0-9 "
                    + "and '-'")
        }
        return text
    }
}
