public import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
public import Registry

/// The state store in PostgreSQL (`stateStore: postgres://user@host:5432/db` in `stagecraft.yaml`), shared by
/// reconcilers on several hosts: the same tables and answers as the SQLite store, over one connection of
/// postgres-nio. Calls block the calling thread until the server answers (the reconcile engine calls the store from
/// threads of its own, never from an async executor).
public final class PostgresStateStore: StateStore, LeaseStore, @unchecked Sendable {
    /// Where it is, without the password: for messages.
    public let location: String
    /// The connection, replaced when it closed (a restart, a network cut); guarded by `lock`.
    private var connection: PostgresConnection
    private let configuration: PostgresConnection.Configuration
    private let logger: Logger
    private let lock = NSLock()
    /// The longest a query may take before the connection is taken as lost.
    static let queryTimeout: TimeAmount = .seconds(30)
    /// Waits before each new attempt to connect when the connection was lost: about 3 s in all.
    static let reconnectBackoff: [Double] = [0, 0.25, 0.5, 1, 1.5]

    /// Connects to `url` (`postgres://user[:password]@host[:port]/database[?sslmode=disable|prefer|require]`) and
    /// brings the schema up to date. The password comes from the URL, else `PGPASSWORD`, else `~/.pgpass`.
    /// - Throws: ``StateStoreError`` (`unavailable`) naming the server, never the password.
    public init(url: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(StateStoreError) {
        let target: PostgresURL
        do { target = try PostgresURL(url, environment: environment) } catch {
            throw StateStoreError(.unavailable, "the state store URL is not valid", cause: error)
        }
        location = target.redacted
        var logger = Logger(label: "stagecraft.state.postgres")
        logger.logLevel = .critical
        self.logger = logger
        var configuration = PostgresConnection.Configuration(
            host: target.host, port: target.port, username: target.user, password: target.password, database: target.database,
            tls: .disable)
        if target.tls != .disable {
            do {
                let context = try NIOSSLContext(configuration: .makeClientConfiguration())
                configuration.tls = target.tls == .require ? .require(context) : .prefer(context)
            } catch {
                throw StateStoreError(.unavailable, "cannot set up TLS for \(location)", cause: error)
            }
        }
        configuration.options.connectTimeout = .seconds(10)
        self.configuration = configuration
        do {
            connection = try PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: 1, logger: logger
            ).wait()
        } catch {
            throw StateStoreError(.unavailable, "cannot connect to the state store \(location)", cause: Self.redact(error, target))
        }
        try migrate()
    }

    /// The connection, connected again (with backoff) when it was closed. Call with `lock` held.
    private func live() throws(StateStoreError) -> PostgresConnection {
        if !connection.isClosed { return connection }
        var lastError: (any Error)?
        for wait in Self.reconnectBackoff {
            if wait > 0 { Thread.sleep(forTimeInterval: wait * Double.random(in: 0.5...1)) }
            do {
                connection = try PostgresConnection.connect(
                    on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: 1, logger: logger
                ).wait()
                return connection
            } catch {
                lastError = error
            }
        }
        throw StateStoreError(
            .unavailable,
            "lost the connection to the state store \(location) and could not connect again "
                + "(\(Self.reconnectBackoff.count) attempts)", cause: lastError.map { Redacted(description: String(describing: $0)) })
    }

    /// The query's answer, or an error once ``queryTimeout`` passed (the connection is then closed, to be made again).
    private func answer(_ query: PostgresQuery, on connection: PostgresConnection) throws -> PostgresQueryResult {
        let promise = connection.eventLoop.makePromise(of: PostgresQueryResult.self)
        let timer = connection.eventLoop.scheduleTask(in: Self.queryTimeout) {
            promise.fail(Redacted(description: "no answer within \(Self.queryTimeout.nanoseconds / 1_000_000_000) s"))
            connection.close().whenComplete { _ in }
        }
        connection.query(query, logger: logger).cascade(to: promise)
        defer { timer.cancel() }
        return try promise.futureResult.wait()
    }

    deinit { _ = try? connection.close().wait() }

    /// An error's text without the password, should the library have put it there.
    struct Redacted: Error, CustomStringConvertible {
        let description: String
    }

    private static func redact(_ error: any Error, _ target: PostgresURL) -> Redacted {
        let text = String(describing: error)
        guard let password = target.password, !password.isEmpty else { return Redacted(description: text) }
        return Redacted(description: text.replacingOccurrences(of: password, with: "***"))
    }

