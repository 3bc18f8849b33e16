public import Foundation

/// The SHA-1 name of a git object, as 40 lowercase hex digits.
public struct ObjectID: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    /// The full 40-digit hex name.
    public let hex: String

    /// Wraps a full 40-digit hex name; returns nil for anything else.
    public init?(hex: String) {
        let lower = hex.lowercased()
        guard lower.utf8.count == 40, lower.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) })
        else { return nil }
        self.hex = lower
    }

    init(validHex: String) { self.hex = validHex }

    /// The first 12 hex digits, as Stagecraft prints commits.
    public var short: String { String(hex.prefix(12)) }
    public var description: String { hex }
    public static func < (lhs: ObjectID, rhs: ObjectID) -> Bool { lhs.hex < rhs.hex }

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
