import ArgumentParser
import FileQueue
import Foundation
import Learning
import Manifests
import Registry
#if canImport(Glibc)
import Glibc
#endif

struct QueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Predict files one by one as they arrive in a folder, with retries and a dead-letter folder.",
        discussion: """
            Files dropped into DIR/inbox/ (CSV with a header row, or JSON Lines:
            one object of feature values per line; .jsonl or .ndjson) are claimed
            atomically, predicted with the version ENV pins for MODEL, and written
            to DIR/outbox/<name>.csv (the input columns, prediction, probabilities
            and model_version); the input then moves to DIR/done/. A file that
            fails is retried after a backoff that doubles, and after --retries
            attempts moves to DIR/dead-letter/ with <name>.error.json saying why.
            Several workers may share DIR; a killed worker's file is taken back
            after --lease. Drop whole files (write elsewhere, then rename into inbox/).

            Examples:
              stagecraft queue --env prod --model penguins --dir /data/penguins
              stagecraft queue --env dev --model breast-cancer --dir q --once
            """
    )

    @Option(name: .long, help: "The environment whose pinned version predicts.", transform: Name.environment)
    var env: String

    @Option(name: .long, help: "The model.", transform: Name.model)
    var model: String

    @Option(name: .long, help: ArgumentHelp("The queue folder (inbox/, outbox/, done/, dead-letter/ are made in it).", valueName: "dir"))
    var dir: String

    @Option(name: .long, help: "Attempts before a file goes to dead-letter/.")
    var retries: Int = 3

    @Option(name: .long, help: "Wait before the first retry (doubling after each), e.g. 500ms, 2s.")
    var backoff: String = "1s"

    @Option(name: .long, help: "How long a claimed file may stay in processing/ before another worker takes it back.")
    var lease: String = "60s"

    @Option(name: .long, help: "How often an idle worker looks at inbox/.")
    var poll: String = "10ms"

    @Flag(name: .long, help: "Stop once inbox/ and processing/ are empty, instead of waiting for more files.")
    var once = false

    @OptionGroup var repository: RepositoryOptions

    func validate() throws {
        for (name, value) in [("--backoff", backoff), ("--lease", lease), ("--poll", poll)] where DurationText.seconds(value) == nil {
            throw ValidationError("\(name): '\(value)' is not a duration such as 500ms, 30s or 5m")
        }
        guard retries >= 1 else { throw ValidationError("--retries must be at least 1") }
    }

    func run() async throws {
        let console = Console.current
        // A model with its own server has it running while the queue runs (stopped when it ends).
        let predictor = try ScoredCSV.pinnedPredictor(model, environment: env, repository: repository)
        defer { predictor.stop() }
        let digest = predictor.digest
        let queue = FileQueue(root: URL(fileURLWithPath: dir), maxAttempts: retries, backoff: DurationText.seconds(backoff)!,
                              lease: DurationText.seconds(lease)!)
        try queue.prepare()
        let pause = DurationText.seconds(poll)!
        console.printError("queue: \(model) \(VersionDigest.short(digest)) (\(env)) on \(queue.inbox.path)")
        let context = RoundState((command: self, queue: queue, predictor: predictor))
        try await LoopService.runUntilSignalled("queue") {
            await LoopService.onThread { () -> Double? in
                let (command, queue, predictor) = context.value
                guard let name = queue.claim() else { return command.once && queue.isIdle ? nil : pause }
                command.process(name, queue: queue, predictor: predictor)
                return 0
            }
        }
    }

    /// Scores one claimed file and says how it went.
    private func process(_ name: String, queue: FileQueue, predictor: ScoredCSV.Predictor) {
        let console = Console.current
        let started = ContinuousClock.now
        let outcome = queue.process(name) { input, name in
            try Self.score(input, name: name, predictor: predictor)
        }
        let elapsed = started.duration(to: .now)
        let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        switch outcome {
        case .done(let output):
            console.print("✓ \(name) → outbox/\(output) (\(String(format: "%.1f", milliseconds)) ms)")
        case .retry(let attempt, let error):
            console.printError("↻ \(name) failed (attempt \(attempt) of \(retries)): \(error)")
        case .deadLetter(let error):
            console.printError("✗ \(name) → dead-letter/: \(error)")
        }
    }

    /// The scored CSV of one input file.
    static func score(_ input: Data, name: String, predictor: ScoredCSV.Predictor) throws -> (output: Data, name: String) {
        let (file, version) = (predictor.file, predictor.digest)
        let data: Dataset
        // A file that does not parse never will: it is dead-lettered at once, not retried.
        do {
            if name.hasSuffix(".jsonl") || name.hasSuffix(".ndjson") {
                data = try jsonLines(input, name: name, file: file)
            } else {
                data = try CSVReader.read(input, source: name, types: file.columnTypes)
            }
        } catch {
            throw FileQueue.Unprocessable(error)
        }
        guard data.rowCount > 0 else { throw FileQueue.Unprocessable(LearningError(.malformedData, "\(name): no rows")) }
        let text = ScoredCSV.header(data, file, version: version) + (try ScoredCSV.rows(data, predictor, version: version))
        let stem = (name as NSString).deletingPathExtension
        return (Data(text.utf8), stem + ".csv")
    }

    /// JSON Lines (one object of feature values per line) as the model's raw feature columns.
    static func jsonLines(_ input: Data, name: String, file: ModelFile) throws -> Dataset {
        var records: [[String: Any]] = [], lines: [Int] = []
        for (index, line) in input.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated()
        where !line.allSatisfy({ $0 == 32 || $0 == 13 }) {
            guard let object = JSON.parse(Data(line))?.foundation as? [String: Any] else {
                throw LearningError(.malformedData, "\(name):\(index + 1): not a JSON object")
            }
            records.append(object)
            lines.append(index + 1)
        }
        return try file.dataset(records: records, lines: lines, source: name)
    }
}
