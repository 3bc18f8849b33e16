import Learning
import Manifests

/// Writes JSON text directly: numbers in Swift's shortest round-trip form (so a client reads back exactly the
/// value computed), keys in the order given.
struct JSONWriter {
    private(set) var text = ""

    init(capacity: Int = 256) { text.reserveCapacity(capacity) }

    mutating func raw(_ fragment: String) { text += fragment }

    mutating func string(_ value: String) { JSONValue.quote(value, into: &text) }

    mutating func number(_ value: Double) { text += value.isFinite ? formatNumber(value) : "null" }

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
