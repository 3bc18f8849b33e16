import Foundation
import LoopbackHTTP
import StagecraftTesting
import Testing

/// `reconcile --watch` runs as a service: SIGTERM stops it between reconciles, never in the middle of one.
@Suite struct ServiceShutdownTests {
    @Test func sigtermDuringAReconcileLetsItFinishThenExitsZero() throws {
        let scratch = try ScratchRepository.example()
        let ports = try scratch.useFreePorts()
        defer { scratch.stopServers() }
        // The reconcile pauses after loading a version to verify it: SIGTERM arrives in the middle of it.
        let watcher = try BackgroundProcess(
            Fixtures.stagecraftBinary, ["reconcile", "--env", "dev", "--watch", "--interval", "200ms"], in: scratch.path,
            environment: ["STAGECRAFT_FAILPOINT": "after-load:pause"])
        defer { watcher.stop() }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && !watcher.log.contains("failpoint after-load: paused") { usleep(20_000) }
        #expect(watcher.log.contains("failpoint after-load: paused"), "\(watcher.log)")
        kill(watcher.process.processIdentifier, SIGTERM)
        let exitDeadline = Date().addingTimeInterval(120)
        while watcher.process.isRunning && Date() < exitDeadline { usleep(50_000) }
        #expect(!watcher.process.isRunning, "watch did not stop: \(watcher.log)")
        #expect(watcher.process.terminationStatus == 0, "\(watcher.log)")
        // It finished the reconcile it was in: both models serve and nothing is left to do.
        let after = try scratch.stagecraft(["plan", "--env", "dev"])
        #expect(after.status == 0, "\(after.stdout)\n\(watcher.log)")
        for model in ["penguins", "breast-cancer"] {
            #expect(try HTTPConnection(port: ports["dev"]!).send("GET", "/v2/models/\(model)/ready").status == 200)
        }
    }
}
