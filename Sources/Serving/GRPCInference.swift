import ExternalModels
import Foundation
import GRPCCore
import HTTPTypes
import InferenceGRPC
import Learning
import NIOCore
import SwiftProtobuf

/// The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`): the same endpoint as HTTP answers every
/// inference (routing by version or by the split on the request `id`, shadow, capture, live feedback, metrics with
/// `protocol="grpc"`); typed `contents` and `raw_input_contents` are both read, and outputs are answered the way the
/// inputs came (raw bytes for raw inputs). Client mistakes are `INVALID_ARGUMENT`, `NOT_FOUND` or
/// `RESOURCE_EXHAUSTED`, never `INTERNAL`; the repository calls need the admin token in the `authorization` metadata.
/// ``GRPCListener`` carries the calls; each is answered by ``answer(_:message:metadata:)``.
struct GRPCInference: Sendable {
    let endpoint: InferenceEndpoint
    let adminToken: String?
    let loader: (@Sendable (String, String) async throws -> LoadedVersion)?
    var repository: ModelRepository { endpoint.repository }

    /// The service's methods (all unary), named as in `grpc_predict_v2.proto`.
    enum Method: String, CaseIterable, Sendable {
        case serverLive = "ServerLive"
        case serverReady = "ServerReady"
        case modelReady = "ModelReady"
        case serverMetadata = "ServerMetadata"
        case modelMetadata = "ModelMetadata"
        case modelInfer = "ModelInfer"
        case repositoryIndex = "RepositoryIndex"
        case repositoryModelLoad = "RepositoryModelLoad"
        case repositoryModelUnload = "RepositoryModelUnload"

        /// The method a request's `:path` names (`/inference.GRPCInferenceService/ModelInfer`), if this service has it.
        init?(path: String) {
            guard let method = Self.byPath[path] else { return nil }
            self = method
        }

        private static let byPath: [String: Method] = Dictionary(
            uniqueKeysWithValues: allCases.map {
                ("/\(Inference_GRPCInferenceService.descriptor.fullyQualifiedService)/\($0.rawValue)", $0)
            })

        /// Loading a model reads files (or object storage): it runs on the thread pool, not the event loop.
        var blocks: Bool { self == .repositoryModelLoad }
    }

    /// The answer to come of a call that waits on a model's own server (an infer call, while such a model is loaded),
    /// completed on `eventLoop`; nil for a call answered at once by ``answer(_:message:metadata:)``.
    func answerLater(_ method: Method, message: GRPCMessage, metadata: CallMetadata, on eventLoop: any EventLoop)
        -> EventLoopFuture<Result<GRPCMessage, RPCError>>?
    {
        guard method == .modelInfer, repository.hasOwnServers,
            let request = try? Inference_ModelInferRequest(serializedBytes: message), repository.hasOwnServer(model: request.modelName)
        else { return nil }
        let started = ContinuousClock.now
        let name = request.modelName
        guard Self.payloadSize(request) <= endpoint.bodyLimit else {
            let error = InferenceError.bodyTooLarge(limit: endpoint.bodyLimit)
            endpoint.count(model: name, answered: nil, status: 413, protocol: .grpc, started: started)
            return eventLoop.makeSucceededFuture(.failure(Self.rpcError(error)))
        }
        let probe = metadata.probe
        return endpoint.infer(
            model: name, version: request.modelVersion.isEmpty ? nil : request.modelVersion,
            requestID: request.id.isEmpty ? nil : request.id, probe: probe, started: started, on: eventLoop
        ) { file throws(InferenceError) in try Self.decode(request, for: file) }
        .map { [endpoint] done -> Result<GRPCMessage, RPCError> in
            endpoint.count(model: name, answered: done.loaded, status: 200, protocol: .grpc, started: started, id: done.id, probe: probe)
            do {
                return .success(try Self.response(done, model: name, raw: !request.rawInputContents.isEmpty).serializedBytes())
            } catch {
                return .failure(RPCError(code: .internalError, message: "the answer cannot be encoded: \(error)"))
            }
        }
        .recover { [endpoint] failure in
            let unanswered = failure as? InferenceEndpoint.Unanswered
            let reply = InferenceServer.reply(for: unanswered?.error ?? failure)
            endpoint.count(model: name, answered: unanswered?.version, status: Int(reply.status.code), protocol: .grpc, started: started)
            return .failure(Self.rpcError(unanswered?.error ?? failure))
        }
    }

