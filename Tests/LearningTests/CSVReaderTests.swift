import StagecraftTesting
import Foundation
@testable import Learning
import Testing

@Suite struct CSVReaderTests {
    func read(_ text: String, types: [String: ColumnType] = [:]) throws -> Dataset {
        try CSVReader.read(Data(text.utf8), source: "data/t.csv", types: types)
    }

    @Test func quotedFieldsWithCommasQuotesAndNewlinesAndCRLF() throws {
        let data = try read("id,name,score\r\n1,\"Smith, J\",3.5\r\n2,\"say \"\"hi\"\"\",-2e-1\r\n3,\"two\nlines\",7\r\n")
        #expect(data.names == ["id", "name", "score"])
        #expect(data.rowCount == 3)
        #expect(data.columns[0] == .numeric([1, 2, 3]))
        #expect(data.columns[1] == .categorical(codes: [0, 1, 2], levels: ["Smith, J", "say \"hi\"", "two\nlines"]))
        #expect(data.columns[2] == .numeric([3.5, -0.2, 7]))
    }

    @Test func missingValuesAndTypeInference() throws {
        let data = try read("a,b,c\n1,x,\nNA,?,2\n?,y,NA\n4.25,x,\n")
        guard case .numeric(let a) = data.columns[0] else { Issue.record("a should be numeric"); return }
        #expect(a[0] == 1 && a[1].isNaN && a[2].isNaN && a[3] == 4.25)
        #expect(data.columns[1] == .categorical(codes: [0, -1, 1, 0], levels: ["x", "y"]))
        guard case .numeric(let c) = data.columns[2] else { Issue.record("c should be numeric"); return }
        #expect(c[0].isNaN && c[1] == 2 && c[2].isNaN && c[3].isNaN)
    }

    @Test func numbersParseExactly() throws {
        let values = ["0.1", "123456789.123456789", "1e22", "1.7976931348623157e308", "-0.000001", "5e-324", "  42 ", "+3", ".5", "12345678901234567890"]
        let data = try read("x\n" + values.joined(separator: "\n") + "\n")
        guard case .numeric(let parsed) = data.columns[0] else { Issue.record("x should be numeric"); return }
        #expect(parsed == values.map { Double($0.trimmingCharacters(in: .whitespaces))! })
    }

    @Test func aTrailingNewlineAndBlankLinesAreNotRows() throws {
        #expect(try read("a,b\n1,2\n\n3,4").rowCount == 2)
        #expect(try read("a,b\n1,\n").columns[1].count == 1)
    }

    @Test func raggedRowsNameFileRowAndColumn() {
        #expect(throws: LearningError.self) { try read("a,b,c\n1,2,3\n4,5\n") }
        let short = #expect(throws: LearningError.self) { try read("a,b,c\n1,2,3\n4,5\n") }
        #expect(short?.message == "data/t.csv:3:3: row has 2 fields, expected 3 as in the header")
        let long = #expect(throws: LearningError.self) { try read("a,b\n1,2\n3,4\n5,6,7\n") }
        #expect(long?.message == "data/t.csv:4:3: row has 3 fields, expected 2 as in the header")
        #expect(long?.code == .malformedData)
    }

    @Test func unclosedQuotesAndTextAfterQuotes() {
        let unclosed = #expect(throws: LearningError.self) { try read("a,b\n1,\"open\n2,3\n") }
        #expect(unclosed?.message == "data/t.csv:2:2: quoted field is never closed")
        let after = #expect(throws: LearningError.self) { try read("a,b\n1,\"x\"y\n") }
        #expect(after?.message == "data/t.csv:2:2: unexpected text after a closing quote")
    }

    @Test func textInADeclaredNumericColumnIsAnError() {
        let error = #expect(throws: LearningError.self) { try read("age,plan\n31,basic\n\"4O\",pro\n", types: ["age": .numeric]) }
        #expect(error?.code == .invalidValue)
        #expect(error?.message == "data/t.csv:3:1: '4O' in numeric column 'age' is not a number")
    }

    @Test func aDuplicateHeaderIsAnError() {
        let error = #expect(throws: LearningError.self) { try read("a,b,a\n1,2,3\n") }
        #expect(error?.message == "data/t.csv:1:3: column 'a' appears twice in the header")
    }

    /// `parseDouble`'s fast path must give the correctly rounded number, as the standard library's parser does, for
    /// every shape of decimal: signs, leading zeros, long fractions, exponents, values near 2^53, over 19 digits.
    @Test func numbersParseAsTheStandardLibraryParsesThem() {
        var random = SplitMix64(seed: 21)
        func digits(_ count: Int) -> String { String((0..<count).map { _ in Character(String(random.next() % 10)) }) }
        var texts = ["9007199254740993", "9007199254740992.5", "0.30000000000000004", "1e23", "1e-23", "00000000000000000000001.5",
                     "123456789012345678.9", "-0", "0e5", "4.9e-324", "1.7976931348623157e308"]
        for _ in 0..<20_000 {
            let sign = ["", "-", "+"][Int(random.next() % 3)]
            let whole = digits(Int(random.next() % 12)), fraction = digits(Int(random.next() % 14))
            var text = sign + whole + (fraction.isEmpty && !whole.isEmpty ? "" : "." + (whole.isEmpty && fraction.isEmpty ? "5" : fraction))
            if random.next() % 4 == 0 { text += "e" + ["", "-", "+"][Int(random.next() % 3)] + String(random.next() % 30) }
            texts.append(text)
        }
        for text in texts {
            let bytes = Array(text.utf8)
            let parsed = bytes.withUnsafeBufferPointer { CSVReader.parseDouble($0, 0, $0.count) }
            let expected = Double(text)!
            #expect(parsed?.bitPattern == expected.bitPattern, "\(text): \(String(describing: parsed)), expected \(expected)")
        }
    }