    // MARK: Queries

    private func run(_ what: String, write: Bool = false, _ query: PostgresQuery) throws(StateStoreError) -> [PostgresRow] {
        lock.lock()
        defer { lock.unlock() }
        let connection = try live()
        do {
            return try answer(query, on: connection).rows
        } catch {
            let verb = write ? "write \(what) to" : "read \(what) from"
            throw StateStoreError(write ? .write : .read, "cannot \(verb) \(location)", cause: error)
        }
    }

    /// Runs `body`'s queries in one transaction.
    private func transaction(_ what: String, _ queries: [PostgresQuery]) throws(StateStoreError) {
        lock.lock()
        defer { lock.unlock() }
        let connection = try live()
        do {
            _ = try answer("BEGIN", on: connection)
            do {
                for query in queries { _ = try answer(query, on: connection) }
                _ = try answer("COMMIT", on: connection)
            } catch {
                _ = try? answer("ROLLBACK", on: connection)
                throw error
            }
        } catch {
            throw StateStoreError(.write, "cannot write \(what) to \(location)", cause: error)
        }
    }

    /// The schema, by version: each step runs once, in a transaction, recorded in `stagecraft_schema`.
    static let migrations: [[String]] = [
        [
            """
            CREATE TABLE deployment_record (
                id TEXT PRIMARY KEY, environment TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, source TEXT,
                environment_commit TEXT NOT NULL, outcome TEXT NOT NULL, gates TEXT NOT NULL, reason TEXT, actor TEXT NOT NULL,
                started_at TEXT NOT NULL, finished_at TEXT, noted BOOLEAN NOT NULL DEFAULT FALSE)
            """,
            "CREATE INDEX deployment_record_by_environment ON deployment_record (environment, model, started_at)",
            """
            CREATE TABLE deployment (
                environment TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, source TEXT, traffic TEXT, shadow TEXT,
                record_id TEXT NOT NULL, since TEXT NOT NULL, PRIMARY KEY (environment, model))
            """,
            "CREATE TABLE environment_sync (environment TEXT PRIMARY KEY, synced_commit TEXT)",
            """
            CREATE TABLE build (
                digest TEXT PRIMARY KEY, model TEXT NOT NULL, source TEXT NOT NULL, created_at TEXT NOT NULL, metrics TEXT NOT NULL)
            """,
        ],
        ["ALTER TABLE deployment_record ADD COLUMN target TEXT"],
        [
            """
            CREATE TABLE environment_lease (
                environment TEXT PRIMARY KEY, holder TEXT NOT NULL, host TEXT NOT NULL, pid BIGINT NOT NULL,
                epoch BIGINT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)
            """
        ],
    ]

    private func migrate() throws(StateStoreError) {
        _ = try run("the schema", write: true, "CREATE TABLE IF NOT EXISTS stagecraft_schema (version INTEGER PRIMARY KEY)")
        for (index, statements) in Self.migrations.enumerated() {
            let version = index + 1
            // Two stores opening a new database at once: the primary key lets only one record the step; the other's
            // transaction fails and it reads the schema as made.
            let done = try run("the schema", "SELECT version FROM stagecraft_schema WHERE version = \(version)")
            guard done.isEmpty else { continue }
            do {
                try transaction(
                    "the schema",
                    [PostgresQuery(unsafeSQL: "LOCK TABLE stagecraft_schema IN EXCLUSIVE MODE")]
                        + [PostgresQuery(unsafeSQL: "INSERT INTO stagecraft_schema (version) VALUES (\(version))")]
                        + statements.map { PostgresQuery(unsafeSQL: $0) })
            } catch {
                let made = try run("the schema", "SELECT version FROM stagecraft_schema WHERE version = \(version)")
                guard !made.isEmpty else { throw error }
            }
        }
    }

    // MARK: StateStore

    public func served(environment: String) throws(StateStoreError) -> [String: ServedModel] {
        let rows = try run(
            "deployments",
            """
            SELECT environment, model, version, source, traffic, shadow, record_id, since
            FROM deployment WHERE environment = \(environment)
            """)
        var served: [String: ServedModel] = [:]
        do {
            for row in rows {
                let (environment, model, version, source, traffic, shadow, record, since) = try row.decode(
                    (String, String, String, String?, String?, String?, String, String).self)
                served[model] = ServedModel(
                    environment: environment, model: model, version: version, source: source,
                    traffic: try traffic.map { try Timestamp.decoder.decode([VersionShare].self, from: Data($0.utf8)) },
                    shadow: shadow, recordID: record, since: Timestamp.date(since) ?? Date(timeIntervalSince1970: 0))
            }
        } catch {
            throw StateStoreError(.damaged, "cannot decode deployments from \(location)", cause: error)
        }
        return served
    }

