public import Foundation
public import Learning
import ExternalModels
import NIOCore
import Synchronization

/// A request the server cannot answer, with the HTTP status it stands for (decided at the edge, in the server).
public struct InferenceError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// The request is wrong: a 400.
        case badRequest
        /// No such model or version: a 404.
        case notFound
        /// The body is over the limit: a 413.
        case tooLarge
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    /// A body over `limit` bytes (a 413).
    static func bodyTooLarge(limit: Int) -> InferenceError {
        InferenceError(.tooLarge, "the body is over the limit of \(limit) bytes")
    }
}

/// An Open Inference Protocol (KServe V2) infer request, decoded and checked against a model's features.
public struct InferenceRequest: Sendable {
    /// The request id, echoed in the response (generated when absent).
    public var id: String?
    /// The rows, as the model's raw feature columns.
    public var rows: Dataset
    /// The outputs asked for (`predict`, `predict_proba`); nil means all.
    public var outputs: [String]?
    /// The outputs to answer in binary (the binary tensor extension): those whose `parameters` say `binary_data`, or
    /// all with the request's `binary_data_output`.
    public var binaryOutputs: Set<String> = []

    /// An input's values: JSON values, or what binary data held.
    enum Values {
        case json([JSON])
        case numbers([Double])
        case strings([String])

        var count: Int {
            switch self {
            case .json(let values): values.count
            case .numbers(let values): values.count
            case .strings(let values): values.count
            }
        }
    }

    /// Decodes a request body for `model`. Inputs are either one tensor per feature (shape `[N]` or `[N,1]`) or,
    /// when every feature is numeric, one `[N,F]` tensor with the features in the model's order.
    public static func decode(_ body: Data, for model: ModelFile) throws(InferenceError) -> InferenceRequest {
        let json = body.withUnsafeBytes { bytes in Result { () throws(InferenceError) in try parse(bytes) } }
        return try decode(try json.get(), binary: nil, for: model)
    }

    /// The body as a JSON object.
    static func parse(_ body: UnsafeRawBufferPointer) throws(InferenceError) -> JSON {
        guard let json = JSON.parse(body) else {
            throw InferenceError(
                .badRequest,
                "the body is not valid JSON (expected {\"inputs\": [{\"name\", \"shape\", \"datatype\", "
                    + "\"data\"}, ...]})")
        }
        guard case .object = json else {
            throw InferenceError(.badRequest, "the body must be a JSON object with \"inputs\"")
        }
        return json
    }

    /// A new request id, in the form of a version 4 UUID (lowercase): 64 random bits drawn once per process, then a
    /// counter; unique in the process, and across processes but for a 2⁻⁶⁰ chance. No system call per request.
    static func newID() -> String {
        let high = idPrefix
        let low = idCounter.wrappingAdd(1, ordering: .relaxed).newValue & 0x3fff_ffff_ffff_ffff | 0x8000_0000_0000_0000
        let digits = Array("0123456789abcdef".utf8)
        return String(unsafeUninitializedCapacity: 36) { text in
            var position = 0
            for (index, shift) in stride(from: 124, through: 0, by: -4).enumerated() {
                if index == 8 || index == 12 || index == 16 || index == 20 {
                    text[position] = 45
                    position += 1
                }
                let nibble = shift >= 64 ? high >> UInt64(shift - 64) : low >> UInt64(shift)
                text[position] = digits[Int(nibble & 15)]
                position += 1
            }
            return position
        }
    }

    private static let idPrefix = UInt64.random(in: .min ... .max) & 0xffff_ffff_ffff_0fff | 0x4000
    private static let idCounter = Atomic<UInt64>(UInt64.random(in: 0..<1 << 32))

    /// The request's `id`, if it has one.
    static func id(_ json: JSON) throws(InferenceError) -> String? {
        guard let value = json["id"] else { return nil }
        guard case .string(let text) = value else { throw InferenceError(.badRequest, "\"id\" must be a string") }
        return text
    }

