import ArgumentParser
import Foundation
import GitStore
import Learning
import Manifests
import Reconciler
import Registry

struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "An environment server's log, or its access log of infer requests.",
        discussion: """
            The server's log (.stagecraft/run/<env>.log: JSON lines with time, level,
            message), or with --access its access log (.stagecraft/run/<env>.access.log:
            one JSON line per sampled infer request with time, model, version, status,
            latencyMs, id and protocol; sampled with serve --access-log-percent).
            --since keeps lines from that long ago on; --follow waits for new lines
            until interrupted.

            Examples:
              stagecraft logs --env dev
              stagecraft logs --env prod --access --since 10m
              stagecraft logs --env qa --follow
            """
    )

    @Option(name: .long, help: "The environment whose server's log to show.", transform: Name.environment)
    var env: String

    @Flag(name: .long, help: "The access log of infer requests instead of the server's log.")
    var access = false

    @Flag(name: .long, help: "Keep printing new lines as they are written, until interrupted.")
    var follow = false

    @Option(name: .long, help: "Only lines from this long ago on (e.g. 30s, 10m, 2h).")
    var since: String?

    @OptionGroup var repository: RepositoryOptions

    func validate() throws {
        if let since, DurationText.seconds(since) == nil {
            throw ValidationError("--since: '\(since)' is not a duration such as 30s, 10m or 2h")
        }
    }

    func run() async throws {
        let repo = try repository.open()
        _ = try EnvironmentFiles.read(env, at: try repo.resolve(repository.ref), in: repo)
        let files = RunFiles(root: Builder(repository: repo, toolVersion: Stagecraft.version).localRoot, environment: env)
        let file = access ? files.accessLogFile : files.logFile
        let cutoff = since.flatMap(DurationText.seconds).map { Date().addingTimeInterval(-$0) }
        let reader = RoundState(LogReader(path: file.path, cutoff: cutoff))
        guard follow else {
            guard FileManager.default.fileExists(atPath: file.path) else {
                throw CommandFailure(
                    .failure,
                    "no \(access ? "access log" : "log") for '\(env)' yet (\(file.path)); its server writes it once started: "
                        + "stagecraft reconcile --env \(env)")
            }
            reader.value.printNew()
            return
        }
        try await LoopService.runUntilSignalled("logs") {
            await LoopService.onThread { () -> Double? in
                reader.value.printNew()
                return 0.2
            }
        }
    }
}

/// Reads a log file from where it last stopped (from the start again when it was rotated), printing whole lines
/// whose `time` is not before the cutoff.
struct LogReader {
    let path: String
    let cutoff: Date?
    private var offset: UInt64 = 0
    private var partial = Data()

    init(path: String, cutoff: Date?) {
        self.path = path
        self.cutoff = cutoff
    }

    mutating func printNew() {
        guard let handle = FileHandle(forReadingAtPath: path) else { return }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        if size < offset {  // rotated or truncated: read the new file from its start
            offset = 0
            partial = Data()
        }
        guard size > offset else { return }
        try? handle.seek(toOffset: offset)
        let chunk = handle.readData(ofLength: Int(min(size - offset, 64 << 20)))
        offset += UInt64(chunk.count)
        partial.append(chunk)
        guard let end = partial.lastIndex(of: 0x0A) else { return }
        let complete = partial[partial.startIndex...end]
        partial = Data(partial[partial.index(after: end)...])
        let console = Console.current
        var text = ""
        for line in complete.split(separator: 0x0A) where keeps(line) {
            text += String(decoding: line, as: UTF8.self) + "\n"
        }
        if !text.isEmpty { console.write(text, error: false) }
    }

    /// Whether a line is recent enough: its JSON `time` is not before the cutoff (a line without one is kept).
    private func keeps(_ line: Data.SubSequence) -> Bool {
        guard let cutoff else { return true }
        guard let object = JSON.parse(Data(line))?.foundation as? [String: Any], let time = object["time"] as? String,
            let date = Timestamp.date(time)
        else { return true }
        return date >= cutoff
    }
}
