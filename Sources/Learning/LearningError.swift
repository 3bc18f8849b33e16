/// A failure of the ML core: bad data, a feature that cannot be prepared, a model file that cannot be read.
public struct LearningError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The data cannot be read as CSV (a ragged row, an unclosed quote).
        public static let malformedData = Code("malformed-data")
        /// A value does not fit its feature (text in a numeric feature, a missing value where `missing: error`).
        public static let invalidValue = Code("invalid-value")
        /// A column the model needs is not in the data.
        public static let missingColumn = Code("missing-column")
        /// The data cannot train this model (one class only, no rows).
        public static let unusableData = Code("unusable-data")
        /// A model file that is not a Stagecraft model of a known format version.
        public static let invalidModelFile = Code("invalid-model-file")
    }

    public let code: Code
    /// What went wrong, with `file:row:column` when it is about one value.
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// A pointer that may be shared with the tasks of one parallel loop, each writing its own part.
struct SharedPointer<Element>: @unchecked Sendable {
    let base: UnsafeMutablePointer<Element>
    subscript(index: Int) -> Element {
        get { base[index] }
        nonmutating set { base[index] = newValue }
    }
}

/// A value (such as a closure) handed to the tasks of one parallel loop that only read it.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