    /// - Parameter binary: the body's binary part (after `Inference-Header-Content-Length` bytes of JSON), if any.
    static func decode(_ json: JSON, binary: ByteBuffer?, for model: ModelFile) throws(InferenceError) -> InferenceRequest {
        let id = try id(json)
        let known = model.classes == nil ? ["predict"] : ["predict", "predict_proba"]
        var outputs: [String]?
        var binaryOutputs: Set<String> = []
        if case .bool(true)? = json["parameters"]?["binary_data_output"] { binaryOutputs = Set(known) }
        if let value = json["outputs"] {
            guard case .array(let list) = value else {
                throw InferenceError(.badRequest, "\"outputs\" must be a list of {\"name\": ...}")
            }
            var explicit: Set<String> = []
            outputs = try list.map { (item) throws(InferenceError) -> String in
                guard case .string(let name)? = item["name"], known.contains(name) else {
                    let shown: String
                    if case .string(let name)? = item["name"] { shown = "'\(name)'" } else { shown = "without a name" }
                    throw InferenceError(.badRequest, "unknown output \(shown) (expected one of: \(known.joined(separator: ", ")))")
                }
                if case .bool(let flag)? = item["parameters"]?["binary_data"] {
                    if flag { explicit.insert(name) } else { binaryOutputs.remove(name) }
                }
                return name
            }
            binaryOutputs.formUnion(explicit)
        }
        guard case .array(let inputs)? = json["inputs"], !inputs.isEmpty else {
            throw InferenceError(.badRequest, "\"inputs\" must be a non-empty list of tensors")
        }
        var reader = binary.map(BinaryTensors.Reader.init)
        let tensors = try inputs.enumerated().map { (index, input) throws(InferenceError) in
            try Tensor(input, index: index, binary: &reader)
        }
        try reader?.finish()
        let rows = try dataset(tensors, model: model)
        return InferenceRequest(id: id, rows: rows, outputs: outputs, binaryOutputs: binaryOutputs)
    }

    /// One input tensor, with its data flattened.
    struct Tensor {
        var name: String
        var shape: [Int]
        var datatype: String
        var values: Values

        static let numericTypes: Set<String> = [
            "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64",
        ]

        /// A tensor whose values are already read (the gRPC service's typed or raw contents).
        init(name: String, shape: [Int], datatype: String, values: Values) {
            self.name = name
            self.shape = shape
            self.datatype = datatype
            self.values = values
        }

        init(_ input: JSON, index: Int, binary: inout BinaryTensors.Reader?) throws(InferenceError) {
            guard case .string(let name)? = input["name"] else { throw InferenceError(.badRequest, "input \(index) has no \"name\"") }
            var dimensions: [Int] = []
            if case .array(let shape)? = input["shape"] {
                for item in shape {
                    guard case .number(let value) = item, value >= 0, value == value.rounded(), value < 1e9 else {
                        dimensions = []
                        break
                    }
                    dimensions.append(Int(value))
                }
                if dimensions.count != shape.count { dimensions = [] }
            }
            guard !dimensions.isEmpty else {
                throw InferenceError(
                    .badRequest,
                    "input '\(name)': \"shape\" must be a list of non-negative integers, such as [2] or "
                        + "[2, 1]")
            }
            guard case .string(let datatype)? = input["datatype"], Self.numericTypes.contains(datatype) || datatype == "BYTES" else {
                throw InferenceError(
                    .badRequest,
                    "input '\(name)': \"datatype\" must be one of BOOL, INT8…INT64, UINT8…UINT64, FP16, "
                        + "FP32, FP64, BYTES")
            }
            self.name = name
            self.shape = dimensions
            self.datatype = datatype
            if let size = input["parameters"]?["binary_data_size"] {
                guard case .number(let bytes) = size, bytes >= 0, bytes == bytes.rounded(), bytes < 1e15 else {
                    throw InferenceError(.badRequest, "input '\(name)': binary_data_size must be a non-negative whole number")
                }
                guard input["data"] == nil else {
                    throw InferenceError(.badRequest, "input '\(name)' has both \"data\" and binary_data_size: send its values one way")
                }
                guard binary != nil else {
                    throw InferenceError(
                        .badRequest,
                        "input '\(name)' says binary_data_size but the request has no binary data (no "
                            + "\(BinaryTensors.headerLengthField) header)")
                }
                values = try binary!.values(name: name, datatype: datatype, shape: dimensions, size: Int(bytes))
                return
            }
            guard let data = input["data"] else { throw InferenceError(.badRequest, "input '\(name)' has no \"data\"") }
            var flat: [JSON] = []
            func flatten(_ value: JSON) { if case .array(let list) = value { list.forEach(flatten) } else { flat.append(value) } }
            if case .array(let list) = data, !list.contains(where: { if case .array = $0 { true } else { false } }) {
                flat = list  // already flat: no copy
            } else {
                flatten(data)
            }
            let expected = dimensions.reduce(1, *)
            guard flat.count == expected else {
                throw InferenceError(
                    .badRequest,
                    "input '\(name)': shape \(dimensions) needs \(expected) values, \"data\" has "
                        + "\(flat.count)")
            }
            self.values = .json(flat)
        }

