public import Foundation

/// A parsed JSON value. Numbers keep their exact value (Foundation's JSONSerialization on Linux rounds some
/// doubles to a neighbour, which would change a model's inputs).
public enum JSON: Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    /// The value as Foundation's JSON objects (`[String: Any]`, `[Any]`, `NSNumber`, `String`, `NSNull`), each number
    /// the exact double the text wrote, and `true`/`false` as boolean numbers.
    public var foundation: Any {
        switch self {
        case .null: return NSNull()
        case .bool(let value): return NSNumber(value: value)
        case .number(let value): return NSNumber(value: value)
        case .string(let value): return value
        case .array(let values): return values.map(\.foundation)
        case .object(let members):
            var object: [String: Any] = [:]
            for (key, value) in members { object[key] = value.foundation }
            return object
        }
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    public subscript(key: String) -> JSON? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    /// Parses a complete JSON text; nil when it is not one.
    public static func parse(_ data: Data) -> JSON? {
        data.withUnsafeBytes { parse($0) }
    }

    /// Parses a complete JSON text; nil when it is not one.
    public static func parse(_ raw: UnsafeRawBufferPointer) -> JSON? {
        var parser = Parser(bytes: raw.bindMemory(to: UInt8.self))
        guard let value = parser.value(depth: 0) else { return nil }
        parser.skipSpace()
        return parser.position == parser.bytes.count ? value : nil
    }

    private struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        mutating func skipSpace() {
            while position < bytes.count, [32, 9, 10, 13].contains(bytes[position]) { position += 1 }
        }

        mutating func value(depth: Int) -> JSON? {
            guard depth < 64 else { return nil }
            skipSpace()
            guard position < bytes.count else { return nil }
            switch bytes[position] {
            case 123: return object(depth: depth)
            case 91: return array(depth: depth)
            case 34: return string().map(JSON.string)
            case 116: return literal("true", .bool(true))
            case 102: return literal("false", .bool(false))
            case 110: return literal("null", .null)
            default: return number()
            }
        }

        mutating func literal(_ word: String, _ value: JSON) -> JSON? {
            let utf8 = Array(word.utf8)
            guard position + utf8.count <= bytes.count, Array(bytes[position..<(position + utf8.count)]) == utf8 else { return nil }
            position += utf8.count
            return value
        }

        mutating func number() -> JSON? {
            let start = position
            if position < bytes.count, bytes[position] == 45 { position += 1 }
            let digitsStart = position
            while position < bytes.count, bytes[position] &- 48 < 10 { position += 1 }
            guard position > digitsStart else { return nil }
            if bytes[digitsStart] == 48 && position - digitsStart > 1 { return nil }  // no leading zeros
            if position < bytes.count, bytes[position] == 46 {
                position += 1
                let fraction = position
                while position < bytes.count, bytes[position] &- 48 < 10 { position += 1 }
                guard position > fraction else { return nil }
            }
            if position < bytes.count, bytes[position] == 101 || bytes[position] == 69 {
                position += 1
                if position < bytes.count, bytes[position] == 43 || bytes[position] == 45 { position += 1 }
                let exponent = position
                while position < bytes.count, bytes[position] &- 48 < 10 { position += 1 }
                guard position > exponent else { return nil }
            }
            // The CSV reader's conversion rounds correctly (an exact fast path, strtod otherwise).
            // It refuses what overflows, which JSON allows and the request decoder reports as not finite.
            if let value = CSVReader.parseDouble(bytes, start, position) { return .number(value) }
            return Double(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)).map(JSON.number)
        }

        mutating func string() -> String? {
            position += 1  // opening quote
            // Most strings have no escapes: made straight from their bytes.
            var end = position
            while end < bytes.count, bytes[end] != 34, bytes[end] != 92, bytes[end] >= 0x20 { end += 1 }
            if end < bytes.count, bytes[end] == 34 {
                defer { position = end + 1 }
                return String(decoding: UnsafeBufferPointer(rebasing: bytes[position..<end]), as: UTF8.self)
            }
            var utf8: [UInt8] = []
            while position < bytes.count {
                let byte = bytes[position]
                switch byte {
                case 34:
                    position += 1
                    return String(decoding: utf8, as: UTF8.self)
                case 92:
                    position += 1
                    guard position < bytes.count else { return nil }
                    let escape = bytes[position]
                    position += 1
                    switch escape {
                    case 34, 92, 47: utf8.append(escape)
                    case 98: utf8.append(8)
                    case 102: utf8.append(12)
                    case 110: utf8.append(10)
                    case 114: utf8.append(13)
                    case 116: utf8.append(9)
                    case 117:
                        guard var scalar = hex4() else { return nil }
                        if (0xD800..<0xDC00).contains(scalar) {
                            // A surrogate pair: \uD83D\uDE00
                            guard position + 1 < bytes.count, bytes[position] == 92, bytes[position + 1] == 117 else { return nil }
                            position += 2
                            guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let unicode = Unicode.Scalar(scalar) else { return nil }
                        utf8.append(contentsOf: Array(String(Character(unicode)).utf8))
                    default: return nil
                    }
                default:
                    guard byte >= 0x20 else { return nil }
                    utf8.append(byte)
                    position += 1
                }
            }
            return nil
        }

        mutating func hex4() -> UInt32? {
            guard position + 4 <= bytes.count else { return nil }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[position]
                let digit: UInt8
                switch byte {
                case 48...57: digit = byte - 48
                case 97...102: digit = byte - 87
                case 65...70: digit = byte - 55
                default: return nil
                }
                value = value * 16 + UInt32(digit)
                position += 1
            }
            return value
        }

        mutating func array(depth: Int) -> JSON? {
            position += 1
            var items: [JSON] = []
            skipSpace()
            if position < bytes.count, bytes[position] == 93 { position += 1; return .array(items) }
            while true {
                guard let item = value(depth: depth + 1) else { return nil }
                items.append(item)
                skipSpace()
                guard position < bytes.count else { return nil }
                if bytes[position] == 44 { position += 1; continue }
                if bytes[position] == 93 { position += 1; return .array(items) }
                return nil
            }
        }

        mutating func object(depth: Int) -> JSON? {
            position += 1
            var members: [(String, JSON)] = []
            skipSpace()
            if position < bytes.count, bytes[position] == 125 { position += 1; return .object(members) }
            while true {
                skipSpace()
                guard position < bytes.count, bytes[position] == 34, let key = string() else { return nil }
                skipSpace()
                guard position < bytes.count, bytes[position] == 58 else { return nil }
                position += 1
                guard let item = value(depth: depth + 1) else { return nil }
                members.append((key, item))
                skipSpace()
                guard position < bytes.count else { return nil }
                if bytes[position] == 44 { position += 1; continue }
                if bytes[position] == 125 { position += 1; return .object(members) }
                return nil
            }
        }
    }
}
