public import Foundation

/// How a deployment attempt ended.
public enum DeploymentOutcome: String, Codable, Sendable, CaseIterable {
    /// Started and not finished: the reconcile is running, or was killed (the next reconcile settles it).
    case inProgress = "in-progress"
    /// The version passed its gates and serves.
    case succeeded
    /// A gate failed or a step failed; the previous version kept serving.
    case failed
    /// The reconcile that started it was killed before the switch; nothing changed.
    case interrupted
    /// The model was taken out of the environment (its pin removed).
    case removed
}

/// One gate as measured: the threshold, the value found, and whether it held.
public struct GateResult: Codable, Sendable, Hashable {
    /// As written: `auc >= 0.97`.
    public var gate: String
    public var metric: String
    /// The measured value; nil when it could not be measured.
    public var value: Double?
    public var passed: Bool
    /// `offline` (holdout metrics) or `online` (probe against the real server).
    public var stage: String

    public init(gate: String, metric: String, value: Double?, passed: Bool, stage: String) {
        self.gate = gate
        self.metric = metric
        self.value = value
        self.passed = passed
        self.stage = stage
    }
}

extension GateResult {
    /// The measured value as people read it: whole numbers plain, others to 4 significant digits; `n/a` when unmeasured.
    public var valueText: String { value.map(Self.format) ?? "n/a" }

    public static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(format: "%.4g", value)
    }
}

/// One attempt to make a version serve in an environment: what, from where, on what evidence, with what outcome.
public struct DeploymentRecord: Codable, Sendable, Hashable, Identifiable {
    /// Unique; the same in the state store and in the git note.
    public var id: String
    public var environment: String
    public var model: String
    /// The full digest.
    public var version: String
    /// The commit the version was built from.
    public var source: String?
    /// The latest commit that changed the environment file, as of the reconciled ref: the desired state applied.
    public var environmentCommit: String
    public var outcome: DeploymentOutcome
    public var gates: [GateResult]
    /// Why it failed or was interrupted.
    public var reason: String?
    /// Who ran the reconcile (user name, or `stagecraft` for automation).
    public var actor: String
    public var startedAt: Date
    public var finishedAt: Date?

    public init(id: String = UUID().uuidString.lowercased(), environment: String, model: String, version: String, source: String?,
                environmentCommit: String, outcome: DeploymentOutcome = .inProgress, gates: [GateResult] = [], reason: String? = nil,
                actor: String, startedAt: Date = Timestamp.now(), finishedAt: Date? = nil) {
        self.id = id
        self.environment = environment
        self.model = model
        self.version = version
        self.source = source
        self.environmentCommit = environmentCommit
        self.outcome = outcome
        self.gates = gates
        self.reason = reason
        self.actor = actor
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }

    /// The record as one line of JSON, the form it takes in a git note.
    public func jsonLine() -> String {
        String(decoding: (try? Timestamp.encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// The records in a note's text (one JSON object per line); lines that are not records are skipped.
    public static func parseNote(_ text: String) -> [DeploymentRecord] {
        text.split(separator: "\n").compactMap { line in try? Timestamp.decoder.decode(DeploymentRecord.self, from: Data(line.utf8)) }
    }
}

/// What one model serves in one environment, as the last successful deployment left it.
public struct ServedModel: Codable, Sendable, Hashable {
    public var environment: String
    public var model: String
    /// The default version (full digest).
    public var version: String
    public var source: String?
    /// A split between versions by weight, when the environment file asks for one.
    public var traffic: [VersionShare]?
    /// A version that gets a copy of every request.
    public var shadow: String?
    /// The deployment record that put it there.
    public var recordID: String
    public var since: Date

    public init(environment: String, model: String, version: String, source: String?, traffic: [VersionShare]?, shadow: String?,
                recordID: String, since: Date) {
        self.environment = environment
        self.model = model
        self.version = version
        self.source = source
        self.traffic = traffic
        self.shadow = shadow
        self.recordID = recordID
        self.since = since
    }

    /// Every version this model has loaded: the default, the split's and the shadow.
    public var versions: Set<String> { Set([version] + (traffic ?? []).map(\.version) + [shadow].compactMap { $0 }) }
}

/// A version's weight in a traffic split.
public struct VersionShare: Codable, Sendable, Hashable {
    public var version: String
    public var weight: Int
    public init(version: String, weight: Int) {
        self.version = version
        self.weight = weight
    }
}

/// Times as Stagecraft stores them: whole milliseconds, ISO 8601 in text, so that a record read back from a
/// git note equals the one in the state store.
public enum Timestamp {
    /// Now, rounded to the millisecond.
    public static func now() -> Date { rounded(Date()) }

    /// `date` to the whole millisecond; the same value a date read back from its text has.
    public static func rounded(_ date: Date) -> Date {
        Date(timeIntervalSince1970: Double(Int64((date.timeIntervalSince1970 * 1000).rounded())) / 1000)
    }

    private static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// `2026-11-23T22:14:51.123Z`: whole milliseconds, rounded (never truncated, so text → date → text is stable).
    public static func string(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
        let seconds = milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000
        let whole = Date(timeIntervalSince1970: Double(seconds)).formatted(Date.ISO8601FormatStyle())
        return String(whole.dropLast()) + String(format: ".%03dZ", Int(milliseconds - seconds * 1000))
    }

    public static func date(_ text: String) -> Date? { (try? style.parse(text)).map(rounded) }

    /// JSON with sorted keys and these timestamps.
    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(string(date))
        }
        return encoder
    }()

    public static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = date(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(text)' is not an ISO 8601 time")
            }
            return date
        }
        return decoder
    }()
}
