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
