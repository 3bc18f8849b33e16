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
        Dataset(
            names: names,
            columns: columns.map { column in
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
        if let dataset = try readUnquoted(bytes, source: source, types: types) { return dataset }
        let tokens = try tokenize(bytes, source: source)
        let width = tokens.width
        let names = try headerNames(tokens, bytes, source: source)
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
            let flags = SharedPointer(base: flags.baseAddress!)
            let out = SharedPointer(base: numbers)
            DispatchQueue.concurrentPerform(iterations: chunks.count) { chunk in
                let tokens = shared.tokens
                let bytes = shared.bytes
                for row in chunks.range(chunk) {
                    let first = (row + 1) * width
                    for column in 0..<width where numericCandidates[column] {
                        let start = Int(tokens.starts[first + column])
                        let end = Int(tokens.ends[first + column])
                        if let value = number(bytes, start, end) {
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
                        columnOut[column] = try parseColumn(
                            column, rows: rows, declared: types[names[column]], name: names[column], shared, source: source)
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

    /// The column names in the header row (row 0 of `tokens`), which must be there and distinct.
    static func headerNames(_ tokens: Tokens, _ bytes: UnsafeBufferPointer<UInt8>, source: String) throws -> [String] {
        guard tokens.width > 0 else { throw LearningError(.malformedData, "\(source):1:1: the file is empty (expected a header row)") }
        let names = (0..<tokens.width).map { tokens.string(row: 0, column: $0, bytes) }
        var seen: Set<String> = []
        for (index, name) in names.enumerated() where !seen.insert(name).inserted {
            throw LearningError(.malformedData, "\(source):1:\(index + 1): column '\(name)' appears twice in the header")
        }
        return names
    }

    // MARK: Files without quotes

    /// Reads a file with no quote character in one pass over its records, in parallel chunks of whole lines (every
    /// newline ends a record, every comma a field): numbers are parsed straight into their columns, and only the
    /// fields of text columns are located for reading as categories. Returns nil when the file must be read the
    /// general way: quotes, blank or ragged lines, a column that turns from numbers to text after its first rows.
    /// The general reader reads such a file again and names any error exactly.
    static func readUnquoted(_ bytes: UnsafeBufferPointer<UInt8>, source: String, types: [String: ColumnType]) throws -> Dataset? {
        guard bytes.count > 0, bytes.count < Int(UInt32.max), memchr(bytes.baseAddress!, 34, bytes.count) == nil,
            let newlineAt = memchr(bytes.baseAddress!, 10, bytes.count)
        else { return nil }
        let headerEnd = UnsafeRawPointer(newlineAt) - UnsafeRawPointer(bytes.baseAddress!) + 1
        let header = try tokenize(bytes, from: 0, to: headerEnd, firstLine: 1, width: nil, source: source)
        defer { header.release() }
        let names = try headerNames(header, bytes, source: source)
        let width = names.count
        let ranges = lineChunks(bytes, after: headerEnd)
        // Records per chunk: its newlines, and a last line without one.
        var rowsOfChunk = [Int](repeating: 0, count: ranges.count)
        rowsOfChunk.withUnsafeMutableBufferPointer { buffer in
            let out = SharedPointer(base: buffer.baseAddress!)
            let base = SharedConstPointer(base: bytes.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: ranges.count) { index in
                let range = ranges[index]
                var newlines = 0
                for position in range where base.base[position] == 10 { newlines &+= 1 }
                out[index] = newlines + (range.isEmpty || base.base[range.upperBound - 1] == 10 ? 0 : 1)
            }
        }
        var firstRows: [Int] = []
        var total = 0
        for count in rowsOfChunk {
            firstRows.append(total)
            total += count
        }
        guard total > 0 else { return nil }
        let rows = total
        let rowsOfChunks = rowsOfChunk
        let firstRowOfChunks = firstRows
        let shared = SharedBytes(bytes: bytes)

        // Which columns are text: declared categorical, or undeclared and not all numbers (or missing) in the first
        // 100 records. Text in a column declared numeric is an error, which the general reader reports.
        var isText = names.map { types[$0] == .categorical }
        var textInNumeric = false
        let sampled = scanRecords(
            bytes, from: ranges[0].lowerBound, to: ranges[0].upperBound, rows: min(100, rowsOfChunk[0]),
            width: width
        ) { _, column, start, end in
            if !isText[column] && number(bytes, start, end) == nil {
                if types[names[column]] == .numeric { textInNumeric = true } else { isText[column] = true }
            }
        }
        guard sampled && !textInNumeric else { return nil }
        let textColumns = (0..<width).filter { isText[$0] }
        var slots = [Int](repeating: -1, count: width)
        for (slot, column) in textColumns.enumerated() { slots[column] = slot }
        let textSlot = slots

        // Numbers column by column; text fields as (start, end) offsets, text column by text column.
        let numbers = UnsafeMutablePointer<Double>.allocate(capacity: rows * width)
        defer { numbers.deallocate() }
        let offsets = UnsafeMutablePointer<UInt32>.allocate(capacity: max(2 * rows * textColumns.count, 1))
        defer { offsets.deallocate() }
        var usable = [Bool](repeating: true, count: ranges.count)
        usable.withUnsafeMutableBufferPointer { flags in
            let flags = SharedPointer(base: flags.baseAddress!)
            let numbersOut = SharedPointer(base: numbers)
            let offsetsOut = SharedPointer(base: offsets)
            DispatchQueue.concurrentPerform(iterations: ranges.count) { index in
                let firstRow = firstRowOfChunks[index]
                let bytes = shared.bytes
                var mixed = false
                let whole = scanRecords(
                    bytes, from: ranges[index].lowerBound, to: ranges[index].upperBound, rows: rowsOfChunks[index],
                    width: width
                ) { row, column, start, end in
                    let row = firstRow &+ row
                    let slot = textSlot[column]
                    if slot >= 0 {
                        let at = 2 &* (slot &* rows &+ row)
                        offsetsOut[at] = UInt32(truncatingIfNeeded: start)
                        offsetsOut[at &+ 1] = UInt32(truncatingIfNeeded: end)
                    } else if let value = number(bytes, start, end) {
                        numbersOut[column &* rows &+ row] = value
                    } else {
                        mixed = true
                    }
                }
                flags[index] = whole && !mixed
            }
        }
        guard !usable.contains(false) else { return nil }

        var columns = [Column?](repeating: nil, count: width)
        columns.withUnsafeMutableBufferPointer { buffer in
            let out = SharedPointer(base: buffer.baseAddress!)
            let numbers = SharedConstPointer(base: UnsafePointer(numbers))
            let offsets = SharedConstPointer(base: UnsafePointer(offsets))
            DispatchQueue.concurrentPerform(iterations: width) { column in
                let slot = textSlot[column]
                guard slot >= 0 else {
                    out[column] = .numeric(Array(UnsafeBufferPointer(start: numbers.base + column * rows, count: rows)))
                    return
                }
                let fields = offsets.base + 2 * slot * rows
                out[column] = categories(rows: rows, shared.bytes) { row in
                    (Int(fields[2 &* row]), Int(fields[2 &* row &+ 1]), false)
                }
            }
        }
        return Dataset(names: names, columns: columns.map { $0! }, source: source)
    }

    /// Reads `rows` records of `width` fields from bytes[from..<to] (no quotes: commas end fields, newlines records, a
    /// carriage return before a newline is dropped), calling `field(record, column, start, end)` for each field. False
    /// when a record has another number of fields (a blank line is one empty field).
    @inline(__always)
    static func scanRecords(
        _ bytes: UnsafeBufferPointer<UInt8>, from: Int, to: Int, rows: Int, width: Int,
        _ field: (Int, Int, Int, Int) -> Void
    ) -> Bool {
        let base = bytes.baseAddress!
        var position = from
        for row in 0..<rows {
            for column in 0..<width {
                let start = position
                while position < to {
                    let byte = base[position]
                    if byte == 44 || byte == 10 { break }
                    position &+= 1
                }
                let endsRecord = position == to || base[position] == 10
                guard endsRecord == (column == width - 1) else { return false }
                var end = position
                if endsRecord && end > start && base[end - 1] == 13 { end -= 1 }
                field(row, column, start, end)
                position &+= 1
            }
        }
        return true
    }

    /// Ranges of bytes[headerEnd...] for reading in parallel: about equal, each ending just after a newline (or at
    /// the end of the file); one range for a file under 4 MB.
    static func lineChunks(_ bytes: UnsafeBufferPointer<UInt8>, after headerEnd: Int) -> [Range<Int>] {
        let chunkCount = bytes.count > 4_000_000 ? 4 * ProcessInfo.processInfo.activeProcessorCount : 1
        var bounds = [headerEnd]
        for chunk in 1..<max(chunkCount, 1) {
            var position = max(bounds.last!, headerEnd + (bytes.count - headerEnd) * chunk / chunkCount)
            while position < bytes.count && bytes[position - 1] != 10 { position += 1 }
            if position > bounds.last! && position < bytes.count { bounds.append(position) }
        }
        bounds.append(bytes.count)
        return zip(bounds, bounds.dropFirst()).map { $0..<$1 }
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
                if capacity != 0 && !wasBorrowed {
                    starts.deallocate()
                    ends.deallocate()
                }
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
            return CSVReader.fieldText(bytes, Int(starts[index]), Int(ends[index]), quoted: quoted.contains(index))
        }
    }

    /// The bytes of a file, read (never written) by the tasks of one parallel loop.
    struct SharedBytes: @unchecked Sendable {
        let bytes: UnsafeBufferPointer<UInt8>
    }

    struct SharedTokens: @unchecked Sendable {
        let tokens: Tokens
        let bytes: UnsafeBufferPointer<UInt8>
    }

    /// Tokenizes the whole file: in parallel chunks (`lineChunks`) when it has no quote character (so that every
    /// newline ends a record) and is large enough to cut, otherwise in one pass.
    static func tokenize(_ bytes: UnsafeBufferPointer<UInt8>, source: String) throws -> Tokens {
        guard bytes.count < Int(UInt32.max) else { throw LearningError(.malformedData, "\(source): files over 4 GiB are not supported") }
        let oneChunk = { try tokenize(bytes, from: 0, to: bytes.count, firstLine: 1, width: nil, source: source) }
        guard bytes.count > 0, memchr(bytes.baseAddress!, 34, bytes.count) == nil,
            let newlineAt = memchr(bytes.baseAddress!, 10, bytes.count)
        else { return try oneChunk() }
        let headerEnd = UnsafeRawPointer(newlineAt) - UnsafeRawPointer(bytes.baseAddress!) + 1
        let ranges = lineChunks(bytes, after: headerEnd)
        guard ranges.count > 1 else { return try oneChunk() }
        let header = try tokenize(bytes, from: 0, to: headerEnd, firstLine: 1, width: nil, source: source)
        // Lines and fields in each chunk (without quotes, every comma and newline ends a field), so that every
        // chunk can write its fields straight into its own slice of one table.
        var counts = [(newlines: Int, fields: Int)](repeating: (0, 0), count: ranges.count)
        counts.withUnsafeMutableBufferPointer { buffer in
            let out = SharedPointer<(newlines: Int, fields: Int)>(base: buffer.baseAddress!)
            let base = SharedConstPointer<UInt8>(base: bytes.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: ranges.count) { index in
                var newlines = 0
                var commas = 0
                for position in ranges[index] {
                    let byte = base.base[position]
                    if byte == 10 { newlines += 1 } else if byte == 44 { commas += 1 }
                }
                let range = ranges[index]
                let unterminated = range.upperBound > range.lowerBound && base.base[range.upperBound - 1] != 10 ? 1 : 0
                out[index] = (newlines, commas + newlines + unterminated)
            }
        }
        var firstLines: [Int] = []
        var firstFields: [Int] = []
        var line = 2
        var field = header.count
        for count in counts {
            firstLines.append(line)
            line += count.newlines
            firstFields.append(field)
            field += count.fields
        }
        var merged = Tokens(capacity: field)
        merged.width = header.width
        merged.starts.update(from: header.starts, count: header.count)
        merged.ends.update(from: header.ends, count: header.count)
        header.release()
        let lineStarts = firstLines
        let fieldStarts = firstFields
        let expected = counts.map(\.fields)
        var results = [Result<Tokens, any Error>?](repeating: nil, count: ranges.count)
        let shared = SharedTokens(tokens: merged, bytes: bytes)
        results.withUnsafeMutableBufferPointer { buffer in
            let out = SharedPointer<Result<Tokens, any Error>?>(base: buffer.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: ranges.count) { index in
                let slice = Tokens(
                    starts: shared.tokens.starts + fieldStarts[index], ends: shared.tokens.ends + fieldStarts[index],
                    capacity: expected[index])
                out[index] = Result<Tokens, any Error>(catching: {
                    try tokenize(
                        shared.bytes, from: ranges[index].lowerBound, to: ranges[index].upperBound, firstLine: lineStarts[index],
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
        if let failure {
            merged.release()
            throw failure
        }
        guard exact else {
            merged.release()
            return try oneChunk()
        }
        merged.count = field
        merged.lines = [1] + parts.flatMap(\.lines)
        return merged
    }

    /// Tokenizes bytes[from..<to], whose first byte is on line `firstLine`; `width` is the header's when known.
    static func tokenize(
        _ bytes: UnsafeBufferPointer<UInt8>, from: Int, to: Int, firstLine: Int, width: Int?, source: String,
        into storage: Tokens? = nil
    ) throws -> Tokens {
        // A first guess at the number of fields, unless the caller gives the storage.
        var tokens = storage ?? Tokens(capacity: (to - from) / 6)
        if let width { tokens.width = width }
        let comma: UInt8 = 44
        let quote: UInt8 = 34
        let newline: UInt8 = 10
        let carriageReturn: UInt8 = 13
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
                        throw LearningError(
                            .malformedData,
                            "\(source):\(rowStartLine):\(min(fieldsInRow + 1, tokens.width + 1)): row has \(fieldsInRow) fields, "
                                + "expected \(tokens.width) as in the header")
                    }
                    fieldsInRow = 0
                    if position < end {
                        position += 1
                        line += 1
                    }
                    continue
                }
                tokens.lines.append(Int32(rowStartLine))
                fieldsInRow = 0
                if position < end {
                    position += 1
                    line += 1
                }
            } else {
                position += 1  // past the comma
                if position == end {
                    // A trailing comma at the very end: one more, empty field.
                    tokens.append(end, end)
                    fieldsInRow += 1
                    if fieldsInRow != tokens.width {
                        throw LearningError(
                            .malformedData,
                            "\(source):\(rowStartLine):\(min(fieldsInRow + 1, tokens.width + 1)): row has \(fieldsInRow) fields, "
                                + "expected \(tokens.width) as in the header")
                    }
                    tokens.lines.append(Int32(rowStartLine))
                }
            }
        }
        return tokens
    }

    // MARK: Columns

    /// A field read as a number: NaN when it is missing, nil when it is text.
    @inline(__always)
    static func number(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Double? {
        isMissing(bytes, start, end) ? .nan : parseDouble(bytes, start, end)
    }

    /// Whether a field is missing: empty, `?` or `NA`.
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
        let tokens = shared.tokens
        let bytes = shared.bytes
        let width = tokens.width
        if declared != .categorical {
            var values = [Double](repeating: .nan, count: rows)
            var numeric = true
            values.withUnsafeMutableBufferPointer { out in
                for row in 0..<rows {
                    let index = (row + 1) * width + column
                    let start = Int(tokens.starts[index])
                    let end = Int(tokens.ends[index])
                    guard let value = number(bytes, start, end) else {
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
                    let start = Int(tokens.starts[index])
                    let end = Int(tokens.ends[index])
                    if number(bytes, start, end) == nil {
                        let text = tokens.string(row: row + 1, column: column, bytes)
                        throw LearningError(
                            .invalidValue,
                            "\(source):\(tokens.lines[row + 1]):\(column + 1): '\(text)' in numeric column '\(name)' is not a number")
                    }
                }
            }
        }
        let quoted = !tokens.quoted.isEmpty
        return categories(rows: rows, bytes) { row in
            let index = (row + 1) * width + column
            return (Int(tokens.starts[index]), Int(tokens.ends[index]), quoted && tokens.quoted.contains(index))
        }
    }

    /// A column read as categories from each row's field `field(row)` = (start, end, quoted): levels in order of first
    /// appearance, then sorted, so that codes do not depend on row order; missing fields are -1.
    @inline(__always)
    static func categories(rows: Int, _ bytes: UnsafeBufferPointer<UInt8>, field: (Int) -> (start: Int, end: Int, quoted: Bool)) -> Column {
        var lookup: [String: Int32] = [:]
        var firstSeen: [String] = []
        var rawCodes = [Int32](repeating: -1, count: rows)
        // The first few levels are also kept as byte ranges in the file: an unquoted field is matched against them
        // byte for byte, without making a string or hashing one (most categorical columns have few levels).
        var recent: [(start: Int, count: Int, code: Int32)] = []
        rows: for row in 0..<rows {
            let (start, end, isQuoted) = field(row)
            if isMissing(bytes, start, end) { continue }
            if !isQuoted {
                for level in recent
                where level.count == end - start && memcmp(bytes.baseAddress! + level.start, bytes.baseAddress! + start, level.count) == 0 {
                    rawCodes[row] = level.code
                    continue rows
                }
            }
            let text = fieldText(bytes, start, end, quoted: isQuoted)
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

    /// The text of a field: a quoted one's doubled quotes are single in the text.
    static func fieldText(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, quoted: Bool) -> String {
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
        return quoted ? text.replacingOccurrences(of: "\"\"", with: "\"") : text
    }

    /// 10^exponent for 0...22, the powers of ten that are exact in a Double (a switch the compiler makes a constant
    /// table of: no lazily made array to reach on every number).
    @inline(__always)
    static func exactPower(_ exponent: Int) -> Double {
        switch exponent {
        case 0: 1e0
        case 1: 1e1
        case 2: 1e2
        case 3: 1e3
        case 4: 1e4
        case 5: 1e5
        case 6: 1e6
        case 7: 1e7
        case 8: 1e8
        case 9: 1e9
        case 10: 1e10
        case 11: 1e11
        case 12: 1e12
        case 13: 1e13
        case 14: 1e14
        case 15: 1e15
        case 16: 1e16
        case 17: 1e17
        case 18: 1e18
        case 19: 1e19
        case 20: 1e20
        case 21: 1e21
        default: 1e22
        }
    }

    /// Parses a decimal number (`-12.5e3`, `.5`, `1e-4`, `inf` is not accepted); nil when it is not one.
    /// Up to 19 digits whose value is below 2^53, with a small exponent, take a fast exact path (the mantissa and the
    /// power of ten are exact doubles, so one division or product rounds correctly); anything else goes to `strtod`.
    @inline(__always)
    public static func parseDouble(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Double? {
        let base = bytes.baseAddress!
        var position = start
        var stop = end
        if position < stop && (base[position] == 32 || base[stop - 1] == 32) {
            while position < stop && base[position] == 32 { position += 1 }
            while stop > position && base[stop - 1] == 32 { stop -= 1 }
        }
        guard position < stop else { return nil }
        let negative = base[position] == 45
        if negative || base[position] == 43 { position += 1 }
        var mantissa: UInt64 = 0
        let integerStart = position
        while position < stop {
            let digit = base[position] &- 48
            if digit >= 10 { break }
            mantissa = mantissa &* 10 &+ UInt64(digit)
            position += 1
        }
        var digits = position - integerStart
        var exponent = 0
        if position < stop && base[position] == 46 {
            position += 1
            let fractionStart = position
            while position < stop {
                let digit = base[position] &- 48
                if digit >= 10 { break }
                mantissa = mantissa &* 10 &+ UInt64(digit)
                position += 1
            }
            digits += position - fractionStart
            exponent = fractionStart - position
        }
        guard digits > 0 else { return nil }
        if position < stop && (base[position] == 101 || base[position] == 69) {
            position += 1
            var exponentNegative = false
            if position < stop && (base[position] == 45 || base[position] == 43) {
                exponentNegative = base[position] == 45
                position += 1
            }
            var value = 0
            var sawExponentDigit = false
            while position < stop, base[position] &- 48 < 10 {
                value = min(value * 10 + Int(base[position] &- 48), 100_000)
                sawExponentDigit = true
                position += 1
            }
            guard sawExponentDigit else { return nil }
            exponent += exponentNegative ? -value : value
        }
        guard position == stop else { return nil }
        // 19 digits cannot overflow the mantissa.
        if digits <= 19 && mantissa < (1 << 53) && exponent >= -22 && exponent <= 22 {
            var value = Double(mantissa)
            value = exponent < 0 ? value / exactPower(-exponent) : value * exactPower(exponent)
            return negative ? -value : value
        }
        return parseDoubleExactly(bytes, start, end)
    }

    /// The slow, exact path: `strtod` on the field's text.
    private static func parseDoubleExactly(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Double? {
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
