import Foundation
import StagecraftTesting
import Testing

/// When an environment serves gRPC, `reconcile` verifies each version over gRPC too (one probe request).
@Suite struct GRPCVerificationTests {
    @Test func aVersionIsVerifiedOverGRPCWhenTheEnvironmentServesIt() throws {
        let scratch = try ScratchRepository.example()
        let ports = try scratch.useFreePorts()
        defer { scratch.stopServers() }
        let grpcPort = try Loopback.freePort()
        let dev = try scratch.directory.read("environments/dev.yaml")
        try scratch.commit(
            ["environments/dev.yaml": dev.replacingOccurrences(of: "port: \(ports["dev"]!)}", with: "port: \(ports["dev"]!), grpcPort: \(grpcPort)}")],
            message: "dev: gRPC")
        let reconcile = try scratch.stagecraft(["reconcile", "--env", "dev", "--output", "json"])
        #expect(reconcile.status == 0, "\(reconcile.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(reconcile.stdout.utf8)) as? [String: Any])
        let records = report["records"] as? [[String: Any]] ?? []
        #expect(records.count == 2)
        for record in records {
            let gates = record["gates"] as? [[String: Any]] ?? []
            let grpc = gates.first { $0["gate"] as? String == "the gRPC answer matches the build's" }
            #expect(grpc?["passed"] as? Bool == true && grpc?["stage"] as? String == "online", "\(record["model"] ?? "?"): \(gates)")
        }
        // Without a gRPC port there is no gRPC probe.
        let plain = try ScratchRepository.example()
        try plain.useFreePorts()
        defer { plain.stopServers() }
        let without = try plain.stagecraft(["reconcile", "--env", "dev", "--output", "json"])
        #expect(without.status == 0 && !without.stdout.contains("the gRPC answer matches"))
    }
}
