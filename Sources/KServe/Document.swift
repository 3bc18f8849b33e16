/// A Kubernetes object as Stagecraft writes it: maps keep the order they are built in (`apiVersion`, `kind`,
/// `metadata`, `spec`), whole numbers stay integers. Written as JSON (what `kubectl apply` reads) or YAML (what
/// people read).
public indirect enum Document: Equatable, Sendable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case list([Document])
    case map([(String, Document)])

    public static func == (lhs: Document, rhs: Document) -> Bool {
        switch (lhs, rhs) {
        case (.string(let a), .string(let b)): return a == b
        case (.int(let a), .int(let b)): return a == b
        case (.bool(let a), .bool(let b)): return a == b
        case (.list(let a), .list(let b)): return a == b
        case (.map(let a), .map(let b)): return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// The value under `key` of a map.
    public subscript(key: String) -> Document? {
        guard case .map(let members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    /// The text of a string value.
    public var text: String? {
        guard case .string(let value) = self else { return nil }
        return value
    }

    /// Compact JSON with the keys in their order.
    public var json: String {
        var out = ""
        writeJSON(to: &out)
        return out
    }

    private func writeJSON(to out: inout String) {
        switch self {
        case .string(let value): Self.quote(value, into: &out)
        case .int(let value): out += String(value)
        case .bool(let value): out += value ? "true" : "false"
        case .list(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                item.writeJSON(to: &out)
            }
            out += "]"
        case .map(let members):
            out += "{"
            for (index, (key, value)) in members.enumerated() {
                if index > 0 { out += "," }
                Self.quote(key, into: &out)
                out += ":"
                value.writeJSON(to: &out)
            }
            out += "}"
        }
    }

    /// Block-style YAML; a string that could read back as anything but itself is written as a JSON string literal
    /// (also valid YAML).
    public var yaml: String {
        var out = ""
        writeYAML(to: &out, indent: "")
        return out
    }

    private func writeYAML(to out: inout String, indent: String) {
        switch self {
        case .map(let members) where !members.isEmpty:
            for (key, value) in members {
                out += indent + Self.scalar(key) + ":"
                value.writeNested(to: &out, indent: indent + "  ")
            }
        case .list(let items) where !items.isEmpty:
            for item in items {
                var nested = ""
                item.writeYAML(to: &nested, indent: indent + "  ")
                // The first line of an item goes after its dash.
                out += indent + "- " + nested.dropFirst(indent.count + 2)
            }
        default: out += indent + inline + "\n"
        }
    }

    /// A map member's value: on the key's line when a scalar (or empty), else on the lines below.
    private func writeNested(to out: inout String, indent: String) {
        switch self {
        case .map(let members) where !members.isEmpty:
            out += "\n"
            writeYAML(to: &out, indent: indent)
        case .list(let items) where !items.isEmpty:
            out += "\n"
            writeYAML(to: &out, indent: String(indent.dropLast(2)))
        default: out += " " + inline + "\n"
        }
    }

    private var inline: String {
        switch self {
        case .string(let value): return Self.scalar(value)
        case .int(let value): return String(value)
        case .bool(let value): return value ? "true" : "false"
        case .list: return "[]"
        case .map: return "{}"
        }
    }

    /// `text` plain when YAML reads it back as that string, else quoted.
    private static func scalar(_ text: String) -> String {
        // Numbers, dates, times and sexagesimals start with a digit (or a sign or point) and hold no letter, or a `-`
        // or `:` after the digit; YAML 1.1 readers would not give those back as strings.
        let numeric =
            text.first.map { "0123456789.+-".contains($0) } == true
            && (!text.contains { $0.isLetter } || text.contains("-") || text.contains(":"))
        let plain =
            !text.isEmpty && text.utf8.allSatisfy { Self.plainBytes.contains($0) } && !numeric && !text.hasSuffix(":")
            && !Self.ambiguous.contains(text.lowercased())
        if plain { return text }
        var out = ""
        quote(text, into: &out)
        return out
    }

    private static let plainBytes = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@".utf8)
    private static let ambiguous: Set<String> = ["true", "false", "yes", "no", "on", "off", "null", "y", "n", "~", ".inf", ".nan"]

    private static func quote(_ text: String, into out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out +=
                        "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                        + String(scalar.value, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
