import Foundation
@testable import PostgresState
import Registry
import StagecraftTesting
import Testing

/// Every state store answers the same: SQLite, PostgreSQL (a real server) and the in-memory double, through the
/// same calls; what PostgreSQL holds is checked with `psql`.
@Suite(.serialized) struct StateStoreContractTests {

    enum Kind: String, CaseIterable, Sendable { case sqlite, postgres, memory }

    /// The store of `kind`, and the PostgreSQL server behind it (stopped when the test lets it go).
    func open(_ kind: Kind, scratch: ScratchDirectory) throws -> (any StateStore, PostgresServer?) {
        switch kind {
        case .sqlite: return (try SQLiteStateStore(path: scratch.appending("state.db")), nil)
        case .postgres:
            let server = try PostgresServer()
            return (try PostgresStateStore(url: server.url + "?sslmode=disable"), server)
        case .memory: return (InMemoryStateStore(), nil)
        }
    }

    func record(_ model: String, _ environment: String = "qa", outcome: DeploymentOutcome = .inProgress, at seconds: Double)
        -> DeploymentRecord
    {
        DeploymentRecord(
            environment: environment, model: model, version: String(repeating: "a", count: 64), source: String(repeating: "1", count: 40),
            environmentCommit: String(repeating: "2", count: 40), outcome: outcome,
            gates: [GateResult(gate: "auc >= 0.9", metric: "auc", value: 0.93, passed: true, stage: "offline")], actor: "Ada",
            startedAt: Timestamp.rounded(Date(timeIntervalSince1970: 1_800_000_000 + seconds)))
    }

    @Test(arguments: Kind.allCases)
    func theSameCallsGiveTheSameAnswers(_ kind: Kind) throws {
        let scratch = try ScratchDirectory()
        let (store, postgres) = try open(kind, scratch: scratch)
        var first = record("churn", at: 1)
        var second = record("fraud", "prod", outcome: .succeeded, at: 2)
        second.target = "kserve:stagecraft-prod"  // served on KServe: the record says so
        // The revision (what the console polls) moves with every record begun or finished.
        var revisions = [try store.revision()]
        try store.begin(first)
        revisions.append(try store.revision())
        try store.begin(second)
        revisions.append(try store.revision())
        #expect(try store.records(environment: "qa", model: nil).map(\.id) == [first.id])
        #expect(try store.records(environment: nil, model: "fraud") == [second])
        #expect(try store.records(environment: nil, model: nil).map(\.id) == [first.id, second.id])
        #expect(try store.unnoted().map(\.id) == [second.id], "a record in progress is not noted")

        first.outcome = .succeeded
        first.finishedAt = Timestamp.rounded(Date(timeIntervalSince1970: 1_800_000_010))
        let served = ServedModel(
            environment: "qa", model: "churn", version: first.version, source: first.source,
            traffic: [VersionShare(version: first.version, weight: 90), VersionShare(version: String(repeating: "b", count: 64), weight: 10)],
            shadow: String(repeating: "c", count: 64), recordID: first.id, since: first.finishedAt!)
        try store.finish(first, served: served, removed: nil)
        revisions.append(try store.revision())
        #expect(Set(revisions).count == 4, "\(revisions)")
        #expect(try store.revision() == revisions.last)
        #expect(try store.records(environment: "qa", model: "churn") == [first])
        #expect(try store.served(environment: "qa") == ["churn": served])
        try store.markNoted([first.id, second.id])
        #expect(try store.unnoted().isEmpty)

        var removal = record("churn", outcome: .removed, at: 3)
        removal.finishedAt = removal.startedAt
        try store.finish(removal, served: nil, removed: "churn")
        #expect(try store.served(environment: "qa").isEmpty)

        // Importing from notes adds what is missing, keeps what is there, and counts as noted.
        let imported = record("churn", "dev", outcome: .failed, at: 0)
        try store.importRecords([imported, first])
        try store.importRecords([imported])
        #expect(try store.records(environment: "dev", model: nil) == [imported])
        #expect(try store.records(environment: "qa", model: "churn").first == first)
        #expect(try store.unnoted().map(\.id) == [removal.id])

        #expect(try store.syncedCommit(environment: "qa") == nil)
        try store.setSyncedCommit("abc", environment: "qa")
        try store.setSyncedCommit("def", environment: "qa")
        try store.setSyncedCommit(nil, environment: "prod")
        #expect(try store.syncedCommit(environment: "qa") == "def")
        #expect(try store.syncedCommit(environment: "prod") == nil)

        let build = BuildInfo(
            digest: String(repeating: "d", count: 64), model: "churn", algorithm: "logistic-regression", task: "binary-classification",
            source: String(repeating: "1", count: 40), ref: "main", data: [:], parameters: [:], metrics: ["auc": 0.97], timings: [:],
            tool: "test", createdAt: Date(timeIntervalSince1970: 1_800_000_000))
        try store.recordBuild(build)
        try store.recordBuild(build)

        if let server = postgres {
            // What another client sees.
            #expect(try server.psql("SELECT outcome, actor, noted FROM deployment_record WHERE id = '\(first.id)'") == "succeeded|Ada|t")
            #expect(try server.psql("SELECT count(*) FROM deployment") == "0")
            #expect(try server.psql("SELECT synced_commit FROM environment_sync WHERE environment = 'qa'") == "def")
            #expect(try server.psql("SELECT model, metrics FROM build") == "churn|{\"auc\":0.97}")
            #expect(try server.psql("SELECT max(version) FROM stagecraft_schema") == "3")
            #expect(try server.psql("SELECT count(*) FROM environment_lease") == "0")
            #expect(try server.psql("SELECT target FROM deployment_record WHERE model = 'fraud'") == "kserve:stagecraft-prod")
            #expect(try (store as? PostgresStateStore)?.isEmpty() == false)
            _ = try server.psql("TRUNCATE deployment_record")
            #expect(try (store as? PostgresStateStore)?.isEmpty() == true)
            try store.importRecords([imported, first])
            // A second store on the same database sees the same and does not migrate again.
            let again = try PostgresStateStore(url: server.url + "?sslmode=disable")
            #expect(try again.records(environment: nil, model: nil) == store.records(environment: nil, model: nil))
        }
    }

