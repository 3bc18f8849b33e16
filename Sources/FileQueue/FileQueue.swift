public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A work queue of files in one folder, shared by any number of worker processes, that loses nothing:
///
///     DIR/inbox/        files to process (dropped here, by a rename for whole files)
///     DIR/processing/   claimed files: a rename from inbox/ is the claim, so exactly one worker gets each
///     DIR/outbox/       results, written whole (temporary file, then rename), named after the input
///     DIR/done/         inputs whose result is in outbox/
///     DIR/dead-letter/  inputs that failed every attempt, each with `<name>.error.json` saying why
///     DIR/.attempts/    per input, the failures so far and when it may be tried again (backoff)
///
/// A file is always in exactly one of inbox/, processing/, done/ and dead-letter/. A worker killed mid-file
/// leaves it in processing/; once its lease (the file's modification time, set at the claim, plus `lease`) has
/// passed, any worker puts it back in inbox/. Results are idempotent by name, so a file processed twice still
/// has one result.
public struct FileQueue: Sendable {
    public let root: URL
    /// Attempts before a file goes to dead-letter/.
    public var maxAttempts: Int
    /// The wait before the first retry; each further retry waits twice as long.
    public var backoff: Double
    /// How long a claimed file may stay in processing/ before another worker takes it back.
    public var lease: Double

    public init(root: URL, maxAttempts: Int = 3, backoff: Double = 1, lease: Double = 60) {
        self.root = root
        self.maxAttempts = maxAttempts
        self.backoff = backoff
        self.lease = lease
    }

    public var inbox: URL { root.appendingPathComponent("inbox") }
    public var processing: URL { root.appendingPathComponent("processing") }
    public var outbox: URL { root.appendingPathComponent("outbox") }
    public var done: URL { root.appendingPathComponent("done") }
    public var deadLetter: URL { root.appendingPathComponent("dead-letter") }
    var attemptsFolder: URL { root.appendingPathComponent(".attempts") }

    /// Creates the folders.
    public func prepare() throws {
        for folder in [inbox, processing, outbox, done, deadLetter, attemptsFolder] {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }
    }

    /// What became of one file.
    public enum Outcome: Sendable, Equatable {
        case done(output: String)
        case retry(attempt: Int, error: String)
        case deadLetter(error: String)
    }

    /// The failures of one input so far.
    struct Attempts: Codable {
        var errors: [String]
        var notBefore: Double
    }

    /// Takes back files whose lease expired, then claims the next file that may be tried now; nil when none.
    public func claim(now: Date = Date()) -> String? {
        reclaimExpired(now: now)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: inbox.path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        for name in names {
            if let attempts = attempts(name), attempts.notBefore > now.timeIntervalSince1970 { continue }
            guard rename(inbox.appendingPathComponent(name).path, processing.appendingPathComponent(name).path) == 0 else { continue }
            // The lease runs from now: the claim keeps the file's old modification time, so set it.
            _ = utimes(processing.appendingPathComponent(name).path, nil)
            return name
        }
        return nil
    }

    /// Puts back in inbox/ every file in processing/ whose lease has passed (its worker died or stalled).
    public func reclaimExpired(now: Date = Date()) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: processing.path)) ?? [] where !name.hasPrefix(".") {
            let path = processing.appendingPathComponent(name).path
            guard let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
                now.timeIntervalSince(modified) > lease
            else { continue }
            _ = rename(path, inbox.appendingPathComponent(name).path)
        }
    }

    /// Processes a claimed file with `work` (its bytes and name → the result's bytes and file name), then files it
    /// as done, for a retry (with backoff), or in dead-letter/ after the last attempt.
    @discardableResult
    public func process(_ name: String, _ work: (Data, String) throws -> (output: Data, name: String)) -> Outcome {
        let claimed = processing.appendingPathComponent(name)
        do {
            let input = try Data(contentsOf: claimed)
            let result = try work(input, name)
            try write(result.output, to: outbox.appendingPathComponent(result.name))
            // Another worker may have taken it back and finished first; then there is nothing left to move.
            _ = rename(claimed.path, done.appendingPathComponent(name).path)
            try? FileManager.default.removeItem(at: attemptsFile(name))
            return .done(output: result.name)
        } catch let unprocessable as Unprocessable {
            return fail(name, error: unprocessable.description, final: true)
        } catch {
            return fail(name, error: String(describing: error))
        }
    }

    /// An input that no attempt can process (it does not parse): it goes to dead-letter/ at once, not retried.
    public struct Unprocessable: Error, CustomStringConvertible {
        public let description: String
        public init(_ error: any Error) { description = String(describing: error) }
    }

    private func fail(_ name: String, error: String, final: Bool = false) -> Outcome {
        var record = attempts(name) ?? Attempts(errors: [], notBefore: 0)
        record.errors.append(error)
        let attempt = record.errors.count
        let claimed = processing.appendingPathComponent(name)
        if attempt >= maxAttempts || final {
            var report: [String: Any] = [
                "file": name, "attempts": attempt, "errors": record.errors, "error": error,
                "time": ISO8601DateFormatter().string(from: Date()),
            ]
            if final { report["retried"] = "no: the input cannot be processed as it is (fix it and put it in inbox/ again)" }
            if let data = try? JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys]) {
                try? write(data, to: deadLetter.appendingPathComponent(name + ".error.json"))
            }
            _ = rename(claimed.path, deadLetter.appendingPathComponent(name).path)
            try? FileManager.default.removeItem(at: attemptsFile(name))
            return .deadLetter(error: error)
        }
        record.notBefore = Date().timeIntervalSince1970 + backoff * pow(2, Double(attempt - 1))
        if let data = try? JSONEncoder().encode(record) { try? write(data, to: attemptsFile(name)) }
        _ = rename(claimed.path, inbox.appendingPathComponent(name).path)
        return .retry(attempt: attempt, error: error)
    }

    private func attemptsFile(_ name: String) -> URL { attemptsFolder.appendingPathComponent(name + ".json") }

    private func attempts(_ name: String) -> Attempts? {
        (try? Data(contentsOf: attemptsFile(name))).flatMap { try? JSONDecoder().decode(Attempts.self, from: $0) }
    }

    /// Writes `data` whole: a temporary file in the same folder, then a rename over `url`.
    func write(_ data: Data, to url: URL) throws {
        let staging = url.deletingLastPathComponent().appendingPathComponent(
            ".\(url.lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp")
        try data.write(to: staging)
        guard rename(staging.path, url.path) == 0 else {
            try? FileManager.default.removeItem(at: staging)
            throw FileQueueError(.io, "cannot move the result into \(url.path)")
        }
    }

    /// True when nothing waits in inbox/ or processing/.
    public var isIdle: Bool {
        [inbox, processing].allSatisfy { folder in
            ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).allSatisfy { $0.hasPrefix(".") }
        }
    }
}

/// The queue's folders could not be used.
public struct FileQueueError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A folder or file of the queue cannot be made, moved or written.
        public static let io = Code("io")
        /// An input cannot be processed (the work said so).
        public static let input = Code("input")
    }

    public let code: Code
    /// What failed, for the user.
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
