import ArgumentParser
import Foundation
import GitStore
import Manifests
import Reconciler

struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check every manifest and environment of the repository at a ref, from git objects.",
        discussion: """
            Reads stagecraft.yaml, manifests/ and environments/ as committed at
            --ref (not the working tree) and reports every problem as
            file:line:column: message. Exits 0 when valid, 1 when not.

            Examples:
              stagecraft validate
              stagecraft validate --repo ../models --ref origin/main --output json
            """
    )

    @OptionGroup var repository: RepositoryOptions
    @OptionGroup var format: OutputOptions

    struct Report: Encodable {
        var valid: Bool
        var ref: String
        var commit: String
        var models: [String]
        var environments: [String]
        var problems: [Diagnostic]
    }

    func run() async throws {
        let console = Console.current
        let repo = try repository.open()
        let source = try GitProjectSource(repository: repo, ref: repository.ref)
        var (project, diagnostics) = try Project.check(source)
        // Data in S3: each object must exist, when there are credentials to ask with (else it is said, not failed).
        let files = DataFiles(repository: repo, settings: project.settings, root: Builder(repository: repo, toolVersion: "").localRoot)
        for manifest in project.models.values.sorted(by: { $0.name < $1.name }) {
            for (key, path) in [("train", manifest.data.train), ("test", manifest.data.test)] where DataSpec.isObjectStore(path) {
                guard let location = manifest.dataLocations[key] else { continue }
                do {
                    switch try files.exists(path) {
                    case true?: break
                    case false?: diagnostics.append(Diagnostic(location, "data object '\(path)' does not exist"))
                    case nil: console.warn("\(location): \(path) not checked: no AWS credentials (set \(files.credentialPlaces))")
                    }
                } catch {
                    diagnostics.append(Diagnostic(location, "data object '\(path)' cannot be checked: \(error)"))
                }
            }
        }
        diagnostics.sort()
        let models = project.models.keys.sorted()
        // What is validated is what is committed: say so when the work tree holds edits it did not read.
        if let workTree = repo.workingDirectory, try repo.resolve("HEAD") == source.commit {
            let dataFiles = project.models.values.flatMap { [$0.data.train, $0.data.test] }.filter { !DataSpec.isObjectStore($0) }
            let changed = try Self.uncommitted(in: repo, at: source.commit, workTree: workTree, data: dataFiles)
            if !changed.isEmpty {
                let shown = changed.prefix(5).joined(separator: ", ") + (changed.count > 5 ? " and \(changed.count - 5) more" : "")
                console.warn(
                    "validate read \(source.revision), not the work tree: \(shown) \(changed.count == 1 ? "has" : "have") uncommitted "
                        + "changes (commit them to validate them)")
            }
        }
        if format.json {
            console.print(try JSONOutput.encode(Report(
                valid: diagnostics.isEmpty, ref: source.ref, commit: source.commit.hex, models: models,
                environments: project.environmentOrder, problems: diagnostics)))
        } else if diagnostics.isEmpty {
            let chain = project.environmentOrder.joined(separator: ", ")
            console.print(console.styled("✓", .green) + " valid at \(source.revision): \(count(models.count, "model")) "
                + "(\(models.joined(separator: ", "))), \(count(project.environments.count, "environment")) (\(chain))")
        } else {
            for diagnostic in diagnostics { console.print(diagnostic.description) }
            console.print(console.styled("✗", .red) + " \(count(diagnostics.count, "problem")) at \(source.revision)")
        }
        if !diagnostics.isEmpty { throw CommandFailure(.failure) }
    }
}

extension ValidateCommand {
    /// The project files (`stagecraft.yaml`, `manifests/`, `environments/`, and local data files) whose work-tree
    /// content differs from `commit`'s, added or deleted there.
    static func uncommitted(in repo: Repository, at commit: ObjectID, workTree: String, data: [String]) throws -> [String] {
        var paths = Set([ProjectSettings.file] + data)
        for folder in [Project.manifestsFolder, Project.environmentsFolder] {
            let committed = (try repo.directory(at: folder, in: commit) ?? []).map { "\(folder)/\($0.name)" }
            let onDisk = ((try? FileManager.default.contentsOfDirectory(atPath: workTree + "/" + folder)) ?? []).map { "\(folder)/\($0)" }
            paths.formUnion((committed + onDisk).filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") })
        }
        return try paths.sorted().filter { path in
            let disk = FileManager.default.contents(atPath: workTree + "/" + path)
            return try disk != repo.fileIfPresent(at: path, in: commit)
        }
    }
}

/// `1 model`, `2 models`.
func count(_ number: Int, _ noun: String) -> String {
    "\(number) \(noun)\(number == 1 ? "" : "s")"
}
