import Foundation
import Serving
import StagecraftTesting
import Testing

/// The gRPC service's HTTP/2 transport, frame by frame, against an independent HTTP/2 client (h2, in the clients'
/// virtual environment): what gRPC clients never send, flow control past the windows, interleaved calls, and the
/// bounds on what a call and a connection may hold.
@Suite(.serialized) struct GRPCTransportTests {
    @Test func framesThatAreNotAProperCallGetTheirStatusAndTheConnectionLives() async throws {
        guard let python = Fixtures.clientsPython else {
            Issue.record(Comment(rawValue: Fixtures.clientsMissing))
            return
        }
        let repository = ModelRepository()
        let (model, _) = Models.penguins
        repository.load(
            LoadedVersion(
                model: "penguins", version: String(repeating: "ab", count: 32), source: String(repeating: "1", count: 40), file: model))
        let port = try Loopback.freePort()
        let grpcPort = try Loopback.freePort()
        let bodyLimit = 512 << 10
        var server = InferenceServer(environment: "test", repository: repository, port: port, bodyLimit: bodyLimit)
        server.grpcPort = grpcPort
        let task = Task(executorPreference: ServerExecutor.shared) { [server] in try await server.run(handleSignals: false) }
        defer { task.cancel() }
        try await offPool { try Loopback.waitForListener(port: grpcPort) }
        let script = Fixtures.packageRoot + "/Tests/Conformance/grpc_transport.py"
        let output = try await offPool {
            try ProcessRunner.run(python, [script, "127.0.0.1", String(grpcPort), String(4 * bodyLimit), String(bodyLimit)])
        }
        #expect(output.status == 0 && output.stdout.hasSuffix("every transport check passed\n"), "\(output.stdout)\(output.stderr)")
    }
}
