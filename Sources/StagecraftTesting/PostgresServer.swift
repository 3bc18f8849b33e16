import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real PostgreSQL server for tests: Debian's `postgresql`, a new cluster in a temporary folder, on a free port of
/// 127.0.0.1, run as a non-root user (`postgres` when the tests run as root). Stopped (and its folder removed) on
/// release.
public final class PostgresServer: @unchecked Sendable {
    public let port: Int
    /// The database user (trust authentication on 127.0.0.1) and a database made for the test.
    public let user = "stagecraft"
    public let database = "stagecraft"
    private let dataDirectory: String
    private let bin: String
    private let asUser: [String]
    /// Where it listens: 127.0.0.1, and another address when given (for test hosts in network namespaces).
    private let listen: String

    /// The folder of Debian's PostgreSQL programs, when one is installed.
    static var binFolder: String? {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap { Int($0) }.sorted()
        guard let version = versions.last else { return nil }
        let bin = "\(root)/\(version)/bin"
        return FileManager.default.isExecutableFile(atPath: bin + "/pg_ctl") ? bin : nil
    }

    /// True when this machine can run the test server.
    public static var available: Bool { binFolder != nil && (geteuid() != 0 || getpwnam("postgres") != nil) }

    /// `postgres://stagecraft@127.0.0.1:PORT/stagecraft`.
    public var url: String { "postgres://\(user)@127.0.0.1:\(port)/\(database)" }

    /// - Parameters:
    ///   - address: another address of this host to listen on besides 127.0.0.1 (a bridge to test hosts).
    ///   - network: the clients' network on that address (`10.77.0.0/24`), trusted as 127.0.0.1 is.
    public init(alsoListeningOn address: String? = nil, trusting network: String? = nil) throws {
        listen = ["127.0.0.1", address].compactMap { $0 }.joined(separator: ",")
        guard let bin = Self.binFolder else {
            throw ProcessFailure(
                command: "pg_ctl", output: ProcessOutput(status: 127, stdout: "", stderr: "PostgreSQL is not installed (scripts/setup)"))
        }
        self.bin = bin
        asUser = geteuid() == 0 ? ["runuser", "-u", "postgres", "--"] : []
        dataDirectory = NSTemporaryDirectory() + "stagecraft-pg-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        if geteuid() == 0 {
            let owned = try ProcessRunner.run("chown", ["postgres:postgres", dataDirectory])
            guard owned.status == 0 else { throw ProcessFailure(command: "chown", output: owned) }
        }
        port = try Loopback.freePort()
        try run("initdb", ["-D", dataDirectory, "-U", user, "--auth=trust", "-E", "UTF8", "--no-sync"])
        if let network {
            let hba = dataDirectory + "/pg_hba.conf"
            let text = try String(contentsOfFile: hba, encoding: .utf8)
            try (text + "host all all \(network) trust\n").write(toFile: hba, atomically: false, encoding: .utf8)
        }
        // The server outlives pg_ctl: it gets no pipe of ours, and pg_ctl is waited for with waitpid (Foundation's
        // Process did not reap it here: its exit went unnoticed once the server it started lived on).
        try start()
        try run("createdb", ["-h", "127.0.0.1", "-p", String(port), "-U", user, database])
    }

    /// Restarts the server: every connection is cut, the data stays.
    public func restart() throws {
        try stop()
        try start()
    }

    /// Starts the server (again, after ``stop()``): the data stays.
    public func start() throws {
        let status = try Self.spawnAndWait(
            asUser + [
                "\(bin)/pg_ctl", "-D", dataDirectory, "-l", dataDirectory + "/server.log", "-w", "-o",
                "-p \(port) -k \(dataDirectory) -c listen_addresses=\(listen) -c fsync=off", "start",
            ])
        guard status == 0 else {
            let log = (try? String(contentsOfFile: dataDirectory + "/server.log", encoding: .utf8)) ?? ""
            throw ProcessFailure(command: "pg_ctl start", output: ProcessOutput(status: status, stdout: "", stderr: log))
        }
    }

    /// Stops the server (`pg_ctl stop -m fast`): every connection is cut.
    public func stop() throws {
        let status = try Self.spawnAndWait(asUser + ["\(bin)/pg_ctl", "-D", dataDirectory, "-w", "-m", "fast", "stop"])
        guard status == 0 else {
            throw ProcessFailure(command: "pg_ctl stop", output: ProcessOutput(status: status, stdout: "", stderr: ""))
        }
    }

    /// Runs `command` (looked up in PATH) with /dev/null for its standard files and returns its exit status.
    static func spawnAndWait(_ command: [String]) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for descriptor in Int32(0)...2 {
            posix_spawn_file_actions_addopen(&actions, descriptor, "/dev/null", descriptor == 0 ? O_RDONLY : O_WRONLY, 0)
        }
        let arguments = (["/usr/bin/env"] + command).map { strdup($0) } + [nil]
        defer { arguments.forEach { free($0) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, "/usr/bin/env", &actions, nil, arguments, environ)
        guard spawned == 0 else {
            throw ProcessFailure(
                command: command.joined(separator: " "), output: ProcessOutput(status: spawned, stdout: "", stderr: "posix_spawn failed"))
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    @discardableResult
    private func run(_ program: String, _ arguments: [String]) throws -> ProcessOutput {
        let command = asUser + ["\(bin)/\(program)"] + arguments
        let output = try ProcessRunner.run(command[0], Array(command.dropFirst()), in: NSTemporaryDirectory())
        guard output.status == 0 else { throw ProcessFailure(command: program, output: output) }
        return output
    }

    /// Runs `sql` with `psql` (an independent client) and returns its unaligned, tuples-only output.
    public func psql(_ sql: String) throws -> String {
        try run("psql", ["-h", "127.0.0.1", "-p", String(port), "-U", user, "-d", database, "-At", "-c", sql])
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    deinit {
        _ = try? Self.spawnAndWait(asUser + ["\(bin)/pg_ctl", "-D", dataDirectory, "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }
}

extension ScratchRepository {
    /// Points the example's settings at `postgres` for the state store (`stateStore: postgres://…`), by a commit.
    public func keepState(in postgres: PostgresServer) throws {
        let settings = try directory.read("stagecraft.yaml")
            .replacingOccurrences(of: "stateStore: .stagecraft/state.db", with: "stateStore: \(postgres.url)?sslmode=disable")
        guard settings.contains(postgres.url) else {
            let output = ProcessOutput(status: 1, stdout: "", stderr: "stagecraft.yaml has no stateStore line to replace")
            throw ProcessFailure(command: "keepState", output: output)
        }
        try commit(["stagecraft.yaml": settings], message: "state in PostgreSQL")
    }
}