    /// What the service reads of a call's metadata.
    struct CallMetadata: Sendable {
        /// The call carries `stagecraft-probe` (reconcile's verification): answered and counted, not captured.
        var probe = false
        /// The values of `authorization`.
        var authorization: [String] = []
    }

    /// The metadata that marks a verification probe.
    static let probeMetadata = InferenceServer.probeHeader.canonicalName.lowercased()

    /// Answers one call: its message decoded, the method run, the answer encoded; or the gRPC status saying why not.
    func answer(_ method: Method, message: GRPCMessage, metadata: CallMetadata) -> Result<GRPCMessage, RPCError> {
        switch method {
        case .serverLive: unary(message) { try serverLive($0, metadata: metadata) }
        case .serverReady: unary(message) { try serverReady($0, metadata: metadata) }
        case .modelReady: unary(message) { try modelReady($0, metadata: metadata) }
        case .serverMetadata: unary(message) { try serverMetadata($0, metadata: metadata) }
        case .modelMetadata: unary(message) { try modelMetadata($0, metadata: metadata) }
        case .modelInfer: unary(message) { try modelInfer($0, metadata: metadata) }
        case .repositoryIndex: unary(message) { try repositoryIndex($0, metadata: metadata) }
        case .repositoryModelLoad: unary(message) { try repositoryModelLoad($0, metadata: metadata) }
        case .repositoryModelUnload: unary(message) { try repositoryModelUnload($0, metadata: metadata) }
        }
    }

