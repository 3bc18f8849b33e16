import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

/// Where Stagecraft keeps what each environment serves and every deployment attempt. The local store is
/// SQLite; a shared one (PostgreSQL) for reconcilers on several hosts would implement the same protocol.
public protocol StateStore: Sendable {
    /// What each model serves in `environment`, by model name.
    func served(environment: String) throws(StateStoreError) -> [String: ServedModel]
    /// Deployment records, oldest first, optionally only of one environment and/or model.
    func records(environment: String?, model: String?) throws(StateStoreError) -> [DeploymentRecord]
    /// Adds a record (usually in progress) before any of its work starts.
    func begin(_ record: DeploymentRecord) throws(StateStoreError)
    /// Stores the finished record and, in the same transaction, what now serves (nil: unchanged; `removed`: the
    /// model no longer serves there).
    func finish(_ record: DeploymentRecord, served: ServedModel?, removed: String?) throws(StateStoreError)
    /// Finished records not yet written to the git notes.
    func unnoted() throws(StateStoreError) -> [DeploymentRecord]
    /// Marks records as written to the git notes.
    func markNoted(_ ids: [String]) throws(StateStoreError)
    /// Adds records read from the git notes (when the store was lost); existing ids are left alone.
    func importRecords(_ records: [DeploymentRecord]) throws(StateStoreError)
    /// The commit of the last reconcile of `environment` that finished in sync.
    func syncedCommit(environment: String) throws(StateStoreError) -> String?
    /// Records that `environment`'s last reconcile finished in sync at `commit` (nil: it did not).
    func setSyncedCommit(_ commit: String?, environment: String) throws(StateStoreError)
    /// Records a build (by reconcile or `stagecraft build`); a digest already recorded is left alone.
    func recordBuild(_ info: BuildInfo) throws(StateStoreError)
    /// A value that changes whenever a record is added or finished, cheap to read (the console polls it).
    func revision() throws(StateStoreError) -> String
}

extension StateStore {
    /// From every record: their number and the latest start and finish (stores with a query of their own override it).
    public func revision() throws(StateStoreError) -> String {
        let records = try records(environment: nil, model: nil)
        let started = records.map(\.startedAt).max().map(Timestamp.string) ?? ""
        let finished = records.compactMap(\.finishedAt).max().map(Timestamp.string) ?? ""
        return "\(records.count) \(started) \(finished)"
    }
}

/// The state store could not be opened, read or written.
public struct StateStoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The store cannot be opened or made (a missing folder, permissions, a lock).
        public static let unavailable = Code("unavailable")
        /// The file is not a state store, or its contents cannot be read.
        public static let damaged = Code("damaged")
        /// A read failed.
        public static let read = Code("read")
        /// A write failed.
        public static let write = Code("write")
        /// A write was refused: the lease it was made under was taken over (a newer epoch holds the environment).
        public static let fenced = Code("fenced")
    }

    public let code: Code
    /// What failed, for the user.
    public let message: String
    /// What the database library said, as text.
    public let cause: String?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause.map { String(describing: $0) }
    }

    public var description: String { cause.map { "\(message): \($0)" } ?? message }
}

/// The state store in one SQLite file (`.stagecraft/state.db`) in WAL mode, its schema kept by migrations.
public final class SQLiteStateStore: StateStore {
    private let database: DatabasePool
    public let path: String

