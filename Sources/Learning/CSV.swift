public import Foundation

/// One column of a data set: numbers (NaN where missing) or categories (codes into `levels`, -1 where missing).
public enum Column: Sendable, Equatable {
    case numeric([Double])
    case categorical(codes: [Int32], levels: [String])

    public var count: Int {
        switch self {
        case .numeric(let values): return values.count
        case .categorical(let codes, _): return codes.count
        }
    }

    /// The value of row `row` as text (empty when missing), as it would be written back to CSV.
    public func text(at row: Int) -> String {
        switch self {
        case .numeric(let values): return values[row].isNaN ? "" : formatNumber(values[row])
        case .categorical(let codes, let levels): return codes[row] < 0 ? "" : levels[Int(codes[row])]
        }
    }
}

/// A table read from CSV: named columns of equal length.
public struct Dataset: Sendable {
    public var names: [String]
    public var columns: [Column]
    public var rowCount: Int
    /// The file name used in error messages.
    public var source: String

    public init(names: [String], columns: [Column], source: String = "data") {
        self.names = names
        self.columns = columns
        self.rowCount = columns.first?.count ?? 0
        self.source = source
    }

    public func column(_ name: String) -> Column? {
        names.firstIndex(of: name).map { columns[$0] }
    }

    /// The rows at `indices`, in that order.
    public func rows(_ indices: [Int]) -> Dataset {
        Dataset(names: names, columns: columns.map { column in
            switch column {
            case .numeric(let values): return .numeric(indices.map { values[$0] })
            case .categorical(let codes, let levels): return .categorical(codes: indices.map { codes[$0] }, levels: levels)
            }
        }, source: source)
    }
}

/// How a column must be read, when the caller knows (declared features); otherwise the type is inferred.
public enum ColumnType: Sendable, Equatable {
    case numeric, categorical
}

/// An RFC 4180 CSV reader: header row, quoted fields with embedded commas, quotes and newlines, LF or CRLF.
/// `NA`, `?` and empty fields are missing. Fields are located by offset into the input, without a string per field.
public enum CSVReader {
    /// Reads `data` (named `source` in errors).
    /// - Parameter types: columns whose type is known; a non-number in a numeric column is an error at its `row:column`.
    /// - Throws: ``LearningError`` with `source:row:column` for a ragged row, an unclosed quote or a non-numeric value.
    public static func read(_ data: Data, source: String, types: [String: ColumnType] = [:]) throws -> Dataset {
        try data.withUnsafeBytes { raw in
            try read(bytes: raw.bindMemory(to: UInt8.self), source: source, types: types)
        }
    }

    static func read(bytes: UnsafeBufferPointer<UInt8>, source: String, types: [String: ColumnType]) throws -> Dataset {
        var tokens = try tokenize(bytes, source: source)
        let width = tokens.width
        guard width > 0 else { throw LearningError(.malformedData, "\(source):1:1: the file is empty (expected a header row)") }
        let names = (0..<width).map { tokens.string(row: 0, column: $0, bytes) }
        var seen: Set<String> = []
        for (index, name) in names.enumerated() where !seen.insert(name).inserted {
            throw LearningError(.malformedData, "\(source):1:\(index + 1): column '\(name)' appears twice in the header")
        }
        let rows = tokens.rowCount - 1
        var columns = [Column?](repeating: nil, count: width)
        var failures = [LearningError?](repeating: nil, count: width)
        let shared = SharedTokens(tokens: tokens, bytes: bytes)
        columns.withUnsafeMutableBufferPointer { columnBuffer in
            failures.withUnsafeMutableBufferPointer { failureBuffer in
                let columnOut = SharedPointer(base: columnBuffer.baseAddress!)
                let failureOut = SharedPointer(base: failureBuffer.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: width) { column in
                    do {
                        columnOut[column] = try parseColumn(column, rows: rows, declared: types[names[column]], name: names[column], shared, source: source)
                    } catch let error as LearningError {
                        failureOut[column] = error
                    } catch {
                        failureOut[column] = LearningError(.malformedData, "\(source): \(error)")
                    }
                }
            }
        }
        tokens.release()
        if let failure = failures.compactMap({ $0 }).first { throw failure }
        return Dataset(names: names, columns: columns.map { $0! }, source: source)
    }

    // MARK: Tokenizing

    /// Field boundaries: for row r and column c, the field is bytes[starts[i] ..< ends[i]] with i = r * width + c.
    struct Tokens {
        var starts: UnsafeMutablePointer<UInt32>
        var ends: UnsafeMutablePointer<UInt32>
        var capacity: Int
        var count = 0
        var width = 0
        /// Fields that were quoted (rare): their text needs unescaping.
        var quoted: Set<Int> = []
        /// The line each row starts on (1-based), for error messages.
        var lines: [Int32] = []

        var rowCount: Int { width == 0 ? 0 : count / width }

        init(capacity: Int) {
            self.capacity = max(capacity, 16)
            starts = .allocate(capacity: self.capacity)
            ends = .allocate(capacity: self.capacity)
        }