    private static let recordColumns =
        "id, environment, model, version, source, environment_commit, outcome, gates, reason, actor, started_at, finished_at, target"

    private func records(_ query: PostgresQuery) throws(StateStoreError) -> [DeploymentRecord] {
        let rows = try run("deployment records", query)
        do {
            return try rows.map { row in
                let (id, environment, model, version, source, commit, outcome, gates, reason, actor, started, finished, target) =
                    try row.decode(
                        (String, String, String, String, String?, String, String, String, String?, String, String, String?, String?).self)
                return DeploymentRecord(
                    id: id, environment: environment, model: model, version: version, source: source, environmentCommit: commit,
                    outcome: DeploymentOutcome(rawValue: outcome) ?? .interrupted,
                    gates: try Timestamp.decoder.decode([GateResult].self, from: Data(gates.utf8)), reason: reason, actor: actor,
                    startedAt: Timestamp.date(started) ?? Date(timeIntervalSince1970: 0), finishedAt: finished.flatMap(Timestamp.date),
                    target: target)
            }
        } catch {
            throw StateStoreError(.damaged, "cannot decode deployment records from \(location)", cause: error)
        }
    }

    public func records(environment: String?, model: String?) throws(StateStoreError) -> [DeploymentRecord] {
        // NULL parameters match everything: one statement for the four combinations.
        try records(
            """
            SELECT \(unescaped: Self.recordColumns) FROM deployment_record
            WHERE (\(environment)::TEXT IS NULL OR environment = \(environment))
              AND (\(model)::TEXT IS NULL OR model = \(model))
            ORDER BY started_at, id
            """)
    }

    private static func save(_ record: DeploymentRecord, noted: Bool, ignoringExisting: Bool = false) -> PostgresQuery {
        let gates = String(decoding: (try? Timestamp.encoder.encode(record.gates)) ?? Data("[]".utf8), as: UTF8.self)
        let conflict =
            ignoringExisting
            ? "ON CONFLICT (id) DO NOTHING"
            : """
            ON CONFLICT (id) DO UPDATE SET outcome = excluded.outcome, gates = excluded.gates, reason = excluded.reason,
                finished_at = excluded.finished_at, version = excluded.version, source = excluded.source
            """
        return """
            INSERT INTO deployment_record (\(unescaped: recordColumns), noted)
            VALUES (\(record.id), \(record.environment), \(record.model), \(record.version), \(record.source),
                \(record.environmentCommit), \(record.outcome.rawValue), \(gates), \(record.reason), \(record.actor),
                \(Timestamp.string(record.startedAt)), \(record.finishedAt.map(Timestamp.string)), \(record.target), \(noted))
            \(unescaped: conflict)
            """
    }

    public func begin(_ record: DeploymentRecord) throws(StateStoreError) {
        try transaction("a deployment record", [Self.save(record, noted: false)])
    }

    public func finish(_ record: DeploymentRecord, served: ServedModel?, removed: String?) throws(StateStoreError) {
        var queries = [Self.save(record, noted: false)]
        if let served {
            let traffic = served.traffic.map { String(decoding: (try? Timestamp.encoder.encode($0)) ?? Data(), as: UTF8.self) }
            queries.append(
                """
                INSERT INTO deployment (environment, model, version, source, traffic, shadow, record_id, since)
                VALUES (\(served.environment), \(served.model), \(served.version), \(served.source), \(traffic), \(served.shadow),
                    \(served.recordID), \(Timestamp.string(served.since)))
                ON CONFLICT (environment, model) DO UPDATE SET version = excluded.version, source = excluded.source,
                    traffic = excluded.traffic, shadow = excluded.shadow, record_id = excluded.record_id, since = excluded.since
                """)
        }
        if let removed {
            queries.append("DELETE FROM deployment WHERE environment = \(record.environment) AND model = \(removed)")
        }
        try transaction("a deployment record", queries)
    }

    /// True when the store holds no deployment record (one row is read, not all of them).
    public func isEmpty() throws(StateStoreError) -> Bool {
        try run("deployment records", "SELECT 1 FROM deployment_record LIMIT 1").isEmpty
    }

