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
    /// For a gate relative to the serving version: that version's value on the same holdout set, and its digest.
    public var serving: Double?
    public var servingVersion: String?
    /// What a person should know besides the value (a relative gate with nothing serving passes, and says so).
    public var note: String?

    public init(
        gate: String, metric: String, value: Double?, passed: Bool, stage: String, serving: Double? = nil, servingVersion: String? = nil,
        note: String? = nil
    ) {
        self.gate = gate
        self.metric = metric
        self.value = value
        self.passed = passed
        self.stage = stage
        self.serving = serving
        self.servingVersion = servingVersion
        self.note = note
    }
}

extension GateResult {
    /// The measured value as people read it: whole numbers plain, others to 4 significant digits; `n/a` when unmeasured.
    public var valueText: String {
        var text = value.map(Self.format) ?? "n/a"
        if let serving { text += " vs serving \(servingVersion.map { String($0.prefix(12)) + " " } ?? "")\(Self.format(serving))" }
        if let note { text += "; \(note)" }
        return text
    }

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
    /// What served the environment when it is not its own server process (`kserve:<namespace>`); nil for that server.
    public var target: String?

    public init(
        id: String = UUID().uuidString.lowercased(), environment: String, model: String, version: String, source: String?,
        environmentCommit: String, outcome: DeploymentOutcome = .inProgress, gates: [GateResult] = [], reason: String? = nil,
        actor: String, startedAt: Date = Timestamp.now(), finishedAt: Date? = nil, target: String? = nil
    ) {
        self.target = target
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

    public init(
        environment: String, model: String, version: String, source: String?, traffic: [VersionShare]?, shadow: String?,
        recordID: String, since: Date
    ) {
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

    /// `2026-11-23T22:14:51.123Z`: UTC, whole milliseconds, rounded (never truncated, so text → date → text is stable).
    public static func string(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
        let (days, dayMilliseconds) = floorDivide(milliseconds, 86_400_000)
        let (year, month, day) = civil(fromDays: days)
        let seconds = dayMilliseconds / 1000
        var text = ""
        text.reserveCapacity(24)
        func append(_ value: Int64, width: Int) {
            let digits = String(value)
            if digits.count < width { text += String(repeating: "0", count: width - digits.count) }
            text += digits
        }
        append(year, width: 4)
        text += "-"
        append(month, width: 2)
        text += "-"
        append(day, width: 2)
        text += "T"
        append(seconds / 3600, width: 2)
        text += ":"
        append(seconds / 60 % 60, width: 2)
        text += ":"
        append(seconds % 60, width: 2)
        text += "."
        append(dayMilliseconds % 1000, width: 3)
        text += "Z"
        return text
    }

    /// Reads `YYYY-MM-DDTHH:MM:SS[.fff]Z` (the form ``string(_:)`` writes); nil for anything else.
    public static func date(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20, bytes.last == UInt8(ascii: "Z"), bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            bytes[10] == UInt8(ascii: "T"), bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":")
        else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var value: Int64 = 0
            for index in range {
                let digit = Int64(bytes[index]) - 48
                guard (0...9).contains(digit) else { return nil }
                value = value * 10 + digit
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
            let minute = number(14..<16), let second = number(17..<19), (1...12).contains(month), (1...31).contains(day),
            hour < 24, minute < 60, second < 61
        else { return nil }
        var milliseconds: Int64 = 0
        if bytes.count > 20 {
            guard bytes[19] == UInt8(ascii: "."), bytes.count - 21 <= 9, let fraction = number(20..<(bytes.count - 1)) else { return nil }
            let digits = bytes.count - 21
            var scaled = Double(fraction)
            for _ in 0..<digits { scaled /= 10 }
            milliseconds = Int64((scaled * 1000).rounded())
        } else if bytes.count != 20 {
            return nil
        }
        let total = (days(fromCivil: year, month, day) * 86_400 + hour * 3600 + minute * 60 + second) * 1000 + milliseconds
        return Date(timeIntervalSince1970: Double(total) / 1000)
    }

    private static func floorDivide(_ value: Int64, _ divisor: Int64) -> (Int64, Int64) {
        let quotient = value >= 0 ? value / divisor : (value - divisor + 1) / divisor
        return (quotient, value - quotient * divisor)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

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