        mutating func append(_ start: Int, _ end: Int) {
            if count == capacity {
                let newCapacity = capacity * 2
                let newStarts = UnsafeMutablePointer<UInt32>.allocate(capacity: newCapacity)
                let newEnds = UnsafeMutablePointer<UInt32>.allocate(capacity: newCapacity)
                newStarts.update(from: starts, count: count)
                newEnds.update(from: ends, count: count)
                starts.deallocate()
                ends.deallocate()
                starts = newStarts
                ends = newEnds
                capacity = newCapacity
            }
            starts[count] = UInt32(start)
            ends[count] = UInt32(end)
            count += 1
        }

        func release() {
            starts.deallocate()
            ends.deallocate()
        }

        func string(row: Int, column: Int, _ bytes: UnsafeBufferPointer<UInt8>) -> String {
            let index = row * width + column
            let start = Int(starts[index]), end = Int(ends[index])
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
            return quoted.contains(index) ? text.replacingOccurrences(of: "\"\"", with: "\"") : text
        }
    }

    struct SharedTokens: @unchecked Sendable {
        let tokens: Tokens
        let bytes: UnsafeBufferPointer<UInt8>
    }

    static func tokenize(_ bytes: UnsafeBufferPointer<UInt8>, source: String) throws -> Tokens {
        guard bytes.count < Int(UInt32.max) else { throw LearningError(.malformedData, "\(source): files over 4 GiB are not supported") }
        // A first guess at the number of fields: commas + newlines.
        var tokens = Tokens(capacity: bytes.count / 6)
        let comma: UInt8 = 44, quote: UInt8 = 34, newline: UInt8 = 10, carriageReturn: UInt8 = 13
        var position = 0
        var line = 1
        var fieldsInRow = 0
        let end = bytes.count
        var rowStartLine = 1
        while position < end {
            if fieldsInRow == 0 { rowStartLine = line }
            var fieldStart = position
            var fieldEnd: Int
            if bytes[position] == quote {
                // Quoted field: up to the closing quote; "" is an escaped quote.
                let openLine = line
                position += 1
                fieldStart = position
                var closed = false
                while position < end {
                    let byte = bytes[position]
                    if byte == quote {
                        if position + 1 < end && bytes[position + 1] == quote {
                            position += 2
                            continue
                        }
                        closed = true
                        break
                    }
                    if byte == newline { line += 1 }
                    position += 1
                }
                guard closed else {
                    throw LearningError(.malformedData, "\(source):\(openLine):\(fieldsInRow + 1): quoted field is never closed")
                }
                fieldEnd = position
                position += 1  // past the closing quote
                tokens.quoted.insert(tokens.count)
                if position < end, bytes[position] != comma, bytes[position] != newline, bytes[position] != carriageReturn {
                    throw LearningError(.malformedData, "\(source):\(line):\(fieldsInRow + 1): unexpected text after a closing quote")
                }
            } else {
                while position < end {
                    let byte = bytes[position]
                    if byte == comma || byte == newline { break }
                    position += 1
                }
                fieldEnd = position
                if fieldEnd > fieldStart && bytes[fieldEnd - 1] == carriageReturn && (position == end || bytes[position] == newline) {
                    fieldEnd -= 1
                }
            }
            if position < end && bytes[position] == carriageReturn { position += 1 }
            tokens.append(fieldStart, fieldEnd)
            fieldsInRow += 1
            if position >= end || bytes[position] == newline {
                // End of a record.
                if tokens.width == 0 {
                    tokens.width = fieldsInRow
                } else if fieldsInRow != tokens.width {
                    if fieldsInRow == 1 && fieldEnd == fieldStart {
                        tokens.count -= 1  // a blank line
                    } else {
                        throw LearningError(.malformedData,
                            "\(source):\(rowStartLine):\(min(fieldsInRow + 1, tokens.width + 1)): row has \(fieldsInRow) fields, expected \(tokens.width) as in the header")
                    }
                    fieldsInRow = 0
                    if position < end { position += 1; line += 1 }
                    continue
                }
                tokens.lines.append(Int32(rowStartLine))
                fieldsInRow = 0
                if position < end { position += 1; line += 1 }
            } else {
                position += 1  // past the comma
                if position == end {
                    // A trailing comma at the very end: one more, empty field.
                    tokens.append(end, end)
                    fieldsInRow += 1
                    if fieldsInRow != tokens.width {
                        throw LearningError(.malformedData,
                            "\(source):\(rowStartLine):\(min(fieldsInRow + 1, tokens.width + 1)): row has \(fieldsInRow) fields, expected \(tokens.width) as in the header")
                    }
                    tokens.lines.append(Int32(rowStartLine))
                }
            }
        }
        return tokens
    }

    // MARK: Columns

    static func isMissing(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        let length = end - start
        if length == 0 { return true }
        if length == 1 { return bytes[start] == 63 }  // ?
        if length == 2 { return bytes[start] == 78 && bytes[start + 1] == 65 }  // NA
        return false
    }

