import ArgumentParser
import Foundation
import GitStore

/// `--repo` and `--ref`: which repository, at which revision.
struct RepositoryOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The GitOps repository (a work tree or a bare repository).", valueName: "path"))
    var repo: String = "."

    @Option(name: .long, help: ArgumentHelp("The branch, tag or commit to read the files at.", valueName: "ref"))
    var ref: String = "HEAD"

    func open() throws -> Repository {
        try Repository.open(at: repo)
    }

    /// Whether `--repo` names a remote (`https://…`, `ssh://…`, `file://…`, `git@host:…`) rather than a folder.
    var isURL: Bool { repo.contains("://") || (repo.contains("@") && repo.contains(":")) }

    /// Opens `--repo`; a URL is first fetched into a bare cache under `.stagecraft/repos/` of the current folder.
    func openOrFetch() throws -> Repository {
        guard isURL else { return try open() }
        let name = repo.split(whereSeparator: { $0 == "/" || $0 == ":" }).last.map { String($0) } ?? "repository"
        let cache = FileManager.default.currentDirectoryPath + "/.stagecraft/repos/" + (name.hasSuffix(".git") ? name : name + ".git")
        return try Repository.mirror(repo, into: cache)
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
