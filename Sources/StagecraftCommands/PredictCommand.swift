import ExternalModels
import ArgumentParser
import Foundation
import GitStore
import Learning
import Manifests
import Reconciler
import Registry

struct PredictCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Batch predictions with the version an environment runs, no server needed.",
        discussion: """
            Reads FILE.csv a block of rows at a time, predicts with the version
            pinned for MODEL in environments/<env>.yaml at --ref, and writes the
            input columns plus 'prediction' (and one 'probability_<class>' column per
            class for classifiers) to --output, or to standard output.

            Examples:
              stagecraft predict penguins --env dev --input new.csv --output scored.csv
              stagecraft predict breast-cancer --env prod --input batch.csv | head
            """
    )

    @Argument(help: "The model to predict with.", transform: Name.model)
    var model: String

    @Option(name: .long, help: "The environment whose pinned version is used.", transform: Name.environment)
    var env: String

    @Option(name: .long, help: ArgumentHelp("The CSV file to predict.", valueName: "file"))
    var input: String

    @Option(name: .long, help: ArgumentHelp("Where to write the scored CSV (standard output when absent).", valueName: "file"))
    var output: String?

    @OptionGroup var repository: RepositoryOptions

    func run() async throws {
        let console = Console.current
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isFolder), !isFolder.boolValue,
            FileManager.default.isReadableFile(atPath: input)
        else {
            let why =
                isFolder.boolValue ? "is a folder" : FileManager.default.fileExists(atPath: input) ? "cannot be read" : "does not exist"
            throw CommandFailure(.failure, "input file \(input) \(why); --input takes a CSV file with a header row")
        }
        let predictor = try ScoredCSV.pinnedPredictor(model, environment: env, repository: repository)
        defer { predictor.stop() }
        let (file, digest) = (predictor.file, predictor.digest)
        let types = file.columnTypes
        let out: FileHandle
        if let output {
            guard FileManager.default.createFile(atPath: output, contents: nil) else {
                throw CommandFailure(
                    .failure,
                    "cannot write "
                        + "\(output)")
            }
            out = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        } else {
            out = FileHandle.standardOutput
        }
        defer { if output != nil { try? out.close() } }
        var chunks = try CSVChunks(url: URL(fileURLWithPath: input))
        var wroteHeader = false
        var rows = 0
        while let chunk = chunks.next() {
            let data: Dataset
            do {
                data = try CSVReader.read(chunk, source: input, types: types)
            } catch let error as LearningError {
                throw CommandFailure(.failure, Self.shiftLines(error.message, by: chunks.firstLine - 2, in: input))
            }
            var text = ""
            if !wroteHeader {
                text += ScoredCSV.header(data, file)
                wroteHeader = true
            }
            text += try ScoredCSV.rows(data, predictor)
            rows += data.rowCount
            out.write(Data(text.utf8))
        }
        if output != nil {
            console.printError("\(count(rows, "row")) predicted with \(model) \(VersionDigest.short(digest)) (\(env)) → \(output!)")
        }
    }

    /// `file:LINE:…` errors from a chunk, with LINE counted in the whole file.
    static func shiftLines(_ message: String, by offset: Int, in file: String) -> String {
        guard message.hasPrefix(file + ":") else { return message }
        let rest = message.dropFirst(file.count + 1)
        guard let colon = rest.firstIndex(of: ":"), let line = Int(rest[..<colon]) else { return message }
        return "\(file):\(line + offset)\(rest[colon...])"
    }
}

/// Scored rows as `predict` and `queue` write them: the input columns, `prediction`, and one `probability_<class>`
/// column per class for classifiers (and `model_version` when asked).
enum ScoredCSV {
    /// What predicts a batch: the model file, or the version's own server started for the batch (stopped by
    /// ``stop()``).
    final class Predictor {
        let file: ModelFile
        let digest: String
        private let session: ScoringSession?

        init(file: ModelFile, digest: String, session: ScoringSession?) {
            self.file = file
            self.digest = digest
            self.session = session
        }

        func predict(_ data: Dataset) throws -> Predictions {
            guard let session else { return try file.predict(data) }
            return try session.predict(try file.featureColumns(data), classes: file.classes, task: file.task)
        }

        func stop() { session?.stop() }
    }

    /// The predictor of the version `environment` pins for `model` at the ref: a model with its own server has it
    /// started (and ready) first.
    static func pinnedPredictor(_ model: String, environment env: String, repository: RepositoryOptions) throws -> Predictor {
        let (file, digest, builder, store) = try pinned(model, environment: env, repository: repository)
        do {
            return Predictor(file: file, digest: digest, session: try builder.scoringSession(of: digest, file: file, store: store))
        } catch let error as ExternalModelError {
            throw CommandFailure(.failure, "the server of \(model) \(VersionDigest.short(digest)) cannot start: \(error.message)")
        }
    }

    /// The model file and full digest of the version `environment` pins for `model` at the ref.
    private static func pinned(_ model: String, environment env: String, repository: RepositoryOptions) throws -> (
        ModelFile, String, Builder, ArtifactStore
    ) {
        let repo = try repository.open()
        let source = try GitProjectSource(repository: repo, ref: repository.ref)
        let (project, _) = try Project.check(source)
        guard let environment = project.environments[env] else {
            let known = project.environmentOrder
            throw CommandFailure(
                .usage,
                "no environment '\(env)' at \(source.revision) (environments: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
        }
        guard let deployment = environment.deployment(model), let version = deployment.version else {
            throw CommandFailure(.failure, "environment '\(env)' runs no version of '\(model)' at \(source.revision)")
        }
        let builder = Builder(repository: repo, toolVersion: Stagecraft.version)
        let store = builder.store(for: project.settings)
        guard let digest = store.resolve(version) else {
            throw CommandFailure(
                .failure,
                "version \(version) of '\(model)' is not in the artifact store (\(store.root.path)); build "
                    + "it: stagecraft build \(model) --ref \(deployment.source ?? "<source>")")
        }
        return (try store.model(digest), digest, builder, store)
    }

    static func header(_ data: Dataset, _ file: ModelFile, version: String? = nil) -> String {
        let names =
            data.names + ["prediction"] + (file.classes ?? []).map { "probability_\($0)" } + (version == nil ? [] : ["model_version"])
        return CSVWriter.line(names)
    }

    static func rows(_ data: Dataset, _ predictor: Predictor, version: String? = nil) throws -> String {
        let file = predictor.file
        let predictions = try predictor.predict(data)
        let classCount = file.classes?.count ?? 0
        var text = ""
        for row in 0..<data.rowCount {
            var fields = data.columns.map { $0.text(at: row) }
            fields.append(predictions.labels?[row] ?? formatNumber(predictions.values?[row] ?? .nan))
            for k in 0..<classCount { fields.append(formatNumber(predictions.probabilities![row * classCount + k])) }
            if let version { fields.append(version) }
            text += CSVWriter.line(fields)
        }
        return text
    }
}