    static func parseColumn(
        _ column: Int, rows: Int, declared: ColumnType?, name: String, _ shared: SharedTokens, source: String
    ) throws -> Column {
        let tokens = shared.tokens, bytes = shared.bytes
        let width = tokens.width
        if declared != .categorical {
            var values = [Double](repeating: .nan, count: rows)
            var numeric = true
            values.withUnsafeMutableBufferPointer { out in
                for row in 0..<rows {
                    let index = (row + 1) * width + column
                    let start = Int(tokens.starts[index]), end = Int(tokens.ends[index])
                    if isMissing(bytes, start, end) { continue }
                    guard let value = parseDouble(bytes, start, end) else {
                        numeric = false
                        return
                    }
                    out[row] = value
                }
            }
            if numeric { return .numeric(values) }
            if declared == .numeric {
                for row in 0..<rows {
                    let index = (row + 1) * width + column
                    let start = Int(tokens.starts[index]), end = Int(tokens.ends[index])
                    if !isMissing(bytes, start, end) && parseDouble(bytes, start, end) == nil {
                        let text = tokens.string(row: row + 1, column: column, bytes)
                        throw LearningError(.invalidValue,
                            "\(source):\(tokens.lines[row + 1]):\(column + 1): '\(text)' in numeric column '\(name)' is not a number")
                    }
                }
            }
        }
        // Categorical: levels in order of first appearance, then sorted, so codes do not depend on row order.
        var lookup: [String: Int32] = [:]
        var firstSeen: [String] = []
        var rawCodes = [Int32](repeating: -1, count: rows)
        for row in 0..<rows {
            let index = (row + 1) * width + column
            let start = Int(tokens.starts[index]), end = Int(tokens.ends[index])
            if isMissing(bytes, start, end) { continue }
            let text = tokens.quoted.contains(index) ? tokens.string(row: row + 1, column: column, bytes)
                : String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
            if let code = lookup[text] {
                rawCodes[row] = code
            } else {
                let code = Int32(firstSeen.count)
                lookup[text] = code
                firstSeen.append(text)
                rawCodes[row] = code
            }
        }
        let levels = firstSeen.sorted()
        let remap = firstSeen.map { Int32(levels.firstIndex(of: $0)!) }
        return .categorical(codes: rawCodes.map { $0 < 0 ? -1 : remap[Int($0)] }, levels: levels)
    }

    /// Powers of ten that are exact in a Double.
    private static let exactPowers: [Double] = (0...22).map { pow(10, Double($0)) }

    /// Parses a decimal number (`-12.5e3`, `.5`, `1e-4`, `inf` is not accepted); nil when it is not one.
    /// Up to 19 significant digits and a small exponent take a fast exact path; anything else goes to `strtod`.
    static func parseDouble(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Double? {
        var position = start
        // Trim spaces.
        var stop = end
        while position < stop && bytes[position] == 32 { position += 1 }
        while stop > position && bytes[stop - 1] == 32 { stop -= 1 }
        guard position < stop else { return nil }
        var negative = false
        if bytes[position] == 45 || bytes[position] == 43 {
            negative = bytes[position] == 45
            position += 1
        }
        var mantissa: UInt64 = 0
        var digits = 0
        var exponent = 0
        var sawDigit = false
        while position < stop, bytes[position] &- 48 < 10 {
            if digits < 19 { mantissa = mantissa &* 10 &+ UInt64(bytes[position] &- 48); if mantissa > 0 { digits += 1 } } else { exponent += 1 }
            sawDigit = true
            position += 1
        }
        if position < stop && bytes[position] == 46 {
            position += 1
            while position < stop, bytes[position] &- 48 < 10 {
                if digits < 19 { mantissa = mantissa &* 10 &+ UInt64(bytes[position] &- 48); if mantissa > 0 { digits += 1 }; exponent -= 1 }
                sawDigit = true
                position += 1
            }
        }
        guard sawDigit else { return nil }
        if position < stop && (bytes[position] == 101 || bytes[position] == 69) {
            position += 1
            var exponentNegative = false
            if position < stop && (bytes[position] == 45 || bytes[position] == 43) {
                exponentNegative = bytes[position] == 45
                position += 1
            }
            var value = 0
            var sawExponentDigit = false
            while position < stop, bytes[position] &- 48 < 10 {
                value = min(value * 10 + Int(bytes[position] &- 48), 100_000)
                sawExponentDigit = true
                position += 1
            }
            guard sawExponentDigit else { return nil }
            exponent += exponentNegative ? -value : value
        }
        guard position == stop else { return nil }
        if digits <= 15 && mantissa < (1 << 53) && exponent >= -22 && exponent <= 22 {
            var value = Double(mantissa)
            value = exponent < 0 ? value / exactPowers[-exponent] : value * exactPowers[exponent]
            return negative ? -value : value
        }
        // The slow, exact path.
        var text = Array(UnsafeBufferPointer(rebasing: bytes[start..<end]))
        text.append(0)
        let value = text.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) { strtod($0, nil) }
        }
        return value.isFinite ? value : nil
    }
}

/// A number as Stagecraft writes it: whole numbers without a fraction, others in their shortest round-trip form.
public func formatNumber(_ value: Double) -> String {
    if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
    return "\(value)"
}
