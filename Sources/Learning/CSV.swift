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

    /// The column named `name`, looked for at `position` first: data sets made for a model (a request's rows) keep
    /// its features' order, so a lookup per feature does not compare every name.
    func column(_ name: String, expectedAt position: Int) -> Column? {
        if position < names.count, names[position] == name { return columns[position] }
        return column(name)
    }

    /// The rows at `indices` (ascending); the data set itself when that is every row.
    func keeping(_ indices: [Int]) -> Dataset {
        indices.count == rowCount ? self : rows(indices)
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
        let tokens = try tokenize(bytes, source: source)
        let width = tokens.width
        guard width > 0 else { throw LearningError(.malformedData, "\(source):1:1: the file is empty (expected a header row)") }
        let names = (0..<width).map { tokens.string(row: 0, column: $0, bytes) }
        var seen: Set<String> = []
        for (index, name) in names.enumerated() where !seen.insert(name).inserted {
            throw LearningError(.malformedData, "\(source):1:\(index + 1): column '\(name)' appears twice in the header")
        }
        let rows = tokens.rowCount - 1
        let shared = SharedTokens(tokens: tokens, bytes: bytes)
        // Numbers first, row by row in parallel chunks (the field offsets are read in order); a column with any
        // text in it is read again below as categories.
        let numericCandidates = names.map { types[$0] != .categorical }
        let chunks = RowChunks(rows: rows)
        let numbers = UnsafeMutablePointer<Double>.allocate(capacity: max(rows * width, 1))
        defer { numbers.deallocate() }
        var sawText = [Bool](repeating: false, count: max(chunks.count, 1) * width)
        sawText.withUnsafeMutableBufferPointer { flags in
            let flags = SharedPointer(base: flags.baseAddress!), out = SharedPointer(base: numbers)
            DispatchQueue.concurrentPerform(iterations: chunks.count) { chunk in
                let tokens = shared.tokens, bytes = shared.bytes
                for row in chunks.range(chunk) {
                    let first = (row + 1) * width
                    for column in 0..<width where numericCandidates[column] {
                        let start = Int(tokens.starts[first + column]), end = Int(tokens.ends[first + column])
                        if isMissing(bytes, start, end) {
                            out[column * rows + row] = .nan
                        } else if let value = parseDouble(bytes, start, end) {
                            out[column * rows + row] = value
                        } else {
                            out[column * rows + row] = .nan
                            flags[chunk * width + column] = true
                        }
                    }
                }
            }
        }
        var columns = [Column?](repeating: nil, count: width)
        var failures = [LearningError?](repeating: nil, count: width)
        let textColumns = (0..<width).map { column in
            !numericCandidates[column] || (0..<chunks.count).contains { sawText[$0 * width + column] }
        }
        columns.withUnsafeMutableBufferPointer { columnBuffer in
            failures.withUnsafeMutableBufferPointer { failureBuffer in
                let columnOut = SharedPointer(base: columnBuffer.baseAddress!)
                let failureOut = SharedPointer(base: failureBuffer.baseAddress!)
                let numbers = SharedConstPointer(base: UnsafePointer(numbers))
                DispatchQueue.concurrentPerform(iterations: width) { column in
                    guard textColumns[column] else {
                        columnOut[column] = .numeric(Array(UnsafeBufferPointer(start: numbers.base + column * rows, count: rows)))
                        return
                    }
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

        /// False when the storage belongs to another Tokens (a chunk writing into its slice of the whole).
        var owned = true

        init(capacity: Int) {
            self.capacity = max(capacity, 16)
            starts = .allocate(capacity: self.capacity)
            ends = .allocate(capacity: self.capacity)
        }

        /// A view that writes into `capacity` slots at `starts` and `ends`, owned by someone else.
        init(starts: UnsafeMutablePointer<UInt32>, ends: UnsafeMutablePointer<UInt32>, capacity: Int) {
            self.starts = starts
            self.ends = ends
            self.capacity = capacity
            self.owned = false
        }

        mutating func append(_ start: Int, _ end: Int) {
            if count == capacity {
                let wasBorrowed = !owned
                owned = true  // outgrew a borrowed slice: the caller sees the new storage and falls back
                let newCapacity = capacity * 2
                let newStarts = UnsafeMutablePointer<UInt32>.allocate(capacity: newCapacity)
                let newEnds = UnsafeMutablePointer<UInt32>.allocate(capacity: newCapacity)
                newStarts.update(from: starts, count: count)
                newEnds.update(from: ends, count: count)
                if capacity != 0 && !wasBorrowed { starts.deallocate(); ends.deallocate() }
                starts = newStarts
                ends = newEnds
                capacity = newCapacity
            }
            starts[count] = UInt32(start)
            ends[count] = UInt32(end)
            count += 1
        }

        func release() {
            guard owned else { return }
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

    /// Tokenizes the whole file: in parallel chunks when it has no quote character (so that every newline ends a
    /// record), otherwise in one pass.
    static func tokenize(_ bytes: UnsafeBufferPointer<UInt8>, source: String) throws -> Tokens {
        guard bytes.count < Int(UInt32.max) else { throw LearningError(.malformedData, "\(source): files over 4 GiB are not supported") }
        let chunkCount = bytes.count > 4_000_000 ? 4 * ProcessInfo.processInfo.activeProcessorCount : 1
        guard chunkCount > 1, memchr(bytes.baseAddress!, 34, bytes.count) == nil,
              let newlineAt = memchr(bytes.baseAddress!, 10, bytes.count)
        else {
            return try tokenize(bytes, from: 0, to: bytes.count, firstLine: 1, width: nil, source: source)
        }
        let headerEnd = UnsafeRawPointer(newlineAt) - UnsafeRawPointer(bytes.baseAddress!) + 1
        let header = try tokenize(bytes, from: 0, to: headerEnd, firstLine: 1, width: nil, source: source)
        // Chunk boundaries just after a newline.
        var bounds = [headerEnd]
        for chunk in 1..<chunkCount {
            var position = max(bounds.last!, headerEnd + (bytes.count - headerEnd) * chunk / chunkCount)
            while position < bytes.count && bytes[position - 1] != 10 { position += 1 }
            if position > bounds.last! && position < bytes.count { bounds.append(position) }
        }
        bounds.append(bytes.count)
        let ranges = zip(bounds, bounds.dropFirst()).map { $0 ..< $1 }
        // Lines and fields in each chunk (without quotes, every comma and newline ends a field), so that every
        // chunk can write its fields straight into its own slice of one table.
        var counts = [(newlines: Int, fields: Int)](repeating: (0, 0), count: ranges.count)
        counts.withUnsafeMutableBufferPointer { buffer in
            let out = SharedPointer<(newlines: Int, fields: Int)>(base: buffer.baseAddress!), base = SharedConstPointer<UInt8>(base: bytes.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: ranges.count) { index in
                var newlines = 0, commas = 0
                for position in ranges[index] {
                    let byte = base.base[position]
                    if byte == 10 { newlines += 1 } else if byte == 44 { commas += 1 }
                }
                let range = ranges[index]
                let unterminated = range.upperBound > range.lowerBound && base.base[range.upperBound - 1] != 10 ? 1 : 0
                out[index] = (newlines, commas + newlines + unterminated)
            }
        }
        var firstLines: [Int] = [], firstFields: [Int] = []
        var line = 2, field = header.count
        for count in counts {
            firstLines.append(line); line += count.newlines
            firstFields.append(field); field += count.fields
        }
        var merged = Tokens(capacity: field)
        merged.width = header.width
        merged.starts.update(from: header.starts, count: header.count)
        merged.ends.update(from: header.ends, count: header.count)
        header.release()
        let lineStarts = firstLines, fieldStarts = firstFields, expected = counts.map(\.fields)
        var results = [Result<Tokens, any Error>?](repeating: nil, count: ranges.count)
        let shared = SharedTokens(tokens: merged, bytes: bytes)
        results.withUnsafeMutableBufferPointer { buffer in
            let out = SharedPointer<Result<Tokens, any Error>?>(base: buffer.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: ranges.count) { index in
                let slice = Tokens(starts: shared.tokens.starts + fieldStarts[index], ends: shared.tokens.ends + fieldStarts[index],
                                   capacity: expected[index])
                out[index] = Result<Tokens, any Error>(catching: {
                    try tokenize(shared.bytes, from: ranges[index].lowerBound, to: ranges[index].upperBound, firstLine: lineStarts[index],
                                 width: shared.tokens.width, source: source, into: slice)
                })
            }
        }
        var parts: [Tokens] = []
        var failure: (any Error)?
        for result in results {
            switch result! {
            case .success(let part): parts.append(part)
            case .failure(let error): failure = failure ?? error
            }
        }
        // A chunk whose fields did not fill its slice exactly (blank lines) or outgrew it: read the file in one pass.
        let exact = failure == nil && zip(parts, expected).allSatisfy { !$0.owned && $0.count == $1 }
        for part in parts { part.release() }
        if let failure { merged.release(); throw failure }
        guard exact else {
            merged.release()
            return try tokenize(bytes, from: 0, to: bytes.count, firstLine: 1, width: nil, source: source)
        }
        merged.count = field
        merged.lines = [1] + parts.flatMap(\.lines)
        return merged
    }

    /// Tokenizes bytes[from..<to], whose first byte is on line `firstLine`; `width` is the header's when known.
    static func tokenize(_ bytes: UnsafeBufferPointer<UInt8>, from: Int, to: Int, firstLine: Int, width: Int?, source: String,
                         into storage: Tokens? = nil) throws -> Tokens {
        // A first guess at the number of fields, unless the caller gives the storage.
        var tokens = storage ?? Tokens(capacity: (to - from) / 6)
        if let width { tokens.width = width }
        let comma: UInt8 = 44, quote: UInt8 = 34, newline: UInt8 = 10, carriageReturn: UInt8 = 13
        var position = from
        var line = firstLine
        var fieldsInRow = 0
        let end = to
        var rowStartLine = firstLine
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
        // The first few levels are also kept as byte ranges in the file: an unquoted field is matched against them
        // byte for byte, without making a string or hashing one (most categorical columns have few levels).
        var recent: [(start: Int, count: Int, code: Int32)] = []
        let quoted = !tokens.quoted.isEmpty
        rows: for row in 0..<rows {
            let index = (row + 1) * width + column
            let start = Int(tokens.starts[index]), end = Int(tokens.ends[index])
            if isMissing(bytes, start, end) { continue }
            let isQuoted = quoted && tokens.quoted.contains(index)
            if !isQuoted {
                for level in recent where level.count == end - start && memcmp(bytes.baseAddress! + level.start, bytes.baseAddress! + start, level.count) == 0 {
                    rawCodes[row] = level.code
                    continue rows
                }
            }
            let text = isQuoted ? tokens.string(row: row + 1, column: column, bytes)
                : String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
            defer { if !isQuoted && recent.count < 16 { recent.append((start, end - start, rawCodes[row])) } }
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
    public static func parseDouble(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Double? {
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

/// Writing CSV.
public enum CSVWriter {
    /// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
    public static func field(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// One CSV line (with its newline).
    public static func line(_ fields: [String]) -> String { fields.map(field).joined(separator: ",") + "\n" }
}