        /// The values as numbers (NaN for null; true and false are 1 and 0); anything else is an error.
        func numbers(feature: String) throws(InferenceError) -> [Double] {
            guard datatype != "BYTES" else {
                throw InferenceError(
                    .badRequest,
                    "input '\(name)': feature '\(feature)' is numeric, so the datatype must be numeric "
                        + "(FP32, FP64, INT*, BOOL), not BYTES")
            }
            switch values {
            case .json(let values):
                return try InferenceRequest.numbers(values, input: "input '\(name)'")
            case .numbers(let numbers):
                // NaN is a missing value, as null is in JSON; infinities are refused as they are there.
                if let index = numbers.firstIndex(where: { $0.isInfinite }) {
                    throw InferenceError(.badRequest, "input '\(name)': value \(index) is not finite")
                }
                return numbers
            case .strings:
                throw InferenceError(
                    .badRequest,
                    "input '\(name)': feature '\(feature)' is numeric, so the datatype must be numeric "
                        + "(FP32, FP64, INT*, BOOL), not BYTES")
            }
        }

        /// The values as a categorical column (numbers written as Stagecraft writes them; null is missing).
        func categories() throws(InferenceError) -> Column {
            switch values {
            case .json(let values): return try InferenceRequest.categories(values, input: "input '\(name)'")
            case .strings(let strings): return InferenceRequest.column(strings.map { Optional($0) })
            case .numbers(let numbers): return InferenceRequest.column(numbers.map { $0.isNaN ? nil : formatNumber($0) })
            }
        }
    }

    /// JSON values as numbers (NaN for null; true and false are 1 and 0); anything else is an error naming `input`.
    static func numbers(_ values: [JSON], input: String) throws(InferenceError) -> [Double] {
        var numbers: [Double] = []
        numbers.reserveCapacity(values.count)
        for (index, value) in values.enumerated() {
            switch value {
            case .null: numbers.append(.nan)
            case .number(let number):
                guard number.isFinite else { throw InferenceError(.badRequest, "\(input): value \(index) is not finite") }
                numbers.append(number)
            case .bool(let flag): numbers.append(flag ? 1 : 0)
            default: throw InferenceError(.badRequest, "\(input): row \(index) holds \(Self.preview(value)), not a number")
            }
        }
        return numbers
    }

    /// A short rendering of a JSON value for a message: a string quoted (at most 40 characters), else its kind.
    static func preview(_ value: JSON) -> String {
        switch value {
        case .string(let text):
            let cut = text.prefix(40)
            return "\"" + cut.replacingOccurrences(of: "\"", with: "\\\"") + (cut.count < text.count ? "…" : "") + "\""
        case .array: return "a list"
        case .object: return "an object"
        case .null: return "null"
        case .bool(let flag): return flag ? "true" : "false"
        case .number(let number): return formatNumber(number)
        }
    }

    /// JSON values as a categorical column (numbers written as Stagecraft writes them; null is missing).
    static func categories(_ values: [JSON], input: String) throws(InferenceError) -> Column {
        let labels = try values.enumerated().map { (index, value) throws(InferenceError) -> String? in
            switch value {
            case .null: return nil
            case .string(let text): return text
            case .number(let number): return formatNumber(number)
            default: throw InferenceError(.badRequest, "\(input): value \(index) is not a string")
            }
        }
        return column(labels)
    }

    /// Labels (nil: missing) as a categorical column.
    static func column(_ labels: [String?]) -> Column {
        let levels = Array(Set(labels.compactMap { $0 })).sorted()
        var index: [String: Int32] = [:]
        for (code, level) in levels.enumerated() { index[level] = Int32(code) }
        return .categorical(codes: labels.map { $0.map { index[$0]! } ?? -1 }, levels: levels)
    }

