import Learning
import Manifests

/// Writes JSON text directly, as UTF-8 bytes: numbers in Swift's shortest round-trip form (so a client reads back
/// exactly the value computed), keys in the order given.
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    /// The text written so far.
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    public mutating func raw(_ fragment: String) { append(fragment) }

    /// A string's UTF-8 bytes, copied at once.
    private mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    public mutating func string(_ value: String) {
        // Most text needs no escape: written whole, between quotes.
        if !JSONValue.needsEscaping(value) {
            bytes.append(0x22)
            append(value)
            bytes.append(0x22)
        } else {
            var quoted = ""
            JSONValue.quote(value, into: &quoted)
            append(quoted)
        }
    }

    public mutating func number(_ value: Double) {
        if value.isFinite { append(formatNumber(value)) } else { raw("null") }
    }

    public mutating func numbers(_ values: [Double]) { list(values) { $0.number($1) } }

    public mutating func strings(_ values: [String]) { list(values) { $0.string($1) } }

    /// `[a,b,…]`, each element written by `element`.
    public mutating func list<T>(_ values: [T], _ element: (inout JSONWriter, T) -> Void) {
        bytes.append(0x5B)
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(0x2C) }
            element(&self, value)
        }
        bytes.append(0x5D)
    }
}
