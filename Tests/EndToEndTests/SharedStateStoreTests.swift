import Foundation
import StagecraftTesting
import Testing

/// `stateStore: postgres://…` in `stagecraft.yaml`: the real binary reconciles with its records in a real PostgreSQL
/// server, read back with `psql`; a password in the committed file is refused.
@Suite struct SharedStateStoreTests {
    @Test func reconcileKeepsItsRecordsInPostgreSQL() throws {
        let postgres = try PostgresServer()
        let scratch = try ScratchRepository.example()
        try scratch.useFreePorts()
        defer { scratch.stopServers() }
        try scratch.keepState(in: postgres)
        let reconcile = try scratch.stagecraft(["reconcile", "--env", "dev"])
        #expect(reconcile.status == 0, "\(reconcile.stderr)")
        #expect(!FileManager.default.fileExists(atPath: scratch.directory.appending(".stagecraft/state.db")), "SQLite was used")
        #expect(try postgres.psql("SELECT model, outcome FROM deployment_record ORDER BY model") == "breast-cancer|succeeded\npenguins|succeeded")
        #expect(try postgres.psql("SELECT count(*) FROM deployment WHERE environment = 'dev'") == "2")
        #expect(try scratch.stagecraft(["reconcile", "--env", "dev"]).stdout.contains("dev is in sync"))
        let status = try scratch.stagecraft(["status", "--env", "dev", "--check"])
        #expect(status.status == 0, "\(status.stdout)\(status.stderr)")
        // The records are in the notes too, so a new database is filled from them.
        _ = try postgres.psql("TRUNCATE deployment_record")
        let history = try scratch.stagecraft(["history", "--env", "dev", "--output", "json"])
        #expect(history.status == 0)
        #expect(try postgres.psql("SELECT count(*) FROM deployment_record") == "2")
    }

    @Test func aPasswordInTheCommittedSettingsIsRefused() throws {
        let scratch = try ScratchRepository.example()
        let settings = try scratch.directory.read("stagecraft.yaml")
            .replacingOccurrences(of: "stateStore: .stagecraft/state.db", with: "stateStore: postgres://ada:hunter2@db.example.com/models")
        try scratch.commit(["stagecraft.yaml": settings], message: "oops")
        let validate = try scratch.stagecraft(["validate"])
        #expect(validate.status == 1)
        let said = validate.stdout + validate.stderr
        #expect(said.contains("stagecraft.yaml:"), "\(said)")
        #expect(!said.contains("hunter2"), "the password was repeated")
        #expect(said.contains("the URL holds a password, which would be committed; give it in PGPASSWORD or ~/.pgpass instead"))
    }
}