    private func unary<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ message: GRPCMessage, _ body: (Request) throws -> Response
    ) -> Result<GRPCMessage, RPCError> {
        let request: Request
        do {
            request = try Request(serializedBytes: message)
        } catch {
            return .failure(RPCError(code: .invalidArgument, message: "the message is not a valid \(Request.protoMessageName) (\(error))"))
        }
        do {
            return .success(try body(request).serializedBytes())
        } catch {
            return .failure(Self.rpcError(error))
        }
    }

    private func serverLive(_ request: Inference_ServerLiveRequest, metadata: CallMetadata) throws -> Inference_ServerLiveResponse {
        .with { $0.live = true }
    }

    private func serverReady(_ request: Inference_ServerReadyRequest, metadata: CallMetadata) throws -> Inference_ServerReadyResponse {
        .with { $0.ready = true }
    }

    private func modelReady(_ request: Inference_ModelReadyRequest, metadata: CallMetadata) throws -> Inference_ModelReadyResponse {
        let loaded = repository.resolve(model: request.name, version: request.version.isEmpty ? nil : request.version)
        return .with { $0.ready = loaded != nil }
    }

    private func serverMetadata(_ request: Inference_ServerMetadataRequest, metadata: CallMetadata) throws
        -> Inference_ServerMetadataResponse
    {
        .with {
            $0.name = "stagecraft"
            $0.version = InferenceServer.version
            $0.extensions = ["model_repository"]
        }
    }

    private func modelMetadata(_ request: Inference_ModelMetadataRequest, metadata: CallMetadata) throws
        -> Inference_ModelMetadataResponse
    {
        let version = request.version.isEmpty ? nil : request.version
        guard let loaded = repository.resolve(model: request.name, version: version) else {
            throw RPCError(code: .notFound, message: InferenceServer.notFoundMessage(request.name, version, repository))
        }
        let file = loaded.file
        return .with { metadata in
            metadata.name = request.name
            metadata.versions = repository.versions(of: request.name) ?? []
            metadata.platform = "stagecraft"
            metadata.parameters = [
                "version": .string(loaded.version), "source": .string(loaded.source), "task": .string(file.task.rawValue),
                "algorithm": .string(file.estimator.algorithm),
            ]
            metadata.inputs = file.pipeline.features.map { feature in
                .with { tensor in
                    tensor.name = feature.name
                    tensor.datatype = feature.kind == .numeric ? "FP64" : "BYTES"
                    tensor.shape = [-1]
                    if let levels = feature.levels { tensor.parameters = ["levels": .string(Self.jsonList(levels))] }
                }
            }
            var outputs: [Inference_ModelMetadataResponse.TensorMetadata] = [
                .with {
                    $0.name = "predict"
                    $0.datatype = file.classes == nil ? "FP64" : "BYTES"
                    $0.shape = [-1]
                }
            ]
            if let classes = file.classes {
                outputs[0].parameters = ["classes": .string(Self.jsonList(classes))]
                outputs.append(
                    .with {
                        $0.name = "predict_proba"
                        $0.datatype = "FP64"
                        $0.shape = [-1, Int64(classes.count)]
                        $0.parameters = ["classes": .string(Self.jsonList(classes))]
                    })
            }
            metadata.outputs = outputs
        }
    }

    private func modelInfer(_ request: Inference_ModelInferRequest, metadata: CallMetadata) throws -> Inference_ModelInferResponse {
        let started = ContinuousClock.now
        let name = request.modelName
        var answered: LoadedVersion?
        do {
            guard Self.payloadSize(request) <= endpoint.bodyLimit else { throw InferenceError.bodyTooLarge(limit: endpoint.bodyLimit) }
            guard repository.contains(model: name) else {
                throw InferenceError(
                    .notFound, InferenceServer.notFoundMessage(name, request.modelVersion.isEmpty ? nil : request.modelVersion, repository))
            }
            let probe = metadata.probe
            let version = request.modelVersion.isEmpty ? nil : request.modelVersion
            let requestID = request.id.isEmpty ? nil : request.id
            let done = try endpoint.infer(
                model: name, version: version, requestID: requestID, probe: probe, started: started, answered: &answered
            ) { file throws(InferenceError) in try Self.decode(request, for: file) }
            let response = Self.response(done, model: name, raw: !request.rawInputContents.isEmpty)
            endpoint.count(model: name, answered: answered, status: 200, protocol: .grpc, started: started, id: done.id, probe: probe)
            return response
        } catch {
            let reply = InferenceServer.reply(for: error)
            endpoint.count(model: name, answered: answered, status: Int(reply.status.code), protocol: .grpc, started: started)
            throw Self.rpcError(error)
        }
    }

    private func repositoryIndex(_ request: Inference_RepositoryIndexRequest, metadata: CallMetadata) throws
        -> Inference_RepositoryIndexResponse
    {
        try authorize(metadata)
        return .with { index in
            index.models = repository.models.flatMap { name in
                (repository.versions(of: name) ?? []).map { version in
                    .with {
                        $0.name = name
                        $0.version = version
                        $0.state = "READY"
                    }
                }
            }
        }
    }

    private func repositoryModelLoad(_ request: Inference_RepositoryModelLoadRequest, metadata: CallMetadata) throws
        -> Inference_RepositoryModelLoadResponse
    {
        try authorize(metadata)
        guard case .stringParam(let version)? = request.parameters["version"]?.parameterChoice, !version.isEmpty else {
            throw RPCError(
                code: .invalidArgument, message: "RepositoryModelLoad needs the parameter 'version' (a digest, at least 12 hex digits)")
        }
        var makeDefault = true
        if let flag = request.parameters["default"]?.parameterChoice {
            guard case .boolParam(let value) = flag else {
                throw RPCError(code: .invalidArgument, message: "the parameter 'default' must be true or false")
            }
            makeDefault = value
        }
        guard let loader else { throw RPCError(code: .notFound, message: "this server cannot load models") }
        let loaded: LoadedVersion
        do {
            // On NIO's thread pool (see GRPCConnection): waiting here blocks no event loop.
            let name = request.modelName
            loaded = try waiting { try await loader(name, version) }
        } catch {
            throw RPCError(code: .notFound, message: "cannot load version \(version) of '\(request.modelName)': \(error)")
        }
        RepositoryAPI.warm(loaded.file)
        repository.load(loaded, makeDefault: makeDefault)
        return Inference_RepositoryModelLoadResponse()
    }

    private func repositoryModelUnload(_ request: Inference_RepositoryModelUnloadRequest, metadata: CallMetadata) throws
        -> Inference_RepositoryModelUnloadResponse
    {
        try authorize(metadata)
        var version: String?
        if case .stringParam(let text)? = request.parameters["version"]?.parameterChoice, !text.isEmpty { version = text }
        guard repository.unload(model: request.modelName, version: version) else {
            throw RPCError(code: .notFound, message: InferenceServer.notFoundMessage(request.modelName, version, repository))
        }
        return Inference_RepositoryModelUnloadResponse()
    }

    /// The repository calls need `authorization: Bearer <admin token>`.
    private func authorize(_ metadata: CallMetadata) throws {
        guard let adminToken else { throw RPCError(code: .unimplemented, message: "the model repository API is off on this server") }
        guard metadata.authorization.contains("Bearer \(adminToken)") else {
            throw RPCError(
                code: .unauthenticated,
                message:
                    "the model repository calls need the metadata 'authorization: Bearer <token>' with the token in .stagecraft/admin-token"
            )
        }
    }

    // MARK: Requests and responses

    /// The request's tensors, from typed `contents` or from `raw_input_contents`, decoded for `file`.
    static func decode(_ request: Inference_ModelInferRequest, for file: ModelFile) throws(InferenceError) -> InferenceRequest {
        guard !request.inputs.isEmpty else { throw InferenceError(.badRequest, "the request has no inputs") }
        let raw = request.rawInputContents
        guard raw.isEmpty || raw.count == request.inputs.count else {
            throw InferenceError(
                .badRequest,
                "raw_input_contents has \(raw.count) entries, the request has \(request.inputs.count) inputs: one each, in order")
        }
        var tensors: [InferenceRequest.Tensor] = []
        for (index, input) in request.inputs.enumerated() {
            let name = input.name
            guard !name.isEmpty else { throw InferenceError(.badRequest, "input \(index) has no name") }
            guard !input.shape.isEmpty, input.shape.allSatisfy({ $0 >= 0 && $0 < 1_000_000_000 }) else {
                throw InferenceError(.badRequest, "input '\(name)': shape must be a list of non-negative integers, such as [2] or [2, 1]")
            }
            let shape = input.shape.map { Int($0) }
            guard InferenceRequest.Tensor.numericTypes.contains(input.datatype) || input.datatype == "BYTES" else {
                throw InferenceError(
                    .badRequest,
                    "input '\(name)': datatype must be one of BOOL, INT8…INT64, UINT8…UINT64, FP16, FP32, FP64, BYTES, not "
                        + "'\(input.datatype.prefix(20))'"
                )
            }
            let values: InferenceRequest.Values
            if !raw.isEmpty {
                guard !input.hasContents else {
                    throw InferenceError(
                        .badRequest, "input '\(name)' has contents, but the request sends raw_input_contents: send every input one way")
                }
                var reader = BinaryTensors.Reader(ByteBuffer(bytes: raw[index]))
                values = try reader.values(name: name, datatype: input.datatype, shape: shape, size: raw[index].count)
            } else {
                values = try Self.values(of: input, shape: shape)
            }
            tensors.append(InferenceRequest.Tensor(name: name, shape: shape, datatype: input.datatype, values: values))
        }
        let known = file.classes == nil ? ["predict"] : ["predict", "predict_proba"]
        var outputs: [String]?
        if !request.outputs.isEmpty {
            outputs = try request.outputs.map { (output) throws(InferenceError) -> String in
                guard known.contains(output.name) else {
                    throw InferenceError(
                        .badRequest, "unknown output '\(output.name.prefix(80))' (expected one of: \(known.joined(separator: ", ")))")
                }
                return output.name
            }
        }
        let rows = try InferenceRequest.dataset(tensors, model: file)
        return InferenceRequest(id: request.id.isEmpty ? nil : request.id, rows: rows, outputs: outputs)
    }

    /// A tensor's typed contents, checked against its datatype and shape.
    static func values(of input: Inference_ModelInferRequest.InferInputTensor, shape: [Int]) throws(InferenceError)
        -> InferenceRequest.Values
    {
        let contents = input.contents
        let values: InferenceRequest.Values
        switch input.datatype {
        case "BOOL": values = .numbers(contents.boolContents.map { $0 ? 1 : 0 })
        case "INT8", "INT16", "INT32": values = .numbers(contents.intContents.map(Double.init))
        case "INT64": values = .numbers(contents.int64Contents.map(Double.init))
        case "UINT8", "UINT16", "UINT32": values = .numbers(contents.uintContents.map(Double.init))
        case "UINT64": values = .numbers(contents.uint64Contents.map(Double.init))
        case "FP32": values = .numbers(contents.fp32Contents.map(Double.init))
        case "FP64": values = .numbers(contents.fp64Contents)
        case "BYTES":
            var strings: [String] = []
            for (index, bytes) in contents.bytesContents.enumerated() {
                guard let text = String(validating: bytes, as: UTF8.self) else {
                    throw InferenceError(.badRequest, "input '\(input.name)': BYTES element \(index) is not UTF-8 text")
                }
                strings.append(text)
            }
            values = .strings(strings)
        default:
            throw InferenceError(
                .badRequest, "input '\(input.name)': \(input.datatype) has no typed contents; send it in raw_input_contents")
        }
        let expected = shape.reduce(1, *)
        guard values.count == expected else {
            throw InferenceError(
                .badRequest,
                "input '\(input.name)': shape \(shape) needs \(expected) values, its \(input.datatype) contents have \(values.count)")
        }
        return values
    }

    /// The response: `predict` (and `predict_proba`), as typed contents or, for raw inputs, as raw output contents.
    static func response(_ done: InferenceEndpoint.Answer, model: String, raw: Bool) -> Inference_ModelInferResponse {
        let file = done.loaded.file
        let wanted = done.request.outputs ?? (file.classes == nil ? ["predict"] : ["predict", "predict_proba"])
        let rows = Int64(done.request.rows.rowCount)
        var response = Inference_ModelInferResponse()
        response.modelName = model
        response.modelVersion = done.loaded.version
        response.id = done.id
        response.parameters = ["source": .string(done.loaded.source)]
        for name in wanted {
            var output = Inference_ModelInferResponse.InferOutputTensor()
            output.name = name
            var bytes: [UInt8] = []
            if name == "predict", let labels = done.predictions.labels {
                output.datatype = "BYTES"
                output.shape = [rows]
                if raw {
                    BinaryTensors.append(strings: labels, to: &bytes)
                } else {
                    output.contents.bytesContents = labels.map { Data($0.utf8) }
                }
            } else if name == "predict" {
                output.datatype = "FP64"
                output.shape = [rows]
                if raw {
                    BinaryTensors.append(numbers: done.predictions.values ?? [], to: &bytes)
                } else {
                    output.contents.fp64Contents = done.predictions.values ?? []
                }
            } else if let probabilities = done.predictions.probabilities, let classes = file.classes {
                output.datatype = "FP64"
                output.shape = [rows, Int64(classes.count)]
                output.parameters = ["classes": .string(jsonList(classes))]
                if raw { BinaryTensors.append(numbers: probabilities, to: &bytes) } else { output.contents.fp64Contents = probabilities }
            } else {
                continue
            }
            response.outputs.append(output)
            if raw { response.rawOutputContents.append(Data(bytes)) }
        }
        return response
    }

    /// The bytes a request's tensors take (raw contents, BYTES elements, 8 per number): what the HTTP body limit
    /// bounds. The transport takes messages up to 4 times the limit, so that a larger one gets `RESOURCE_EXHAUSTED`
    /// with a message instead of a reset stream.
    static func payloadSize(_ request: Inference_ModelInferRequest) -> Int {
        var size = request.rawInputContents.reduce(0) { $0 + $1.count }
        for input in request.inputs {
            let contents = input.contents
            size += contents.bytesContents.reduce(0) { $0 + $1.count }
            size +=
                8
                * (contents.boolContents.count + contents.intContents.count + contents.int64Contents.count + contents.uintContents.count
                    + contents.uint64Contents.count + contents.fp32Contents.count + contents.fp64Contents.count)
        }
        return size
    }

    /// The gRPC status for what HTTP answers 400, 404 and 413: never `INTERNAL` for what a client sent.
    static func rpcError(_ error: any Error) -> RPCError {
        if let error = error as? RPCError { return error }
        if let error = error as? InferenceError {
            switch error.kind {
            case .badRequest: return RPCError(code: .invalidArgument, message: error.message)
            case .notFound: return RPCError(code: .notFound, message: error.message)
            case .tooLarge: return RPCError(code: .resourceExhausted, message: error.message)
            }
        }
        if let error = error as? LearningError { return RPCError(code: .invalidArgument, message: error.message) }
        if let error = error as? ExternalModelError {
            return RPCError(code: error.code == .unavailable ? .unavailable : .internalError, message: error.message)
        }
        return RPCError(code: .invalidArgument, message: "\(error)")
    }

    /// A list of strings as JSON text, for a string parameter.
    static func jsonList(_ items: [String]) -> String {
        var writer = JSONWriter()
        writer.strings(items)
        return String(decoding: writer.bytes, as: UTF8.self)
    }
}