    /// Files without quotes take a one-pass reader; one with a quote (here only the header's first name is quoted,
    /// which names it the same) takes the general one. Both must read the same data set, whatever its shape.
    @Test func unquotedFilesReadAsTheGeneralReaderReadsThem() throws {
        let hundredNumbers = (0..<150).map { "\($0)" }.joined(separator: ",x\n")
        let texts = [
            "a,b\n1,2\n3,4",                            // no newline at the end
            "a,b\r\n1,x\r\n3.5,y\r\n",                   // CRLF
            "a,b,c\n1, 2 ,NA\n?,y,\n-1e3,,z\n",          // missing values, spaces
            "x\n1\n\n2\n",                              // one column: a blank line is a missing value
            "n,t\n" + hundredNumbers + ",x\nlate text,x\n",  // text after the first 100 rows: categories
            "a,b\n1,2\n\n3,4\n",                        // a blank line between records is skipped
        ]
        func comparable(_ data: Dataset) -> [String] {
            data.names + data.columns.map { column in
                switch column {
                case .numeric(let values): "numeric \(values.map(\.bitPattern))"
                case .categorical(let codes, let levels): "categorical \(codes) \(levels)"
                }
            }
        }
        // The one-pass reader takes the first four, and leaves the last two (text after 100 rows, a blank line) to
        // the general reader.
        let taken = try texts.map { text in
            try Array(text.utf8).withUnsafeBufferPointer { try CSVReader.readUnquoted($0, source: "t.csv", types: [:]) != nil }
        }
        #expect(taken == [true, true, true, true, false, false])
        for text in texts {
            let quotedHeader = "\"" + text.prefix { $0 != "," && $0 != "\n" } + "\"" + text.drop { $0 != "," && $0 != "\n" }
            let fast = try read(text), general = try read(String(quotedHeader))
            #expect(comparable(fast) == comparable(general), "\(text.debugDescription)")
            #expect(fast.rowCount == general.rowCount)
        }
        let error = #expect(throws: LearningError.self) { try read("age,plan\n31,basic\n4O,pro\n", types: ["age": .numeric]) }
        #expect(error?.message == "data/t.csv:3:1: '4O' in numeric column 'age' is not a number")
    }

    @Test func declaredCategoricalKeepsNumbersAsText() throws {
        let data = try read("zip,y\n02139,1\n10001,0\n", types: ["zip": .categorical])
        #expect(data.columns[0] == .categorical(codes: [0, 1], levels: ["02139", "10001"]))
    }
}

/// Files over 4 MB without quotes are read in parallel chunks; the result must be the same as one pass.
@Suite struct LargeCSVTests {
    static func text(rows: Int, badLine: Int? = nil, blankLine: Int? = nil) -> String {
        var text = "id,value,kind\n"
        text.reserveCapacity(rows * 40)
        for row in 0..<rows {
            let line = row + 2
            if line == blankLine { text += "\n" }
            if line == badLine { text += "\(row),\(row)\n"; continue }
            text += "\(row),\(Double(row) * 0.25 - 1000.5),kind-\(row % 7)\n"
        }
        return text
    }

    @Test func chunksGiveTheSameColumnsAsOnePass() throws {
        let rows = 300_000
        let data = try CSVReader.read(Data(Self.text(rows: rows).utf8), source: "big.csv")
        #expect(data.rowCount == rows)
        #expect(data.columns[0] == .numeric((0..<rows).map(Double.init)))
        #expect(data.columns[1] == .numeric((0..<rows).map { Double($0) * 0.25 - 1000.5 }))
        #expect(data.columns[2] == .categorical(codes: (0..<rows).map { Int32($0 % 7) }, levels: (0..<7).map { "kind-\($0)" }))
    }

    @Test func aRaggedRowDeepInTheFileNamesItsLine() {
        let error = #expect(throws: LearningError.self) {
            try CSVReader.read(Data(Self.text(rows: 300_000, badLine: 250_001).utf8), source: "big.csv")
        }
        #expect(error?.message == "big.csv:250001:3: row has 2 fields, expected 3 as in the header")
    }

    @Test func blankLinesFallBackToOnePass() throws {
        let data = try CSVReader.read(Data(Self.text(rows: 300_000, blankLine: 150_000).utf8), source: "big.csv")
        #expect(data.rowCount == 300_000)
        #expect(data.columns[0] == .numeric((0..<300_000).map(Double.init)))
    }
}

@Suite struct CSVChunksTests {
    @Test func chunksTogetherAreTheWholeFile() throws {
        let scratch = try ScratchDirectory()
        var text = "id,note\n"
        for row in 0..<95 { text += row == 41 ? "\(row),\"two\nlines, quoted\"\n" : "\(row),n\(row % 4)\n" }
        try scratch.write(text, to: "big.csv")
        var chunks = try CSVChunks(url: URL(fileURLWithPath: scratch.appending("big.csv")), rowsPerChunk: 10)
        var ids: [Double] = [], notes: [String] = [], firstLines: [Int] = []
        while let chunk = chunks.next() {
            firstLines.append(chunks.firstLine)
            let data = try CSVReader.read(chunk, source: "big.csv")
            guard case .numeric(let values) = data.columns[0] else { Issue.record("id is numeric"); return }
            ids += values
            notes += (0..<data.rowCount).map { data.columns[1].text(at: $0) }
        }
        #expect(ids == (0..<95).map(Double.init))
        #expect(notes[41] == "two\nlines, quoted")
        #expect(firstLines.count == 10)
        // Rows 40-49 start on line 42; the record with a newline makes later chunks start one line further down.
        #expect(firstLines[4] == 42)
        #expect(firstLines[5] == 53)
    }
}