    static func dataset(_ tensors: [Tensor], model: ModelFile) throws(InferenceError) -> Dataset {
        let (names, kinds) = model.pipeline.namesAndKinds
        // One [N, F] numeric tensor for an all-numeric model.
        if tensors.count == 1, tensors[0].shape.count == 2, !names.contains(tensors[0].name) {
            let tensor = tensors[0]
            guard kinds.allSatisfy({ $0 == .numeric }) else {
                throw InferenceError(
                    .badRequest,
                    "input '\(tensor.name)': a single [N, F] tensor needs a model whose features are all "
                        + "numeric; send one tensor per feature (\(names.joined(separator: ", ")))")
            }
            guard tensor.shape[1] == names.count else {
                throw InferenceError(
                    .badRequest,
                    "input '\(tensor.name)': shape \(tensor.shape) must be [N, \(names.count)], one "
                        + "column per feature (\(names.joined(separator: ", ")))")
            }
            let numbers = try tensor.numbers(feature: names[0])
            let rows = tensor.shape[0]
            let width = names.count
            let columns = (0..<width).map { column in Column.numeric((0..<rows).map { numbers[$0 * width + column] }) }
            return Dataset(names: names, columns: columns, source: "request")
        }
        var byName: [String: Tensor] = [:]
        for tensor in tensors {
            guard names.contains(tensor.name) else {
                throw InferenceError(.badRequest, "unknown input '\(tensor.name)' (expected one of: \(names.joined(separator: ", ")))")
            }
            guard byName[tensor.name] == nil else { throw InferenceError(.badRequest, "input '\(tensor.name)' is given twice") }
            guard tensor.shape.count == 1 || (tensor.shape.count == 2 && tensor.shape[1] == 1) else {
                throw InferenceError(.badRequest, "input '\(tensor.name)': shape \(tensor.shape) must be [N] or [N, 1]")
            }
            byName[tensor.name] = tensor
        }
        let missing = names.filter { byName[$0] == nil }
        guard missing.isEmpty else {
            let listed = missing.map { "'\($0)'" }.joined(separator: ", ")
            throw InferenceError(
                .badRequest,
                "missing input\(missing.count == 1 ? "" : "s") \(listed) "
                    + "(the model needs one tensor per feature: \(names.joined(separator: ", ")))")
        }
        let rows = byName[names[0]]!.shape[0]
        var columns: [Column] = []
        columns.reserveCapacity(names.count)
        for (name, kind) in zip(names, kinds) {
            let tensor = byName[name]!
            guard tensor.shape[0] == rows else {
                throw InferenceError(.badRequest, "input '\(tensor.name)' has \(tensor.shape[0]) rows, input '\(names[0])' has \(rows)")
            }
            switch kind {
            case .numeric:
                columns.append(.numeric(try tensor.numbers(feature: name)))
            case .categorical:
                columns.append(try tensor.categories())
            }
        }
        return Dataset(names: names, columns: columns, source: "request")
    }
}

/// The body of an infer response: JSON, or with the binary tensor extension a JSON header followed by the binary
/// outputs' bytes.
public enum InferenceResponse {
    /// The body of the answer to a request for `outputs` (nil: all), with the outputs named in `binary` as raw bytes
    /// after the JSON; `jsonLength` is the JSON part's length when any output is binary (the
    /// `Inference-Header-Content-Length` of the response), nil otherwise.
    static func body(
        model: String, version: String, id: String, predictions: Predictions, classes: [String]?, outputs: [String]?,
        binary: Set<String> = []
    ) -> (bytes: [UInt8], jsonLength: Int?) {
        let wanted = outputs ?? (classes == nil ? ["predict"] : ["predict", "predict_proba"])
        let rows = predictions.labels?.count ?? predictions.values?.count ?? 0
        var json = JSONWriter(capacity: 128 + rows * 48)
        var raw: [UInt8] = []
        json.raw("{\"id\":")
        json.string(id)
        json.raw(",\"model_name\":")
        json.string(model)
        json.raw(",\"model_version\":")
        json.string(version)
        json.raw(",\"outputs\":[")
        var first = true
        for name in wanted {
            let isBinary = binary.contains(name)
            let start = raw.count
            if name == "predict" {
                if !first { json.raw(",") }
                first = false
                if let labels = predictions.labels {
                    json.raw("{\"name\":\"predict\",\"datatype\":\"BYTES\",\"shape\":[\(rows)]")
                    if isBinary {
                        BinaryTensors.append(strings: labels, to: &raw)
                    } else {
                        json.raw(",\"data\":")
                        json.strings(labels)
                    }
                } else {
                    json.raw("{\"name\":\"predict\",\"datatype\":\"FP64\",\"shape\":[\(rows)]")
                    if isBinary {
                        BinaryTensors.append(numbers: predictions.values ?? [], to: &raw)
                    } else {
                        json.raw(",\"data\":")
                        json.numbers(predictions.values ?? [])
                    }
                }
                if isBinary { json.raw(",\"parameters\":{\"binary_data_size\":\(raw.count - start)}") }
                json.raw("}")
            } else if name == "predict_proba", let probabilities = predictions.probabilities, let classes {
                if !first { json.raw(",") }
                first = false
                json.raw(
                    "{\"name\":\"predict_proba\",\"datatype\":\"FP64\",\"shape\":[\(rows),\(classes.count)],\"parameters\":{\"classes\":")
                json.strings(classes)
                if isBinary {
                    BinaryTensors.append(numbers: probabilities, to: &raw)
                    json.raw(",\"binary_data_size\":\(raw.count - start)}}")
                } else {
                    json.raw("},\"data\":")
                    json.numbers(probabilities)
                    json.raw("}")
                }
            }
        }
        json.raw("]}")
        guard !binary.isEmpty else { return (json.bytes, nil) }
        let length = json.bytes.count
        return (json.bytes + raw, length)
    }
}
