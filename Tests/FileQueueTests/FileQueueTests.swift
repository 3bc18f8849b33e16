import FileQueue
import Foundation
import StagecraftTesting
import Testing

@Suite struct FileQueueTests {
    func files(_ folder: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    @Test func aFileIsClaimedOnceDoneOrRetriedThenDeadLettered() throws {
        let scratch = try ScratchDirectory()
        let queue = FileQueue(root: URL(fileURLWithPath: scratch.path), maxAttempts: 2, backoff: 0.05, lease: 60)
        try queue.prepare()
        try "good".write(to: queue.inbox.appendingPathComponent("a.csv"), atomically: true, encoding: .utf8)
        try "bad".write(to: queue.inbox.appendingPathComponent("b.csv"), atomically: true, encoding: .utf8)
        func work(_ data: Data, _ name: String) throws -> (output: Data, name: String) {
            guard String(decoding: data, as: UTF8.self) == "good" else { throw FileQueueError(.input, "'\(name)' is poisoned") }
            return (Data("scored".utf8), name + ".out")
        }
        #expect(queue.claim() == "a.csv")
        #expect(files(queue.processing) == ["a.csv"])
        #expect(queue.process("a.csv", work) == .done(output: "a.csv.out"))
        #expect(files(queue.outbox) == ["a.csv.out"] && files(queue.done) == ["a.csv"])

        #expect(queue.claim() == "b.csv")
        #expect(queue.process("b.csv", work) == .retry(attempt: 1, error: "'b.csv' is poisoned"))
        #expect(files(queue.inbox) == ["b.csv"])
        #expect(queue.claim() == nil, "backoff: not before 50 ms")
        usleep(80_000)
        #expect(queue.claim() == "b.csv")
        #expect(queue.process("b.csv", work) == .deadLetter(error: "'b.csv' is poisoned"))
        #expect(files(queue.deadLetter) == ["b.csv", "b.csv.error.json"])
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: queue.deadLetter.appendingPathComponent("b.csv.error.json"))) as? [String: Any]
        #expect(report?["attempts"] as? Int == 2)
        #expect(report?["errors"] as? [String] == ["'b.csv' is poisoned", "'b.csv' is poisoned"])
        #expect(queue.isIdle)
    }

    @Test func aDeadWorkersFileIsTakenBackAfterItsLease() throws {
        let scratch = try ScratchDirectory()
        let queue = FileQueue(root: URL(fileURLWithPath: scratch.path), lease: 0.2)
        try queue.prepare()
        try "x".write(to: queue.inbox.appendingPathComponent("c.csv"), atomically: true, encoding: .utf8)
        #expect(queue.claim() == "c.csv")  // and the worker dies
        #expect(queue.claim() == nil, "within the lease nobody else takes it")
        usleep(300_000)
        #expect(queue.claim() == "c.csv")
    }

    @Test func workersRacingForFilesEachGetDifferentOnes() throws {
        let scratch = try ScratchDirectory()
        let queue = FileQueue(root: URL(fileURLWithPath: scratch.path))
        try queue.prepare()
        for index in 0..<400 { try "\(index)".write(to: queue.inbox.appendingPathComponent("f\(index).csv"), atomically: true, encoding: .utf8) }
        let claimed = ClaimLog()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            while let name = queue.claim() { claimed.add(name) }
        }
        #expect(claimed.names.count == 400)
        #expect(Set(claimed.names).count == 400)
    }
}

final class ClaimLog: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ name: String) { lock.lock(); list.append(name); lock.unlock() }
    var names: [String] { lock.lock(); defer { lock.unlock() }; return list }
}
