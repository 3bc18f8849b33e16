import Foundation
@testable import Learning
import Testing

/// The exact JSON reader that captures, feedback and queue files are read with.
@Suite struct JSONReaderTests {
    @Test func numbersKeepTheirExactValueWhereJSONSerializationRounds() throws {
        // Doubles whose shortest form has 17 digits: Foundation's JSONSerialization on Linux gives a neighbour for many.
        let values = [13126.789223656171, 0.039036696071665475, 0.18967343102257922, 0.1, 1e-300, 123456789.12345679]
        let text = "{\"x\":[" + values.map { "\($0)" }.joined(separator: ",") + "],\"flag\":true,\"n\":null,\"zero\":0,\"one\":1}"
        let object = try #require(JSON.parse(Data(text.utf8))?.foundation as? [String: Any])
        let parsed = (object["x"] as? [Any])?.compactMap { ($0 as? NSNumber)?.doubleValue }
        #expect(parsed == values)
        #expect(ModelFile.isBoolean(try #require(object["flag"] as? NSNumber)))
        #expect(!ModelFile.isBoolean(try #require(object["zero"] as? NSNumber)))
        #expect(!ModelFile.isBoolean(try #require(object["one"] as? NSNumber)))
        #expect(object["n"] is NSNull)
    }

    @Test func notJSONIsNil() {
        for text in ["", "{", "[1,]", "{\"a\":1} x", "nul"] { #expect(JSON.parse(Data(text.utf8)) == nil, "\(text)") }
    }
}
