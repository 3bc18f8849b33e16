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
struct GRPCInference: Inference_GRPCInferenceService.ServiceProtocol {
    let endpoint: InferenceEndpoint
    let adminToken: String?
    let loader: (@Sendable (String, String) throws -> LoadedVersion)?
    var repository: ModelRepository { endpoint.repository }

    private func serverLive(_ request: Inference_ServerLiveRequest, metadata: Metadata) async throws -> Inference_ServerLiveResponse {
        .with { $0.live = true }
    }

    private func serverReady(_ request: Inference_ServerReadyRequest, metadata: Metadata) async throws -> Inference_ServerReadyResponse {
        .with { $0.ready = true }
    }

    private func modelReady(_ request: Inference_ModelReadyRequest, metadata: Metadata) async throws -> Inference_ModelReadyResponse {
        let loaded = repository.resolve(model: request.name, version: request.version.isEmpty ? nil : request.version)
        return .with { $0.ready = loaded != nil }
    }

    private func serverMetadata(_ request: Inference_ServerMetadataRequest, metadata: Metadata) async throws
        -> Inference_ServerMetadataResponse
    {
        .with {
            $0.name = "stagecraft"
            $0.version = InferenceServer.version
            $0.extensions = ["model_repository"]
        }
    }

    private func modelMetadata(_ request: Inference_ModelMetadataRequest, metadata: Metadata) async throws
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

    private func modelInfer(_ request: Inference_ModelInferRequest, metadata: Metadata) async throws -> Inference_ModelInferResponse {
        let started = ContinuousClock.now
        let name = request.modelName
        var answered: LoadedVersion?
        do {
            guard Self.payloadSize(request) <= endpoint.bodyLimit else { throw InferenceError.bodyTooLarge(limit: endpoint.bodyLimit) }
            guard repository.contains(model: name) else {
                throw InferenceError(
                    .notFound, InferenceServer.notFoundMessage(name, request.modelVersion.isEmpty ? nil : request.modelVersion, repository))
            }
            let probe = metadata[InferenceServer.probeHeader.canonicalName.lowercased()].contains { _ in true }
            let done = try endpoint.infer(
                model: name, version: request.modelVersion.isEmpty ? nil : request.modelVersion,
                requestID: request.id.isEmpty ? nil : request.id, probe: probe, started: started,
                answered: &answered
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

    private func repositoryIndex(_ request: Inference_RepositoryIndexRequest, metadata: Metadata) async throws
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

    private func repositoryModelLoad(_ request: Inference_RepositoryModelLoadRequest, metadata: Metadata) async throws
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
            loaded = try loader(request.modelName, version)
        } catch {
            throw RPCError(code: .notFound, message: "cannot load version \(version) of '\(request.modelName)': \(error)")
        }
        RepositoryAPI.warm(loaded.file)
        repository.load(loaded, makeDefault: makeDefault)
        return Inference_RepositoryModelLoadResponse()
    }

    private func repositoryModelUnload(_ request: Inference_RepositoryModelUnloadRequest, metadata: Metadata) async throws
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

    // MARK: The service's methods: each hands its message and metadata to the function above of the same name.

    func serverLive(request: ServerRequest<Inference_ServerLiveRequest>, context: ServerContext) async throws -> ServerResponse<
        Inference_ServerLiveResponse
    > {
        ServerResponse(message: try await serverLive(request.message, metadata: request.metadata))
    }

    func serverReady(request: ServerRequest<Inference_ServerReadyRequest>, context: ServerContext) async throws -> ServerResponse<
        Inference_ServerReadyResponse
    > {
        ServerResponse(message: try await serverReady(request.message, metadata: request.metadata))
    }

    func modelReady(request: ServerRequest<Inference_ModelReadyRequest>, context: ServerContext) async throws -> ServerResponse<
        Inference_ModelReadyResponse
    > {
        ServerResponse(message: try await modelReady(request.message, metadata: request.metadata))
    }

    func serverMetadata(request: ServerRequest<Inference_ServerMetadataRequest>, context: ServerContext) async throws -> ServerResponse<
        Inference_ServerMetadataResponse
    > {
        ServerResponse(message: try await serverMetadata(request.message, metadata: request.metadata))
    }

    func modelMetadata(request: ServerRequest<Inference_ModelMetadataRequest>, context: ServerContext) async throws -> ServerResponse<
        Inference_ModelMetadataResponse
    > {
        ServerResponse(message: try await modelMetadata(request.message, metadata: request.metadata))
    }

    func modelInfer(request: ServerRequest<Inference_ModelInferRequest>, context: ServerContext) async throws -> ServerResponse<
        Inference_ModelInferResponse
    > {
        ServerResponse(message: try await modelInfer(request.message, metadata: request.metadata))
    }

    func repositoryIndex(request: ServerRequest<Inference_RepositoryIndexRequest>, context: ServerContext) async throws -> ServerResponse<
        Inference_RepositoryIndexResponse
    > {
        ServerResponse(message: try await repositoryIndex(request.message, metadata: request.metadata))
    }

    func repositoryModelLoad(request: ServerRequest<Inference_RepositoryModelLoadRequest>, context: ServerContext) async throws
        -> ServerResponse<Inference_RepositoryModelLoadResponse>
    {
        ServerResponse(message: try await repositoryModelLoad(request.message, metadata: request.metadata))
    }

    func repositoryModelUnload(request: ServerRequest<Inference_RepositoryModelUnloadRequest>, context: ServerContext) async throws
        -> ServerResponse<Inference_RepositoryModelUnloadResponse>
    {
        ServerResponse(message: try await repositoryModelUnload(request.message, metadata: request.metadata))
    }

    /// The repository calls need `authorization: Bearer <admin token>`.
    private func authorize(_ metadata: Metadata) throws {
        guard let adminToken else { throw RPCError(code: .unimplemented, message: "the model repository API is off on this server") }
        let given = metadata["authorization"].compactMap { value -> String? in
            if case .string(let text) = value { return text }
            return nil
        }
        guard given.contains("Bearer \(adminToken)") else {
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