extension Inference_InferParameter {
    /// A string parameter.
    static func string(_ text: String) -> Inference_InferParameter { .with { $0.stringParam = text } }
}

/// One gRPC message as it travels: a 5-byte prefix (uncompressed, the length) and the protobuf bytes, in one
/// `ByteBuffer`. SwiftProtobuf reads and writes the bytes after the prefix in place, so a message is neither copied
/// out of the frame it came in nor into the one it leaves in.
struct GRPCMessage: SwiftProtobufContiguousBytes {
    /// The prefix and the message.
    private(set) var framed: ByteBuffer

    /// A received message: `framed` holds exactly the prefix (already checked) and the message.
    init(framed: ByteBuffer) { self.framed = framed }

    init(repeating: UInt8, count: Int) {
        framed = ByteBuffer()
        framed.reserveCapacity(5 + count)
        framed.writeInteger(UInt8(0))
        framed.writeInteger(UInt32(count))
        framed.writeRepeatingByte(repeating, count: count)
    }

    init(_ sequence: some Sequence<UInt8>) {
        let bytes = Array(sequence)
        self.init(repeating: 0, count: bytes.count)
        framed.setBytes(bytes, at: framed.readerIndex + 5)
    }

    var count: Int { framed.readableBytes - 5 }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try framed.withUnsafeReadableBytes { try body(UnsafeRawBufferPointer(rebasing: $0.dropFirst(5))) }
    }

    mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try framed.withUnsafeMutableReadableBytes { try body(UnsafeMutableRawBufferPointer(rebasing: $0.dropFirst(5))) }
    }

    /// The one message of a unary call's body, its prefix checked: or what is wrong with it.
    static func unframe(_ body: ByteBuffer) -> Result<GRPCMessage, RPCError> {
        guard let flag = body.getInteger(at: body.readerIndex, as: UInt8.self),
            let length = body.getInteger(at: body.readerIndex + 1, as: UInt32.self)
        else {
            return .failure(RPCError(code: .invalidArgument, message: "the call has no message: a unary call takes exactly one"))
        }
        guard flag == 0 else {
            return .failure(RPCError(code: .invalidArgument, message: "the message is marked compressed, but the call names no encoding"))
        }
        let came = body.readableBytes - 5
        if came < length {
            return .failure(RPCError(code: .invalidArgument, message: "the message is cut short: \(came) of its \(length) bytes came"))
        }
        if came > length {
            return .failure(
                RPCError(code: .invalidArgument, message: "the call sends more than one message: a unary call takes exactly one"))
        }
        return .success(GRPCMessage(framed: body))
    }
}