    public func unnoted() throws(StateStoreError) -> [DeploymentRecord] {
        try records(
            """
            SELECT \(unescaped: Self.recordColumns) FROM deployment_record
            WHERE NOT noted AND outcome <> \(DeploymentOutcome.inProgress.rawValue) ORDER BY started_at, id
            """)
    }

    public func markNoted(_ ids: [String]) throws(StateStoreError) {
        guard !ids.isEmpty else { return }
        _ = try run("deployment records", write: true, "UPDATE deployment_record SET noted = TRUE WHERE id = ANY(\(ids))")
    }

    public func importRecords(_ records: [DeploymentRecord]) throws(StateStoreError) {
        guard !records.isEmpty else { return }
        try transaction("deployment records", records.map { Self.save($0, noted: true, ignoringExisting: true) })
    }

    public func revision() throws(StateStoreError) -> String {
        let rows = try run(
            "the records' revision",
            "SELECT count(*)::text, coalesce(max(started_at), ''), coalesce(max(finished_at), '') FROM deployment_record")
        do {
            guard let (count, started, finished) = try rows.first?.decode((String, String, String).self) else { return "0" }
            return "\(count) \(started) \(finished)"
        } catch {
            throw StateStoreError(.damaged, "cannot decode the records' revision from \(location)", cause: error)
        }
    }

    public func syncedCommit(environment: String) throws(StateStoreError) -> String? {
        let rows = try run("the synced commit", "SELECT synced_commit FROM environment_sync WHERE environment = \(environment)")
        do { return try rows.first?.decode(String?.self) ?? nil } catch {
            throw StateStoreError(.damaged, "cannot decode the synced commit from \(location)", cause: error)
        }
    }

    public func setSyncedCommit(_ commit: String?, environment: String) throws(StateStoreError) {
        _ = try run(
            "the synced commit", write: true,
            """
            INSERT INTO environment_sync (environment, synced_commit) VALUES (\(environment), \(commit))
            ON CONFLICT (environment) DO UPDATE SET synced_commit = excluded.synced_commit
            """)
    }

    public func recordBuild(_ info: BuildInfo) throws(StateStoreError) {
        let metrics = String(decoding: (try? Timestamp.encoder.encode(info.metrics)) ?? Data("{}".utf8), as: UTF8.self)
        _ = try run(
            "a build", write: true,
            """
            INSERT INTO build (digest, model, source, created_at, metrics)
            VALUES (\(info.digest), \(info.model), \(info.source), \(Timestamp.string(info.createdAt)), \(metrics))
            ON CONFLICT (digest) DO NOTHING
            """)
    }
}

/// A `postgres://` URL, with the password found where libpq looks for it.
struct PostgresURL: Sendable {
    enum TLS: Sendable { case disable, prefer, require }

    var host: String
    var port: Int
    var user: String
    var password: String?
    var database: String
    var tls: TLS

    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    init(_ text: String, environment: [String: String]) throws {
        guard let parts = URLComponents(string: text), ["postgres", "postgresql"].contains(parts.scheme ?? ""),
            let host = parts.host, !host.isEmpty
        else {
            throw Invalid(description: "expected postgres://user@host:5432/database")
        }
        self.host = host
        port = parts.port ?? 5432
        user = parts.user ?? environment["PGUSER"] ?? environment["USER"] ?? "postgres"
        database = String(parts.path.drop { $0 == "/" })
        guard !database.isEmpty else { throw Invalid(description: "the URL names no database (postgres://user@host:5432/database)") }
        switch parts.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "prefer" {
        case "disable": tls = .disable
        case "prefer", "allow": tls = .prefer
        case "require", "verify-ca", "verify-full": tls = .require
        case let other: throw Invalid(description: "sslmode '\(other)' is not one of disable, prefer, require")
        }
        password =
            parts.password ?? environment["PGPASSWORD"]
            ?? Self.passfile(
                environment: environment, host: host, port: port,
                database: database, user: user)
    }

