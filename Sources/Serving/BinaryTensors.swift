import Foundation
import NIOCore

/// The binary tensor data extension of the Open Inference Protocol over HTTP (Triton's `binary_data`, also in
/// KServe's REST server): a body whose first `Inference-Header-Content-Length` bytes are the JSON request and whose
/// rest is the raw data of the inputs that say `"parameters": {"binary_data_size": S}`, in the order of the inputs.
/// Numbers are little-endian; BOOL is one byte; BYTES is, per element, a 4-byte little-endian length and the bytes.
enum BinaryTensors {
    /// The header that gives the JSON part's length, on requests and responses.
    static let headerLengthField = "Inference-Header-Content-Length"

    /// Bytes per element of each fixed-size datatype.
    static let elementSize: [String: Int] = [
        "BOOL": 1, "INT8": 1, "UINT8": 1, "INT16": 2, "UINT16": 2, "FP16": 2,
        "INT32": 4, "UINT32": 4, "FP32": 4, "INT64": 8, "UINT64": 8, "FP64": 8,
    ]

    /// The JSON part and the binary part of a body, checked against the header's length.
    static func split(_ body: ByteBuffer, headerLength: Int?) throws(InferenceError) -> (json: ByteBuffer, binary: ByteBuffer?) {
        guard let headerLength else { return (body, nil) }
        guard headerLength > 0, headerLength <= body.readableBytes else {
            throw InferenceError(
                .badRequest,
                "\(headerLengthField) is \(headerLength), but the body has \(body.readableBytes) bytes: the JSON header must be within "
                    + "the body"
            )
        }
        return (
            body.getSlice(at: body.readerIndex, length: headerLength)!,
            body.getSlice(at: body.readerIndex + headerLength, length: body.readableBytes - headerLength)!
        )
    }

    /// Reads the inputs' binary data in order, checking every size against the datatype and shape.
    struct Reader {
        private var data: ByteBuffer
        let total: Int

        init(_ data: ByteBuffer) {
            self.data = data
            total = data.readableBytes
        }

        /// Bytes not yet taken by an input.
        var remaining: Int { data.readableBytes }

        /// The values of input `name` from its next `size` bytes.
        mutating func values(name: String, datatype: String, shape: [Int], size: Int) throws(InferenceError) -> InferenceRequest.Values {
            guard size >= 0 else {
                throw InferenceError(.badRequest, "input '\(name)': binary_data_size must be a non-negative whole number")
            }
            guard size <= data.readableBytes else {
                throw InferenceError(
                    .badRequest,
                    "input '\(name)': binary_data_size \(size) runs past the binary data (\(data.readableBytes) of \(total) bytes left)")
            }
            let slice = data.readSlice(length: size)!
            let expected = shape.reduce(1, *)
            if datatype == "BYTES" { return .strings(try Self.strings(slice, name: name, expected: expected)) }
            guard let width = BinaryTensors.elementSize[datatype] else {
                throw InferenceError(.badRequest, "input '\(name)': datatype '\(datatype)' has no binary form")
            }
            guard size % width == 0 else {
                throw InferenceError(
                    .badRequest, "input '\(name)': binary_data_size \(size) is not a multiple of \(datatype)'s \(width) bytes")
            }
            guard size / width == expected else {
                throw InferenceError(
                    .badRequest,
                    "input '\(name)': shape \(shape) needs \(expected) values, its binary data has \(size / width) (\(size) bytes of "
                        + "\(datatype))"
                )
            }
            return .numbers(slice.withUnsafeReadableBytes { Self.numbers($0, datatype: datatype, count: expected) })
        }

        /// Checks that every byte of the binary part was taken by an input.
        func finish() throws(InferenceError) {
            guard data.readableBytes == 0 else {
                throw InferenceError(
                    .badRequest,
                    "the binary data has \(total) bytes, but the inputs' binary_data_size add up to \(total - data.readableBytes)")
            }
        }

        /// The elements as numbers: the datatype is looked at once, then one tight loop reads them.
        private static func numbers(_ bytes: UnsafeRawBufferPointer, datatype: String, count: Int) -> [Double] {
            func read<T>(_: T.Type, _ convert: (T) -> Double) -> [Double] {
                [Double](unsafeUninitializedCapacity: count) { out, initialized in
                    let width = MemoryLayout<T>.size
                    for index in 0..<count { out[index] = convert(bytes.loadUnaligned(fromByteOffset: index * width, as: T.self)) }
                    initialized = count
                }
            }
            switch datatype {
            case "BOOL", "UINT8": return read(UInt8.self) { Double($0) }
            case "INT8": return read(Int8.self) { Double($0) }
            case "INT16": return read(Int16.self) { Double(Int16(littleEndian: $0)) }
            case "UINT16": return read(UInt16.self) { Double(UInt16(littleEndian: $0)) }
            case "FP16": return read(UInt16.self) { Double(Float16(bitPattern: UInt16(littleEndian: $0))) }
            case "INT32": return read(Int32.self) { Double(Int32(littleEndian: $0)) }
            case "UINT32": return read(UInt32.self) { Double(UInt32(littleEndian: $0)) }
            case "FP32": return read(UInt32.self) { Double(Float(bitPattern: UInt32(littleEndian: $0))) }
            case "INT64": return read(Int64.self) { Double(Int64(littleEndian: $0)) }
            case "UINT64": return read(UInt64.self) { Double(UInt64(littleEndian: $0)) }
            default: return read(UInt64.self) { Double(bitPattern: UInt64(littleEndian: $0)) }
            }
        }

        private static func strings(_ slice: ByteBuffer, name: String, expected: Int) throws(InferenceError) -> [String] {
            var slice = slice
            var strings: [String] = []
            strings.reserveCapacity(expected)
            while slice.readableBytes > 0 {
                let index = strings.count
                guard index < expected else {
                    throw InferenceError(
                        .badRequest, "input '\(name)': its binary data holds more than the \(expected) BYTES elements its shape needs")
                }
                guard let length = slice.readInteger(endianness: .little, as: UInt32.self) else {
                    throw InferenceError(.badRequest, "input '\(name)': BYTES element \(index)'s 4-byte length runs past its binary data")
                }
                guard Int(length) <= slice.readableBytes, let bytes = slice.readBytes(length: Int(length)) else {
                    throw InferenceError(
                        .badRequest,
                        "input '\(name)': BYTES element \(index) is \(length) bytes long, past the \(slice.readableBytes) bytes left of "
                            + "its binary data"
                    )
                }
                guard let text = String(validating: bytes, as: UTF8.self) else {
                    throw InferenceError(.badRequest, "input '\(name)': BYTES element \(index) is not UTF-8 text")
                }
                strings.append(text)
            }
            guard strings.count == expected else {
                throw InferenceError(
                    .badRequest, "input '\(name)': shape needs \(expected) BYTES elements, its binary data has \(strings.count)")
            }
            return strings
        }
    }

    /// Appends an output's binary form: FP64 numbers little-endian, or BYTES elements each with its 4-byte length.
    static func append(numbers: [Double], to out: inout [UInt8]) {
        out.reserveCapacity(out.count + numbers.count * 8)
        for number in numbers {
            withUnsafeBytes(of: number.bitPattern.littleEndian) { out.append(contentsOf: $0) }
        }
    }

    static func append(strings: [String], to out: inout [UInt8]) {
        for text in strings {
            let bytes = Array(text.utf8)
            withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { out.append(contentsOf: $0) }
            out.append(contentsOf: bytes)
        }
    }
}
