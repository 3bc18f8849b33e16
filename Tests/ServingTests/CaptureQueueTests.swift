import Foundation
import Learning
import LoopbackHTTP
@testable import Serving
import StagecraftTesting
import Synchronization
import Testing

/// The capture queues are bounded, never hold a request, count what they drop, and are written out when the
/// server stops.
@Suite(.serialized) struct CaptureQueueTests {
    @Test func aFullQueueRefusesAtOnceAndRunsTheRestInOrder() async throws {
        let worker = BoundedWorker(name: "test", capacity: 2)
        let gate = NSCondition()
        let open = Mutex(false)
        let ran = Mutex<[Int]>([])
        // The first job holds the thread until the test opens the gate; two more fill the queue.
        #expect(worker.submit {
            gate.lock()
            while !open.withLock({ $0 }) { gate.wait() }
            gate.unlock()
            ran.withLock { $0.append(0) }
        })
        while worker.pending > 0 { usleep(1_000) }
        let started = ContinuousClock.now
        let accepted = (1...10).map { index in worker.submit { ran.withLock { $0.append(index) } } }
        #expect(started.duration(to: .now) < .seconds(1), "a full queue must refuse at once")
        #expect(accepted == [true, true] + Array(repeating: false, count: 8))
        Self.open(gate, open)
        await worker.drained()
        #expect(ran.withLock { $0 } == [0, 1, 2])
        worker.close()
    }

    static func open(_ gate: NSCondition, _ open: borrowing Mutex<Bool>) {
        gate.lock()
        open.withLock { $0 = true }
        gate.signal()
        gate.unlock()
    }

    @Test func droppedSamplesAreCountedInMetrics() throws {
        let scratch = try ScratchDirectory()
        let capture = RequestCapture(directory: URL(fileURLWithPath: scratch.path), queueCapacity: 1, shadowCapacity: 1)
        let rows = Models.penguins.1
        let predictions = try Models.penguins.0.predict(rows)
        let shadow = LoadedVersion(model: "penguins", version: String(repeating: "cd", count: 32), source: "t", file: Models.penguins.0)
        let started = ContinuousClock.now
        for index in 0..<500 {
            capture.record(
                id: "r\(index)", model: "penguins", version: String(repeating: "ab", count: 32), rows: rows, predictions: predictions,
                classes: Models.penguins.0.classes, latency: 0.001, shadow: shadow)
        }
        #expect(started.duration(to: .now) < .seconds(2), "recording must not wait for the writer")
        capture.flush()
        let dropped = capture.droppedSamples
        #expect(dropped.capture > 0 && dropped.shadow > 0, "\(dropped)")
        let metrics = ServerMetrics()
        capture.export(to: metrics)
        #expect(metrics.render().contains("stagecraft_capture_dropped_total{queue=\"shadow\"} \(dropped.shadow)"))
        let text = try String(contentsOfFile: scratch.appending("penguins/capture-0.jsonl"), encoding: .utf8)
        let lines = text.split(separator: "\n")
        #expect(lines.count == 1_000 - dropped.capture - dropped.shadow)
    }

    @Test func whatWasCapturedIsWrittenWhenTheServerStops() async throws {
        let scratch = try ScratchDirectory()
        let capture = RequestCapture(directory: URL(fileURLWithPath: scratch.path))
        let repository = ModelRepository()
        repository.load(LoadedVersion(model: "penguins", version: String(repeating: "ab", count: 32), source: "s", file: Models.penguins.0))
        let port = try Loopback.freePort()
        var server = InferenceServer(environment: "test", repository: repository, port: port)
        server.capture = capture
        let task = Task(executorPreference: ServerExecutor.shared) { [server] in try await server.run(handleSignals: false) }
        try await offPool { try Loopback.waitForListener(port: port) }
        try await offPool {
            let client = try HTTPConnection(port: port)
            for index in 0..<200 {
                let body = perFeatureBody(Models.penguins.0, Models.penguins.1, rows: (index % 60)..<(index % 60 + 1), id: "s\(index)")
                guard try client.send("POST", "/v2/models/penguins/infer", body: body).status == 200 else {
                    throw LoopbackError(message: "not 200")
                }
            }
        }
        task.cancel()
        _ = await task.result
        // No flush by the test: the server's shutdown wrote everything.
        let text = try String(contentsOfFile: scratch.appending("penguins/capture-0.jsonl"), encoding: .utf8)
        #expect(text.split(separator: "\n").count == 200)
        #expect(capture.droppedSamples.capture == 0)
    }
}