    /// Opens (creating when needed) the store at `path` and brings its schema up to date.
    public init(path: String) throws(StateStoreError) {
        self.path = path
        do {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            // Two processes opening a new store at once would both create its schema and switch it to WAL: one
            // at a time, under a file lock that the kernel drops with its holder.
            let lock = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            defer { if lock >= 0 { flock(lock, LOCK_UN); close(lock) } }
            if lock >= 0 { while flock(lock, LOCK_EX) != 0 && errno == EINTR {} }
            var configuration = Configuration()
            configuration.busyMode = .timeout(10)
            configuration.label = "stagecraft.state"
            database = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(database)
        } catch {
            throw StateStoreError(.unavailable, "cannot open the state store \(path)", cause: error)
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("1-deployments") { db in
            try db.execute(sql: """
                CREATE TABLE deployment_record (
                    id TEXT PRIMARY KEY NOT NULL,
                    environment TEXT NOT NULL,
                    model TEXT NOT NULL,
                    version TEXT NOT NULL,
                    source TEXT,
                    environment_commit TEXT NOT NULL,
                    outcome TEXT NOT NULL,
                    gates TEXT NOT NULL,
                    reason TEXT,
                    actor TEXT NOT NULL,
                    started_at TEXT NOT NULL,
                    finished_at TEXT,
                    noted INTEGER NOT NULL DEFAULT 0
                );
                CREATE INDEX deployment_record_by_environment ON deployment_record(environment, model, started_at);
                CREATE TABLE deployment (
                    environment TEXT NOT NULL,
                    model TEXT NOT NULL,
                    version TEXT NOT NULL,
                    source TEXT,
                    traffic TEXT,
                    shadow TEXT,
                    record_id TEXT NOT NULL,
                    since TEXT NOT NULL,
                    PRIMARY KEY (environment, model)
                );
                CREATE TABLE environment_sync (
                    environment TEXT PRIMARY KEY NOT NULL,
                    synced_commit TEXT
                );
                CREATE TABLE build (
                    digest TEXT PRIMARY KEY NOT NULL,
                    model TEXT NOT NULL,
                    source TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    metrics TEXT NOT NULL
                );
                """)
        }
        migrator.registerMigration("2-record-target") { db in
            try db.execute(sql: "ALTER TABLE deployment_record ADD COLUMN target TEXT")
        }
        return migrator
    }

    private func read<T>(_ what: String, _ body: (Database) throws -> T) throws(StateStoreError) -> T {
        do { return try database.read(body) } catch { throw StateStoreError(.read, "cannot read \(what) from \(path)", cause: error) }
    }

    private func write<T>(_ what: String, _ body: (Database) throws -> T) throws(StateStoreError) -> T {
        do { return try database.write(body) } catch { throw StateStoreError(.write, "cannot write \(what) to \(path)", cause: error) }
    }

    public func served(environment: String) throws(StateStoreError) -> [String: ServedModel] {
        try read("deployments") { db in
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM deployment WHERE environment = ?", arguments: [environment])
            var served: [String: ServedModel] = [:]
            for row in rows {
                let traffic: String? = row["traffic"]
                let model = ServedModel(
                    environment: row["environment"], model: row["model"], version: row["version"], source: row["source"],
                    traffic: try traffic.map { try Timestamp.decoder.decode([VersionShare].self, from: Data($0.utf8)) },
                    shadow: row["shadow"], recordID: row["record_id"],
                    since: Timestamp.date(row["since"]) ?? Date(timeIntervalSince1970: 0))
                served[model.model] = model
            }
            return served
        }
    }

    public func records(environment: String?, model: String?) throws(StateStoreError) -> [DeploymentRecord] {
        try read("deployment records") { db in
            var sql = "SELECT * FROM deployment_record"
            var conditions: [String] = []
            var arguments: StatementArguments = []
            if let environment { conditions.append("environment = ?"); arguments += [environment] }
            if let model { conditions.append("model = ?"); arguments += [model] }
            if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
            sql += " ORDER BY started_at, id"
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map(Self.record)
        }
    }

    private static func record(_ row: Row) throws -> DeploymentRecord {
        let gates: String = row["gates"]
        let finished: String? = row["finished_at"]
        return DeploymentRecord(
            id: row["id"], environment: row["environment"], model: row["model"], version: row["version"], source: row["source"],
            environmentCommit: row["environment_commit"], outcome: DeploymentOutcome(rawValue: row["outcome"]) ?? .interrupted,
            gates: try Timestamp.decoder.decode([GateResult].self, from: Data(gates.utf8)), reason: row["reason"], actor: row["actor"],
            startedAt: Timestamp.date(row["started_at"]) ?? Date(timeIntervalSince1970: 0), finishedAt: finished.flatMap(Timestamp.date),
            target: row["target"])
    }

    private static func save(_ record: DeploymentRecord, noted: Bool, _ db: Database, ignoringExisting: Bool = false) throws {
        let gates = String(decoding: try Timestamp.encoder.encode(record.gates), as: UTF8.self)
        try db.execute(sql: """
            INSERT \(ignoringExisting ? "OR IGNORE " : "")INTO deployment_record
                (id, environment, model, version, source, environment_commit, outcome, gates, reason, actor, started_at, finished_at, noted,
                target)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            \(ignoringExisting ? "" : """
            ON CONFLICT(id) DO UPDATE SET outcome = excluded.outcome, gates = excluded.gates, reason = excluded.reason,
                finished_at = excluded.finished_at, version = excluded.version, source = excluded.source
            """)
            """, arguments: [
                record.id, record.environment, record.model, record.version, record.source, record.environmentCommit,
                record.outcome.rawValue, gates, record.reason, record.actor, Timestamp.string(record.startedAt),
                record.finishedAt.map(Timestamp.string), noted, record.target,
            ])
    }

    public func begin(_ record: DeploymentRecord) throws(StateStoreError) {
        try write("a deployment record") { db in try Self.save(record, noted: false, db) }
    }

    public func finish(_ record: DeploymentRecord, served: ServedModel?, removed: String?) throws(StateStoreError) {
        try write("a deployment record") { db in
            try Self.save(record, noted: false, db)
            if let served {
                let traffic = try served.traffic.map { String(decoding: try Timestamp.encoder.encode($0), as: UTF8.self) }
                try db.execute(sql: """
                    INSERT OR REPLACE INTO deployment (environment, model, version, source, traffic, shadow, record_id, since)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [served.environment, served.model, served.version, served.source, traffic, served.shadow,
                                     served.recordID, Timestamp.string(served.since)])
            }
            if let removed {
                try db.execute(sql: "DELETE FROM deployment WHERE environment = ? AND model = ?", arguments: [record.environment, removed])
            }
        }
    }

    public func unnoted() throws(StateStoreError) -> [DeploymentRecord] {
        try read("deployment records") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM deployment_record WHERE noted = 0 AND outcome != ? ORDER BY started_at, id",
                             arguments: [DeploymentOutcome.inProgress.rawValue]).map(Self.record)
        }
    }

    public func markNoted(_ ids: [String]) throws(StateStoreError) {
        guard !ids.isEmpty else { return }
        try write("deployment records") { db in
            for id in ids { try db.execute(sql: "UPDATE deployment_record SET noted = 1 WHERE id = ?", arguments: [id]) }
        }
    }

    public func importRecords(_ records: [DeploymentRecord]) throws(StateStoreError) {
        guard !records.isEmpty else { return }
        try write("deployment records") { db in
            for record in records { try Self.save(record, noted: true, db, ignoringExisting: true) }
        }
    }

    public func revision() throws(StateStoreError) -> String {
        try read("the records' revision") { db in
            let row = try Row.fetchOne(
                db, sql: "SELECT count(*) AS n, max(started_at) AS s, max(finished_at) AS f FROM deployment_record")
            return "\(row?["n"] as Int? ?? 0) \(row?["s"] as String? ?? "") \(row?["f"] as String? ?? "")"
        }
    }

    public func syncedCommit(environment: String) throws(StateStoreError) -> String? {
        try read("the synced commit") { db in
            try String.fetchOne(db, sql: "SELECT synced_commit FROM environment_sync WHERE environment = ?", arguments: [environment])
        }
    }

    public func setSyncedCommit(_ commit: String?, environment: String) throws(StateStoreError) {
        try write("the synced commit") { db in
            try db.execute(sql: "INSERT OR REPLACE INTO environment_sync (environment, synced_commit) VALUES (?, "
                + "?)", arguments: [environment, commit])
        }
    }

    /// Records a build (by reconcile or `stagecraft build`); a digest already recorded is left alone.
    public func recordBuild(_ info: BuildInfo) throws(StateStoreError) {
        let metrics = String(decoding: (try? Timestamp.encoder.encode(info.metrics)) ?? Data("{}".utf8), as: UTF8.self)
        try write("a build") { db in
            try db.execute(sql: "INSERT OR IGNORE INTO build (digest, model, source, created_at, metrics) VALUES (?, ?, ?, ?, ?)",
                           arguments: [info.digest, info.model, info.source, Timestamp.string(info.createdAt), metrics])
        }
    }
}
