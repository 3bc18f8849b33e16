public import Foundation

/// The SHA-1 name of a git object. Kept as its 20 bytes (cheap to hash and compare in long history walks);
/// written as 40 lowercase hex digits.
public struct ObjectID: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    /// Bytes 0–7, 8–15 and 16–19, big-endian, so that comparing them compares the hex names.
    let high: UInt64
    let middle: UInt64
    let low: UInt32

    init(high: UInt64, middle: UInt64, low: UInt32) {
        self.high = high
        self.middle = middle
        self.low = low
    }

    /// Wraps a full 40-digit hex name (either case); returns nil for anything else.
    public init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count == 40 else { return nil }
        var words: [UInt64] = [0, 0, 0]
        for (index, digit) in digits.enumerated() {
            let value: UInt8
            switch digit {
            case 48...57: value = digit - 48
            case 97...102: value = digit - 87
            case 65...70: value = digit - 55
            default: return nil
            }
            words[index / 16] = words[index / 16] << 4 | UInt64(value)
        }
        self.init(high: words[0], middle: words[1], low: UInt32(words[2]))
    }

    /// The full 40-digit hex name.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        return String(unsafeUninitializedCapacity: 40) { buffer in
            for index in 0..<16 {
                buffer[index] = digits[Int(high >> (60 - 4 * UInt64(index)) & 0xF)]
                buffer[16 + index] = digits[Int(middle >> (60 - 4 * UInt64(index)) & 0xF)]
            }
            for index in 0..<8 { buffer[32 + index] = digits[Int(low >> (28 - 4 * UInt32(index)) & 0xF)] }
            return 40
        }
    }

    /// The first 12 hex digits, as Stagecraft prints commits.
    public var short: String { String(hex.prefix(12)) }
    public var description: String { hex }
    public static func < (lhs: ObjectID, rhs: ObjectID) -> Bool { (lhs.high, lhs.middle, lhs.low) < (rhs.high, rhs.middle, rhs.low) }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let id = ObjectID(hex: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a 40-digit object id: \(text)"))
        }
        self = id
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}

/// Who made a commit or a note, and when.
public struct Signature: Sendable, Hashable {
    public var name: String
    public var email: String
    public var date: Date
    /// Offset from UTC in minutes, as recorded in the commit.
    public var timeZoneOffsetMinutes: Int

    public init(name: String, email: String, date: Date = Date(), timeZoneOffsetMinutes: Int = 0) {
        self.name = name
        self.email = email
        // git stores whole seconds; keep the value that will be read back.
        self.date = Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down))
        self.timeZoneOffsetMinutes = timeZoneOffsetMinutes
    }
}

/// A `Key: value` line at the end of a commit message.
public struct Trailer: Sendable, Hashable, Codable {
    public var key: String
    public var value: String
    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }
}

/// A commit as read from the object database.
public struct Commit: Sendable, Hashable {
    public let id: ObjectID
    public let parents: [ObjectID]
    public let author: Signature
    public let committer: Signature
    /// The full message, trailers included.
    public let message: String

    public init(id: ObjectID, parents: [ObjectID], author: Signature, committer: Signature, message: String) {
        self.id = id
        self.parents = parents
        self.author = author
        self.committer = committer
        self.message = message
    }

    /// The first line of the message.
    public var summary: String { String(message.prefix(while: { $0 != "\n" })) }
    /// The trailers at the end of the message, in order.
    public var trailers: [Trailer] { Trailers.parse(message) }
    /// The value of the first trailer with this key (case-insensitive), if any.
    public func trailer(_ key: String) -> String? {
        trailers.first { $0.key.caseInsensitiveCompare(key) == .orderedSame }?.value
    }
}

/// One entry of a folder (a tree) at a commit.
public struct TreeEntry: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case file, executable, symlink, directory, submodule
    }
    public let name: String
    public let kind: Kind
    public let id: ObjectID

    public init(name: String, kind: Kind, id: ObjectID) {
        self.name = name
        self.kind = kind
        self.id = id
    }
}

/// One change to make in a commit.
public enum FileChange: Sendable, Hashable {
    /// Create or replace the file at a repository-relative path.
    case write(path: String, contents: Data)
    /// Remove the file at a repository-relative path.
    case delete(path: String)

    public var path: String {
        switch self {
        case .write(let path, _), .delete(let path): return path
        }
    }
}
