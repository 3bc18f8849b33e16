import Foundation
import Registry
import StagecraftTesting
import Testing

@Suite struct StateStoreTests {
    func record(_ model: String = "m", version: String = String(repeating: "a", count: 64), outcome: DeploymentOutcome = .inProgress) -> DeploymentRecord {
        DeploymentRecord(environment: "qa", model: model, version: version, source: String(repeating: "1", count: 40),
                         environmentCommit: String(repeating: "2", count: 40), outcome: outcome,
                         gates: [GateResult(gate: "auc >= 0.9", metric: "auc", value: 0.93, passed: true, stage: "offline")], actor: "Ada")
    }

    /// Reads the store with Python's sqlite3 module, an independent SQLite client.
    func sql(_ path: String, _ query: String) throws -> String {
        try ProcessRunner.run("python3", ["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print('\\n'.join('|'.join(map(str,r)) for r in c.execute(sys.argv[2])))", path, query])
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func aDeploymentIsBegunThenFinishedWithWhatServesInOneStep() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.appending(".stagecraft/state.db")
        let store = try SQLiteStateStore(path: path)
        var begun = record()
        try store.begin(begun)
        #expect(try store.records(environment: "qa", model: nil).map(\.outcome) == [.inProgress])
        #expect(try store.served(environment: "qa").isEmpty)
        #expect(try store.unnoted().isEmpty, "a record in progress is not noted")

        begun.outcome = .succeeded
        begun.finishedAt = Timestamp.now()
        let served = ServedModel(environment: "qa", model: "m", version: begun.version, source: begun.source,
                                 traffic: [VersionShare(version: begun.version, weight: 90), VersionShare(version: String(repeating: "b", count: 64), weight: 10)],
                                 shadow: nil, recordID: begun.id, since: begun.finishedAt!)
        try store.finish(begun, served: served, removed: nil)
        #expect(try store.records(environment: "qa", model: "m") == [begun])
        #expect(try store.served(environment: "qa")["m"] == served)
        #expect(try store.unnoted() == [begun])
        try store.markNoted([begun.id])
        #expect(try store.unnoted().isEmpty)

        // WAL, the schema at its migration, the rows as another SQLite client sees them.
        #expect(try sql(path, "PRAGMA journal_mode") == "wal")
        #expect(try sql(path, "SELECT identifier FROM grdb_migrations ORDER BY identifier") == "1-deployments\n2-record-target")
        #expect(try sql(path, "SELECT outcome, actor, noted FROM deployment_record") == "succeeded|Ada|1")

        // Reopening keeps everything and does not migrate twice.
        let again = try SQLiteStateStore(path: path)
        #expect(try again.records(environment: nil, model: nil) == [begun])
        try again.finish(record("m", outcome: .removed), served: nil, removed: "m")
        #expect(try again.served(environment: "qa").isEmpty)
    }

    @Test func recordsRoundTripThroughANoteLine() throws {
        var finished = record(outcome: .failed)
        finished.reason = "gate failed: auc >= 0.99 (measured 0.93)"
        finished.finishedAt = Timestamp.now()
        let note = "not a record\n" + finished.jsonLine() + "\n" + record("other").jsonLine() + "\n"
        let parsed = DeploymentRecord.parseNote(note)
        #expect(parsed.count == 2)
        #expect(parsed.first == finished)
        // A store rebuilt from notes holds the same records; importing twice adds nothing.
        let scratch = try ScratchDirectory()
        let store = try SQLiteStateStore(path: scratch.appending("state.db"))
        try store.importRecords(parsed)
        try store.importRecords(parsed)
        #expect(Set(try store.records(environment: nil, model: nil)) == Set(parsed))
        #expect(try store.unnoted().isEmpty, "imported records are already in the notes")
    }

    @Test func timestampsKeepWholeMillisecondsThroughText() throws {
        for seconds in [0.0, 1_732_400_000.409, 1_732_400_000.4099999, 1_732_400_000.9995, -1.5] {
            let date = Timestamp.rounded(Date(timeIntervalSince1970: seconds))
            let text = Timestamp.string(date)
            #expect(Timestamp.date(text).map(Timestamp.string) == text)
            #expect(abs(Timestamp.date(text)!.timeIntervalSince1970 - date.timeIntervalSince1970) < 0.0005)
        }
        #expect(Timestamp.string(Date(timeIntervalSince1970: 1_732_400_000.4099999)) == "2024-11-23T22:13:20.410Z")
    }

    @Test func theSyncedCommitIsKeptPerEnvironment() throws {
        let scratch = try ScratchDirectory()
        let store = try SQLiteStateStore(path: scratch.appending("state.db"))
        #expect(try store.syncedCommit(environment: "dev") == nil)
        try store.setSyncedCommit("abc", environment: "dev")
        try store.setSyncedCommit(nil, environment: "qa")
        #expect(try store.syncedCommit(environment: "dev") == "abc")
        #expect(try store.syncedCommit(environment: "qa") == nil)
    }
}

@Suite struct TimestampTests {
    @Test func theTextIsWhatFoundationsISO8601Writes() throws {
        let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let milliseconds = Int64.random(in: -5_000_000_000_000...10_000_000_000_000, using: &generator)
            let date = Date(timeIntervalSince1970: Double(milliseconds) / 1000)
            let text = Timestamp.string(date)
            #expect(abs(try style.parse(text).timeIntervalSince1970 - Timestamp.date(text)!.timeIntervalSince1970) < 1e-4)
            #expect(Timestamp.date(text).map(Timestamp.string) == text)
            #expect(abs(try style.parse(text).timeIntervalSince1970 * 1000 - Double(milliseconds)) < 0.5)
        }
        #expect(Timestamp.date("2026-11-23T22:14:51Z") == Date(timeIntervalSince1970: 1_795_472_091))
        for bad in ["", "2026-11-23", "2026-13-01T00:00:00Z", "2026-11-23T22:14:51", "2026-11-23T22:14:51.12xZ"] {
            #expect(Timestamp.date(bad) == nil, "\(bad)")
        }
    }
}
