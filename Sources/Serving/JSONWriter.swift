import Learning

/// Writes JSON text directly: numbers in Swift's shortest round-trip form (so a client reads back exactly the
/// value computed), keys in the order given.
struct JSONWriter {
    private(set) var text = ""

    init(capacity: Int = 256) { text.reserveCapacity(capacity) }

    mutating func raw(_ fragment: String) { text += fragment }

    mutating func string(_ value: String) {
        text += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: text.unicodeScalars.append(scalar)
            }
        }
        text += "\""
    }

    mutating func number(_ value: Double) {
        text += value.isFinite ? (value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : value.description) : "null"
    }

    mutating func numbers(_ values: [Double]) {
        text += "["
        for (index, value) in values.enumerated() {
            if index > 0 { text += "," }
            number(value)
        }
        text += "]"
    }

    mutating func strings(_ values: [String]) {
        text += "["
        for (index, value) in values.enumerated() {
            if index > 0 { text += "," }
            string(value)
        }
        text += "]"
    }
}
