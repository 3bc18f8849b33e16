import Foundation
import LoopbackHTTP
#if canImport(Glibc)
import Glibc
#endif

/// Starts `stagecraft serve` for an environment in the background, in a session of its own (so it outlives the
/// command that started it, killed or not), with its pid and log under `.stagecraft/run/`.
enum ServerLauncher {
    /// The `stagecraft` executable: `STAGECRAFT_EXECUTABLE` when set (tests that run commands in-process), else this process's.
    static var executable: String {
        ProcessInfo.processInfo.environment["STAGECRAFT_EXECUTABLE"]
            ?? URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
    }

    /// Runs `stagecraft <arguments>` detached and returns once it listens on `host:port` and has written its pid.
    @discardableResult
    static func start(_ arguments: [String], files: RunFiles, host: String, port: Int, timeout: Double = 15) throws -> Int32 {
        if let pid = files.runningPID() {
            throw CommandFailure(.failure, "environment '\(files.environment)' is already served (pid \(pid)); stop it first: "
                + "stagecraft stop --env \(files.environment)")
        }
        // Something else already listening there would make the server fail to bind: say so now, not after the timeout.
        if HTTPConnection.isListening(host: host, port: port) {
            throw CommandFailure(.failure, "port \(port) on \(host) is in use by another process, not a server of environment "
                + "'\(files.environment)'; free it or give '\(files.environment)' another port in environments/\(files.environment).yaml")
        }
        let log = try files.openLog()
        let logStart = (try? log.seekToEnd()) ?? 0
        defer { try? log.close() }  // the child has its own copy; a long `reconcile --watch` must not collect them
        let process = Process()
        // `setsid --wait`: the server runs in a session of its own, and this child exits with the server's status, so a
        // server that cannot start (its port taken, its environment file invalid) is seen at once.
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setsid")
        process.arguments = ["--wait", executable] + arguments
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        process.environment = ProcessInfo.processInfo.environment.merging(["STAGECRAFT_PID_FILE": files.pidFile.path]) { $1 }
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let pid = files.runningPID(), HTTPConnection.isListening(host: host, port: port) { return pid }
            if !process.isRunning && files.runningPID() == nil {
                // What this start wrote to the log: the server's own error.
                let log = (try? Data(contentsOf: files.logFile)) ?? Data()
                let written = log.count > logStart ? log.suffix(from: Int(logStart)) : Data()
                let tail = String(decoding: written, as: UTF8.self).split(separator: "\n").suffix(5).joined(separator: "\n")
                throw CommandFailure(.failure, "the server for '\(files.environment)' exited at start (status "
                    + "\(process.terminationStatus)); log: \(files.logFile.path)\n\(tail)")
            }
            usleep(20_000)
        }
        throw CommandFailure(.failure, "the server for '\(files.environment)' did not listen on \(host):\(port) within \(Int(timeout)) "
            + "s; log: \(files.logFile.path)")
    }
}
