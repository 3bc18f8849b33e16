public import Foundation
public import Learning

/// What Stagecraft sends a model's own server and reads back: an Open Inference Protocol (V2) request with one
/// input per feature column (`content_type: pd`, so that MLServer's runtimes hand the model a DataFrame with the
/// training columns), asking for `predict_proba` from a classifier and `predict` from a regressor.
public enum ServerProtocol {
    /// The request body for `rows` (the model's feature columns, in order).
    public static func request(_ rows: Dataset, task: LearningTask, id: String? = nil) -> [UInt8] {
        var json = JSONWriter(capacity: 128 + rows.rowCount * rows.columns.count * 12)
        json.raw("{")
        if let id {
            json.raw("\"id\":")
            json.string(id)
            json.raw(",")
        }
        json.raw("\"parameters\":{\"content_type\":\"pd\"},\"inputs\":[")
        for (index, column) in rows.columns.enumerated() {
            if index > 0 { json.raw(",") }
            json.raw("{\"name\":")
            json.string(rows.names[index])
            json.raw(",\"shape\":[\(rows.rowCount)],")
            switch column {
            case .numeric(let values):
                json.raw("\"datatype\":\"FP64\",\"data\":")
                json.numbers(values)
            case .categorical(let codes, let levels):
                json.raw("\"datatype\":\"BYTES\",\"parameters\":{\"content_type\":\"str\"},\"data\":")
                json.list(codes) { json, code in
                    if code >= 0 && Int(code) < levels.count { json.string(levels[Int(code)]) } else { json.raw("null") }
                }
            }
            json.raw("}")
        }
        json.raw("],\"outputs\":[{\"name\":\"\(task.isClassification ? "predict_proba" : "predict")\"}]}")
        return json.bytes
    }

    /// The predictions in a server's answer to ``request(_:task:id:)`` for `rows` rows (read with the ML core's JSON
    /// reader, which keeps every number exact).
    /// - Throws: ``ExternalModelError`` `.badAnswer` naming what is missing or of the wrong shape.
    public static func predictions(_ body: Data, rows: Int, classes: [String]?) throws -> Predictions {
        try body.withUnsafeBytes { try predictions($0, rows: rows, classes: classes) }
    }

    /// As above, from the bytes of the answer.
    public static func predictions(_ body: UnsafeRawBufferPointer, rows: Int, classes: [String]?) throws -> Predictions {
        guard let json = JSON.parse(body), case .array(let outputs)? = json["outputs"] else {
            let text = String(decoding: body.prefix(200), as: UTF8.self)
            throw ExternalModelError(.badAnswer, "the model server's answer is not a V2 inference response: \(text)")
        }
        let wanted = classes == nil ? "predict" : "predict_proba"
        func name(_ output: JSON) -> String? { if case .string(let name)? = output["name"] { name } else { nil } }
        guard let output = outputs.first(where: { name($0) == wanted }) ?? (outputs.count == 1 ? outputs[0] : nil),
            case .array(let data)? = output["data"]
        else {
            throw ExternalModelError(
                .badAnswer,
                "the model server answered no '\(wanted)' output (outputs: \(outputs.compactMap(name).joined(separator: ", ")))")
        }
        let numbers = try data.map { value -> Double in
            guard case .number(let number) = value else {
                throw ExternalModelError(.badAnswer, "'\(wanted)' holds \(value) values; expected numbers")
            }
            return number
        }
        guard let classes else {
            guard numbers.count == rows else {
                throw ExternalModelError(.badAnswer, "'predict' holds \(numbers.count) values for \(rows) rows")
            }
            return Predictions(values: numbers)
        }
        let k = classes.count
        guard numbers.count == rows * k else {
            throw ExternalModelError(
                .badAnswer,
                "'predict_proba' holds \(numbers.count) values for \(rows) rows of \(k) classes (\(classes.joined(separator: ", ")))")
        }
        var labels: [String] = []
        labels.reserveCapacity(rows)
        for row in 0..<rows {
            var best = 0
            for j in 1..<k where numbers[row * k + j] > numbers[row * k + best] { best = j }
            labels.append(classes[best])
        }
        return Predictions(labels: labels, probabilities: numbers)
    }
}
