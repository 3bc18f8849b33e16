import ArgumentParser
import Foundation
import GitStore

struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Start a GitOps repository: an example model, dev/qa/prod environments, a first commit.",
        discussion: """
            Runs 'git init' when DIR is not a repository yet, writes
            stagecraft.yaml, manifests/example.yaml with its data under
            data/example/, environments/dev.yaml, qa.yaml and prod.yaml, adds
            .stagecraft/ to .gitignore, and commits them on the current branch.

            Examples:
              stagecraft init             set up the current directory
              stagecraft init my-models   create my-models/ and set it up
            """
    )

    @Argument(help: ArgumentHelp("The directory to set up.", valueName: "dir"))
    var directory: String = "."

    func run() async throws {
        let console = Console.current
        let path = URL(fileURLWithPath: directory).standardizedFileURL.path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let repository: Repository
        if FileManager.default.fileExists(atPath: path + "/.git") || FileManager.default.fileExists(atPath: path + "/HEAD") {
            repository = try Repository.open(at: path)
        } else {
            repository = try Repository.create(at: path)
        }
        guard let root = repository.workingDirectory else {
            throw CommandFailure(.failure, "\(path) is a bare repository; init needs a working tree")
        }
        for existing in ["manifests", "environments", "stagecraft.yaml"] where FileManager.default.fileExists(atPath: root + "/" + existing)
        {
            throw CommandFailure(.failure, "\(root)/\(existing) already exists: this is already a Stagecraft repository")
        }
        guard let branch = try repository.currentBranch() else {
            throw CommandFailure(.failure, "HEAD is detached in \(root); check out a branch first")
        }
        var files = ExampleProject.files()
        let ignorePath = root + "/.gitignore"
        let ignore = (try? String(contentsOfFile: ignorePath, encoding: .utf8)) ?? ""
        if !ignore.split(separator: "\n").contains(where: { $0.trimmingCharacters(in: .whitespaces) == ".stagecraft/" }) {
            files[".gitignore"] = ignore + (ignore.isEmpty || ignore.hasSuffix("\n") ? "" : "\n") + ".stagecraft/\n"
        }
        let changes = files.keys.sorted().map { FileChange.write(path: $0, contents: Data(files[$0]!.utf8)) }
        let commit = try repository.commit(
            changes, onBranch: branch,
            message: "Set up Stagecraft: example model and dev, qa, prod "
                + "environments",
            author: repository.defaultSignature())
        console.print(
            console.styled("✓", .green) + " initialized a Stagecraft repository in \(root) (commit \(commit.short) on \(branch))")
        for file in files.keys.sorted() { console.print("  \(file)") }
        console.print(
            "\nNext: stagecraft validate --repo \(directory), then build, verify and serve dev: stagecraft reconcile --env "
                + "dev --repo \(directory)")
    }
}
