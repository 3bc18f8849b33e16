import ArgumentParser
import Foundation
import GitStore
import Learning
import Manifests
import Reconciler
import Registry

struct BuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build model versions from their manifests and data at a ref.",
        discussion: """
            With no model, builds every model of the repository.
            Reads manifests/<model>.yaml and its data as committed at --ref, computes
            the version digest, and reuses .stagecraft/artifacts/<digest>/ when it
            exists; otherwise trains (with the manifest's search), evaluates on the
            holdout set and writes model.json, metrics.json and build.json there.
            A model trained by its own command (trainer.command) runs it in a fresh
            folder, keeps what it wrote in model/ (each file's sha256 in build.json)
            and computes the gates from its own server's answers on the holdout set.

            --verify builds the version again aside and compares the files with the
            stored build's (exit 1 when any differs); the stored one stays served.

            Examples:
              stagecraft build
              stagecraft build breast-cancer
              stagecraft build penguins --ref main~1 --output json
              stagecraft build tumor --verify
            """
    )

    @Flag(name: .long, help: "Build again aside and say whether the files match the stored build's.")
    var verify = false

    @Argument(help: "The models to build (names of manifests/<model>.yaml); every model when none is given.", transform: Name.model)
    var models: [String] = []

    @OptionGroup var repository: RepositoryOptions
    @OptionGroup var format: OutputOptions

    struct Report: Encodable {
        var model: String
        var digest: String
        var version: String
        var reused: Bool
        var source: String
        var algorithm: String
        var parameters: [String: ParameterValue]
        var metrics: [String: Double]
        var timings: [String: Double]
        var artifact: String
    }

    func run() async throws {
        let console = Console.current
        let builder = Builder(repository: try repository.open(), toolVersion: Stagecraft.version)
        var names = models
        if names.isEmpty {
            // Every manifest is to be built: one that does not parse or check fails the build (a CI step must not
            // pass with it), with every problem of every manifest listed.
            let (project, diagnostics) = try Project.check(try GitProjectSource(repository: builder.repository, ref: repository.ref))
            let problems = diagnostics.filter {
                $0.location.file.hasPrefix(Project.manifestsFolder + "/") || $0.location.file == ProjectSettings.file
            }
            guard problems.isEmpty else { throw InvalidProject(problems) }
            names = project.models.keys.sorted()
            guard !names.isEmpty else { throw CommandFailure(.failure, "no valid model manifests at \(repository.ref)") }
        }
        if verify {
            try verify(names, with: builder, console: console)
            return
        }
        var reports: [Report] = []
        for name in names {
            let result = try build(name, with: builder, console: console)
            reports.append(result)
        }
        if format.json {
            console.print(models.count == 1 ? try JSONOutput.encode(reports[0]) : try JSONOutput.encode(reports))
        }
    }

    struct VerifyReport: Encodable {
        var model: String
        var digest: String
        var reproducible: Bool
        var compared: [String]
        var differing: [String]
    }

    /// `--verify`: each model rebuilt aside and compared; fails when any file differs.
    private func verify(_ names: [String], with builder: Builder, console: Console) throws {
        var reports: [VerifyReport] = []
        for model in names {
            let progress = ProgressLine(console: console)
            let result = try builder.verify(model: model, ref: repository.ref) { _ in
                progress.update("\(model): building again to compare")
            }
            progress.finish()
            reports.append(
                VerifyReport(
                    model: model, digest: result.digest, reproducible: result.reproducible, compared: result.compared,
                    differing: result.differing))
            guard !format.json else { continue }
            let version = VersionDigest.short(result.digest)
            if result.reproducible {
                console.print(
                    console.styled("✓", .green) + " \(model) \(version) reproducible: \(count(result.compared.count, "file")) identical")
            } else {
                let shown = result.differing.prefix(5).joined(separator: ", ") + (result.differing.count > 5 ? ", …" : "")
                console.print(
                    console.styled("✗", .red)
                        + " \(model) \(version) not reproducible: \(shown) \(result.differing.count == 1 ? "differs" : "differ")"
                        + " (the stored build is the one served)")
            }
        }
        if format.json { console.print(reports.count == 1 ? try JSONOutput.encode(reports[0]) : try JSONOutput.encode(reports)) }
        if reports.contains(where: { !$0.reproducible }) {
            throw CommandFailure(.failure, "not reproducible: \(reports.filter { !$0.reproducible }.map(\.model).joined(separator: ", "))")
        }
    }

    private func build(_ model: String, with builder: Builder, console: Console) throws -> Report {
        let progress = ProgressLine(console: console)
        let result = try builder.build(model: model, ref: repository.ref) { event in
            switch event {
            case .searching(let candidate, let candidates, let fold, let folds):
                progress.update("\(model): search \(candidate)/\(candidates), fold \(fold)/\(folds)")
            case .boosting(let round, let rounds):
                progress.update("\(model): boosting round \(round)/\(rounds)")
            case .fitting:
                progress.update("\(model): fitting")
            case .evaluating:
                progress.update("\(model): evaluating on the holdout set")
            case .output(let line):
                progress.update("\(model): \(line.prefix(120))")
            case .startingServer:
                progress.update("\(model): starting its server to compute the gates")
            }
        }
        progress.finish()
        let info = result.info
        let report = Report(
            model: info.model, digest: result.digest, version: VersionDigest.short(result.digest), reused: result.reused,
            source: info.source, algorithm: info.algorithm, parameters: info.parameters, metrics: result.metrics.holdout,
            timings: info.timings, artifact: result.artifact.path)
        guard !format.json else { return report }
        let parameters = info.parameters.keys.sorted().map { "\($0)=\(info.parameters[$0]!)" }.joined(separator: ", ")
        let version = console.styled(VersionDigest.short(result.digest), .bold)
        if result.reused {
            console.print(
                console.styled("✓", .green) + " \(info.model) \(version) reused: the artifact store has it (built from "
                    + "\(String(info.source.prefix(12))))")
        } else {
            let seconds = String(format: "%.2f", info.timings["total"] ?? 0)
            console.print(
                console.styled("✓", .green) + " \(info.model) \(version) built from \(String(info.source.prefix(12))) in "
                    + "\(seconds) s (\(info.algorithm)\(parameters.isEmpty ? "" : ", \(parameters)"))")
        }
        console.print("  holdout: " + formatMetrics(result.metrics.holdout))
        console.print("  artifact: \(result.artifact.path)")
        return report
    }
}