    /// The password `~/.pgpass` (or `PGPASSFILE`) has for this server, database and user (`*` matches anything).
    static func passfile(environment: [String: String], host: String, port: Int, database: String, user: String) -> String? {
        let path = environment["PGPASSFILE"] ?? (environment["HOME"].map { $0 + "/.pgpass" } ?? "")
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            // host:port:database:user:password, with \: and \\ escaped.
            var fields: [String] = [""]
            var escaped = false
            for character in line {
                if escaped {
                    fields[fields.count - 1].append(character)
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else if character == ":" && fields.count < 5 {
                    fields.append("")
                } else {
                    fields[fields.count - 1].append(character)
                }
            }
            guard fields.count == 5 else { continue }
            let wanted = [host, String(port), database, user]
            if zip(fields.prefix(4), wanted).allSatisfy({ $0 == "*" || $0 == $1 }) { return fields[4] }
        }
        return nil
    }

    /// The URL without its password.
    var redacted: String { "postgres://\(user)@\(host):\(port)/\(database)" }
}

// MARK: LeaseStore

extension PostgresStateStore {
    /// Each call is one statement, timed by the server's clock (`now()`), so hosts whose clocks differ agree.
    public func acquireLease(environment: String, holder: String, host: String, pid: Int, seconds: Double) throws(StateStoreError)
        -> Lease?
    {
        let rows = try run(
            "the lease of \(environment)", write: true,
            """
            INSERT INTO environment_lease AS held (environment, holder, host, pid, epoch, expires_at)
            VALUES (\(environment), \(holder), \(host), \(pid), 1, now() + make_interval(secs => \(seconds)))
            ON CONFLICT (environment) DO UPDATE SET
                epoch = CASE WHEN held.holder = excluded.holder AND held.expires_at >= now() THEN held.epoch ELSE held.epoch + 1 END,
                holder = excluded.holder, host = excluded.host, pid = excluded.pid, expires_at = excluded.expires_at
            WHERE held.holder = excluded.holder OR held.expires_at < now()
            RETURNING holder, host, pid, epoch, expires_at
            """)
        return try rows.first.map { row throws(StateStoreError) in try lease(row, environment: environment) }
    }

    public func takeOverLease(_ stale: Lease, holder: String, host: String, pid: Int, seconds: Double) throws(StateStoreError)
        -> Lease?
    {
        let rows = try run(
            "the lease of \(stale.environment)", write: true,
            """
            UPDATE environment_lease
            SET holder = \(holder), host = \(host), pid = \(pid), epoch = epoch + 1,
                expires_at = now() + make_interval(secs => \(seconds))
            WHERE environment = \(stale.environment) AND holder = \(stale.holder) AND epoch = \(stale.epoch)
            RETURNING holder, host, pid, epoch, expires_at
            """)
        return try rows.first.map { row throws(StateStoreError) in try lease(row, environment: stale.environment) }
    }

    public func renewLease(_ lease: Lease, seconds: Double) throws(StateStoreError) -> Bool {
        let rows = try run(
            "the lease of \(lease.environment)", write: true,
            """
            UPDATE environment_lease SET expires_at = now() + make_interval(secs => \(seconds))
            WHERE environment = \(lease.environment) AND holder = \(lease.holder) AND epoch = \(lease.epoch)
            RETURNING epoch
            """)
        return !rows.isEmpty
    }

    public func isCurrent(_ lease: Lease) throws(StateStoreError) -> Bool {
        let rows = try run(
            "the lease of \(lease.environment)",
            """
            SELECT epoch FROM environment_lease
            WHERE environment = \(lease.environment) AND holder = \(lease.holder) AND epoch = \(lease.epoch)
            """)
        return !rows.isEmpty
    }

    public func releaseLease(_ lease: Lease) throws(StateStoreError) {
        _ = try run(
            "the lease of \(lease.environment)", write: true,
            """
            UPDATE environment_lease SET expires_at = now() - interval '1 second'
            WHERE environment = \(lease.environment) AND holder = \(lease.holder) AND epoch = \(lease.epoch)
            """)
    }

    public func lease(environment: String) throws(StateStoreError) -> Lease? {
        let rows = try run(
            "the lease of \(environment)",
            "SELECT holder, host, pid, epoch, expires_at FROM environment_lease WHERE environment = \(environment)")
        return try rows.first.map { row throws(StateStoreError) in try lease(row, environment: environment) }
    }

    private func lease(_ row: PostgresRow, environment: String) throws(StateStoreError) -> Lease {
        do {
            let (holder, host, pid, epoch, expires) = try row.decode((String, String, Int, Int, Date).self)
            return Lease(environment: environment, holder: holder, host: host, pid: pid, epoch: epoch, expiresAt: expires)
        } catch {
            throw StateStoreError(.damaged, "cannot decode the lease of \(environment) from \(location)", cause: error)
        }
    }
}
