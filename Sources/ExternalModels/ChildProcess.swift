public import Foundation
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A program started in its own process group, its output appended to a log file, that dies with this process:
/// it is started through `setpriv --pdeathsig KILL` from a thread that lives as long as the process, so that even a
/// SIGKILLed Stagecraft leaves no model server or trainer behind. ``stop(grace:)`` ends the whole group.
public final class ChildProcess: Sendable {
    /// The process id, which is also its process group's id.
    public let pid: pid_t
    /// Where its standard output and error go.
    public let log: URL

    private init(pid: pid_t, log: URL) {
        self.pid = pid
        self.log = log
    }

    /// Starts `command` in `directory` with `environment` (added to this process's), output appended to `log`.
    /// - Throws: ``ExternalModelError`` `.start` when the program cannot be started.
    public static func start(_ command: [String], in directory: URL, environment: [String: String], log: URL) throws -> ChildProcess {
        // The spawning thread is the child's parent for the death signal: NIO's thread pool keeps its threads for
        // the life of the process, unlike the cooperative pool or Dispatch's.
        let pool = NIOThreadPool.singleton
        let future = pool.runIfActive(eventLoop: MultiThreadedEventLoopGroup.singleton.any()) {
            try spawn(command, in: directory, environment: environment, log: log)
        }
        return try future.wait()
    }

    /// As ``start(_:in:environment:log:)``, from async code.
    public static func start(_ command: [String], in directory: URL, environment: [String: String], log: URL) async throws
        -> ChildProcess
    {
        try await NIOThreadPool.singleton.runIfActive {
            try spawn(command, in: directory, environment: environment, log: log)
        }
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later), looked up at run time: Swift's Glibc module
    /// does not declare it.
    private static let closeFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    private static func spawn(_ command: [String], in directory: URL, environment: [String: String], log: URL) throws -> ChildProcess {
        guard let program = command.first else { throw ExternalModelError(.start, "no program to run") }
        let fd = open(log.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ExternalModelError(.start, "cannot write the log \(log.path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let devNull = "/dev/null"
        posix_spawn_file_actions_addopen(&actions, 0, devNull, O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fd, 1)
        posix_spawn_file_actions_adddup2(&actions, fd, 2)
        // Nothing else of this process: another thread's pipe, open without close-on-exec at this moment, would
        // otherwise stay open in a server that runs for hours, and whoever reads that pipe would wait for it.
        Self.closeFrom?(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigfillset(&defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        // `env -C` enters the folder (glibc's spawn-time chdir is not visible from Swift).
        let argv = ["/usr/bin/setpriv", "--pdeathsig", "KILL", "--", "/usr/bin/env", "-C", directory.path, program] + command.dropFirst()
        var merged = ProcessInfo.processInfo.environment
        merged.merge(environment) { $1 }
        let envp = merged.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let status = withCStrings(argv) { argvPointer in
            withCStrings(envp) { envPointer in
                posix_spawn(&pid, argv[0], &actions, &attributes, argvPointer, envPointer)
            }
        }
        guard status == 0 else {
            throw ExternalModelError(.start, "cannot start \(program): \(String(cString: strerror(status)))")
        }
        return ChildProcess(pid: pid, log: log)
    }

    /// The exit status once it has ended (a signal is reported as 128 + its number); nil while it runs. Never blocks.
    public func exitStatus() -> Int32? {
        exited.withLock { state in
            if let code = state { return code }
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            guard result == pid else {
                if result < 0 && errno == ECHILD { state = -1 }  // reaped elsewhere
                return state
            }
            let signal = status & 0x7f
            state = signal == 0 ? (status >> 8) & 0xff : 128 + signal
            return state
        }
    }

    private let exited = Mutex<Int32?>(nil)
    private let stopping = Mutex(false)

    /// True for the first stop only: once the group is ended, its id may be another process's.
    private func claimStop() -> Bool {
        stopping.withLock { stopping in
            defer { stopping = true }
            return !stopping
        }
    }

    /// Whether it still runs.
    public var isRunning: Bool { exitStatus() == nil }

    /// Ends the whole process group: SIGTERM, then SIGKILL after `grace` seconds if any of it is left.
    public func stop(grace: Double = 5) async {
        guard claimStop() else { return }
        guard isRunning else {
            kill(-pid, SIGKILL)  // what the leader started and left behind
            let gone = ContinuousClock.now + .seconds(2)
            while kill(-pid, 0) == 0, ContinuousClock.now < gone { try? await Task.sleep(for: .milliseconds(5)) }
            return
        }
        kill(-pid, SIGTERM)
        let deadline = ContinuousClock.now + .milliseconds(Int(grace * 1000))
        while isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        kill(-pid, SIGKILL)
        while isRunning { try? await Task.sleep(for: .milliseconds(5)) }
        // The rest of the group is gone once the init process has reaped it (a few milliseconds).
        let gone = ContinuousClock.now + .seconds(2)
        while kill(-pid, 0) == 0, ContinuousClock.now < gone { try? await Task.sleep(for: .milliseconds(5)) }
    }

    /// As ``stop(grace:)``, for synchronous callers (a build).
    public func stopNow(grace: Double = 5) {
        guard claimStop() else { return }
        if isRunning {
            kill(-pid, SIGTERM)
            let deadline = Date().addingTimeInterval(grace)
            while isRunning, Date() < deadline { usleep(20_000) }
        }
        kill(-pid, SIGKILL)
        while isRunning { usleep(5_000) }
        let gone = Date().addingTimeInterval(2)
        while kill(-pid, 0) == 0, Date() < gone { usleep(5_000) }
    }

    /// The last `lines` lines of the log.
    public func tail(_ lines: Int = 20) -> String { Self.tail(of: log, lines: lines) }

    /// The last `lines` lines of a log file (its last 64 KiB at most are read).
    public static func tail(of log: URL, lines: Int = 20) -> String {
        guard let handle = try? FileHandle(forReadingFrom: log) else { return "" }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: size > 65_536 ? size - 65_536 : 0)
        let text = String(decoding: (try? handle.readToEnd()) ?? Data(), as: UTF8.self)
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines + 1).joined(separator: "\n")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Runs `body` with a NULL-terminated C array of `strings`.
private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { pointers.forEach { free($0) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