/// `accuracy 0.9912  auc 0.9995 …`, sorted by name.
func formatMetrics(_ metrics: [String: Double]) -> String {
    metrics.keys.sorted().map { "\($0) \(String(format: "%.4f", metrics[$0]!))" }.joined(separator: "  ")
}

struct BuildsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "builds",
        abstract: "List the versions in the artifact store, with their metrics, to compare experiments.",
        discussion: """
            'builds compare A B' compares two builds as 'diff A B' does (versions
            as digests or @aliases).

            Examples:
              stagecraft builds
              stagecraft builds penguins --output json
              stagecraft builds compare @champion 7b21e0d44a10
            """
    )

    @Argument(help: "MODEL: only this model's builds; or compare A B.")
    var words: [String] = []

    @OptionGroup var repository: RepositoryOptions
    @OptionGroup var format: OutputOptions

    func validate() throws {
        if words.first == "compare" {
            guard words.count == 3 else { throw ValidationError("expected: builds compare VERSION VERSION") }
        } else if words.count > 1 {
            throw ValidationError("expected: builds [MODEL], or builds compare VERSION VERSION")
        } else if let model = words.first {
            _ = try Name.model(model)
        }
    }

    func run() async throws {
        let console = Console.current
        let repo = try repository.open()
        if words.first == "compare" {
            let workspace = try Workspace(repository: repo, toolVersion: Stagecraft.version, ref: repository.ref)
            let output = try DiffCommand.builds(
                words[1], words[2], workspace: workspace, state: try workspace.openState(notice: console.warn),
                commit: try repo.resolve(repository.ref))
            try DiffCommand.print(output, json: format.json)
            if !output.equal { throw CommandFailure(.failure) }
            return
        }
        let model = words.first
        let source = try GitProjectSource(repository: repo, ref: repository.ref)
        let settings = (try? Project.check(source).0.settings) ?? ProjectSettings()
        let store = Builder(repository: repo, toolVersion: Stagecraft.version).store(for: settings)
        let builds = try store.builds().filter { model == nil || $0.model == model }
        if format.json {
            console.print(try JSONOutput.encode(builds))
            return
        }
        guard !builds.isEmpty else {
            console.print("no builds\(model.map { " of \($0)" } ?? "") in \(store.location)")
            return
        }
        let metricNames = Array(Set(builds.flatMap { $0.metrics.keys })).sorted()
        let header = ["VERSION", "MODEL", "ALGORITHM", "SOURCE", "BUILT"] + metricNames
        let formatter = ISO8601DateFormatter()
        let rows = builds.map { build in
            [
                VersionDigest.short(build.digest), build.model, build.algorithm, String(build.source.prefix(12)),
                formatter.string(from: build.createdAt),
            ]
                + metricNames.map { name in build.metrics[name].map { String(format: "%.4f", $0) } ?? "-" }
        }
        for line in table([header] + rows) { console.print(line) }
    }
}

/// Rows padded into aligned columns.
func table(_ rows: [[String]]) -> [String] {
    guard let first = rows.first else { return [] }
    let widths = first.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
    return rows.map { row in
        row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
            .trimmingCharacters(in: .whitespaces)
    }
}
