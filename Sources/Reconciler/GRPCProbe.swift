import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
public import InferenceGRPC
import Synchronization

extension ServerClient {
    /// True when the environment's server also listens for gRPC (`server.grpcPort`).
    public var servesGRPC: Bool { grpcPort != nil }

    /// Sends one `ModelInfer` to the server's gRPC service (with the `stagecraft-probe` metadata, so that it is counted
    /// but not captured) and waits for the answer; blocks the calling thread (the reconcile's own, never an async
    /// executor's).
    public func inferOverGRPC(_ request: Inference_ModelInferRequest) throws -> Inference_ModelInferResponse {
        guard let grpcPort else { throw ReconcileError(.server, "the server at \(address) does not serve gRPC") }
        let host = host == "localhost" ? "127.0.0.1" : host
        let outcome = Mutex<Result<Inference_ModelInferResponse, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            let result: Result<Inference_ModelInferResponse, any Error>
            do {
                let transport = try HTTP2ClientTransport.Posix(target: .ipv4(address: host, port: grpcPort), transportSecurity: .plaintext)
                result = .success(
                    try await withGRPCClient(transport: transport) { client in
                        try await client.unary(
                            request: ClientRequest(message: request, metadata: ["stagecraft-probe": "verify"]),
                            descriptor: Inference_GRPCInferenceService.Method.ModelInfer.descriptor,
                            serializer: ProtobufSerializer<Inference_ModelInferRequest>(),
                            deserializer: ProtobufDeserializer<Inference_ModelInferResponse>(),
                            options: .defaults
                        ) { response in try response.message }
                    })
            } catch {
                result = .failure(error)
            }
            outcome.withLock { $0 = result }
            done.signal()
        }
        guard done.wait(timeout: .now() + 30) == .success, let result = outcome.withLock({ $0 }) else {
            throw ReconcileError(.server, "no answer over gRPC from \(host):\(grpcPort) in 30 s")
        }
        do { return try result.get() } catch {
            throw ReconcileError(.server, "the gRPC probe to \(host):\(grpcPort) failed", cause: error)
        }
    }
}