    @Test func aRestartedServerIsConnectedToAgainAndADownOneIsAClearError() throws {
        let server = try PostgresServer()
        let store = try PostgresStateStore(url: server.url + "?sslmode=disable")
        try store.begin(record("penguins", at: 1))
        try server.restart()
        // The next call finds the connection closed and connects again: nothing is lost.
        #expect(try store.records(environment: "qa", model: nil).map(\.model) == ["penguins"])
        try server.stop()
        let started = Date()
        do {
            _ = try store.records(environment: "qa", model: nil)
            Issue.record("read from a stopped server")
        } catch {
            #expect(error.code == .unavailable)
            #expect(error.description.contains("could not connect again"), "\(error)")
        }
        #expect(Date().timeIntervalSince(started) < 15)
        try server.start()
        #expect(try store.records(environment: "qa", model: nil).count == 1)
    }

    @Test func aPasswordNeverReachesAMessage() throws {
        let port = try Loopback.freePort()  // nothing listens there
        let url = "postgres://ada:s3cr3t-pw@127.0.0.1:\(port)/models?sslmode=disable"
        do {
            _ = try PostgresStateStore(url: url)
            Issue.record("connected to nothing")
        } catch {
            let text = String(describing: error)
            #expect(!text.contains("s3cr3t-pw"), "\(text)")
            #expect(text.contains("postgres://ada@127.0.0.1:\(port)/models"), "\(text)")
        }
    }

    @Test func thePasswordComesFromTheURLThenPGPASSWORDThenPgpass() throws {
        let scratch = try ScratchDirectory()
        try scratch.write("# comment\nother:5432:*:ada:wrong\n127.0.0.1:5433:models:ada:from\\:pgpass\n", to: "pgpass")
        let files = ["PGPASSFILE": scratch.appending("pgpass")]
        #expect(try PostgresURL("postgres://ada:inline@127.0.0.1:5433/models", environment: files).password == "inline")
        #expect(try PostgresURL("postgres://ada@127.0.0.1:5433/models", environment: files.merging(["PGPASSWORD": "env"]) { $1 }).password == "env")
        #expect(try PostgresURL("postgres://ada@127.0.0.1:5433/models", environment: files).password == "from:pgpass")
        #expect(try PostgresURL("postgres://ada@127.0.0.1:5432/models", environment: files).password == nil)
        #expect(throws: (any Error).self) { try PostgresURL("postgres://ada@127.0.0.1/models?sslmode=sometimes", environment: [:]) }
        #expect(throws: (any Error).self) { try PostgresURL("postgres://127.0.0.1:5432", environment: [:]) }
    }
}
