public import AsyncHTTPClient
public import Foundation
public import Learning
import Manifests
public import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One version's own model server: a supervised process on private loopback ports, which predictions are forwarded
/// to. Started with ``start(_:)`` once ready; restarted with backoff when it dies (meanwhile ``predict(_:classes:task:)``
/// throws `.unavailable` with the seconds to wait); ``stop()`` ends its process group.
public final class ModelServer: Sendable {
    /// What it serves and how to start it.
    public struct Configuration: Sendable {
        public var model: String
        public var version: String
        public var server: ExternalEstimator
        /// The version's model folder (what `{model}` names).
        public var folder: URL
        /// Where its output is appended.
        public var log: URL
        /// How long a start may take before it counts as failed.
        public var readyTimeout: Double

        public init(model: String, version: String, server: ExternalEstimator, folder: URL, log: URL, readyTimeout: Double = 120) {
            self.model = model
            self.version = version
            self.server = server
            self.folder = folder
            self.log = log
            self.readyTimeout = readyTimeout
        }

        /// The command and environment with `{model}`, `{port}`, `{grpcPort}` and `{name}` filled in, and the two
        /// free loopback ports picked for them.
        func launchPlan() throws -> (command: [String], environment: [String: String], port: Int, grpcPort: Int) {
            let port = try ModelServer.freePort()
            let grpcPort = try ModelServer.freePort()
            let values = ["model": folder.path, "port": String(port), "grpcPort": String(grpcPort), "name": model]
            return (
                server.command.map { TrainerCommand.substitute($0, values) },
                server.environment.mapValues { TrainerCommand.substitute($0, values) }, port, grpcPort
            )
        }
    }

    /// The not-ready error of a server that exited while it started.
    static func exited(_ configuration: Configuration, _ command: [String], _ process: ChildProcess, _ status: Int32)
        -> ExternalModelError
    {
        ExternalModelError(
            .notReady,
            "the server of \(configuration.model) (\(command.joined(separator: " "))) exited with status \(status) before it was "
                + "ready; its log (\(configuration.log.path)) ends:\n\(process.tail())")
    }

    /// The not-ready error of a server that did not answer in time.
    static func late(_ configuration: Configuration, _ process: ChildProcess) -> ExternalModelError {
        ExternalModelError(
            .notReady,
            "the server of \(configuration.model) did not answer \(configuration.server.ready) within "
                + "\(Int(configuration.readyTimeout)) s; its log (\(configuration.log.path)) ends:\n\(process.tail())")
    }

    private enum State {
        case starting(ChildProcess?)
        case ready(ChildProcess, port: Int, grpcPort: Int, infer: URL)
        /// Dead; started again after `until`.
        case down(until: ContinuousClock.Instant)
        case stopped
    }

    public let configuration: Configuration
    private let client: HTTPClient
    private let state = Mutex<State>(.starting(nil))
    private let counters = Mutex<(restarts: Int, refused: Int)>((0, 0))
    private let supervisor = Mutex<_Concurrency.Task<Void, Never>?>(nil)

    private init(configuration: Configuration, client: HTTPClient) {
        self.configuration = configuration
        self.client = client
    }

    /// The client every model server forwards with: its connections are kept alive, per port.
    public static let sharedClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// Starts the server and waits until its ready path answers 200; then supervises it.
    /// - Throws: ``ExternalModelError`` `.start` or `.notReady` with the tail of its log.
    public static func start(_ configuration: Configuration, client: HTTPClient = sharedClient) async throws -> ModelServer {
        let server = ModelServer(configuration: configuration, client: client)
        do {
            try await server.launch()
        } catch {
            await server.stop()
            throw error
        }
        let task = _Concurrency.Task { await server.supervise() }
        server.supervisor.withLock { $0 = task }
        return server
    }

    /// Its infer URL while it is ready (parsed once per start, not per request).
    private var inferURL: URL? {
        state.withLock { if case .ready(_, _, _, let url) = $0 { return url } else { return nil } }
    }

    /// The HTTP port it listens on while it is ready.
    public var port: Int? {
        state.withLock { if case .ready(_, let port, _, _) = $0 { return port } else { return nil } }
    }

    /// Its process id while it runs.
    public var pid: Int32? {
        state.withLock { state in
            switch state {
            case .ready(let process, _, _, _): return process.pid
            case .starting(let process): return process?.pid
            default: return nil
            }
        }
    }

    /// How many times it has been started again after dying.
    public var restarts: Int { counters.withLock { $0.restarts } }

    /// Requests answered 503 while it was down.
    public var refused: Int { counters.withLock { $0.refused } }

    /// Starts the process and waits for its ready path.
    private func launch() async throws {
        let (command, environment, port, grpcPort) = try configuration.launchPlan()
        let process = try await ChildProcess.start(command, in: configuration.folder, environment: environment, log: configuration.log)
        let stopped = state.withLock { state -> Bool in
            if case .stopped = state { return true }
            state = .starting(process)
            return false
        }
        if stopped {
            await process.stop(grace: 1)
            throw ExternalModelError(.notReady, "the server of \(configuration.model) was stopped while it started")
        }
        let deadline = ContinuousClock.now + .milliseconds(Int(configuration.readyTimeout * 1000))
        while true {
            if let status = process.exitStatus() { throw Self.exited(configuration, command, process, status) }
            if await isReady(port: port) { break }
            if ContinuousClock.now > deadline {
                await process.stop(grace: 2)
                throw Self.late(configuration, process)
            }
            try? await _Concurrency.Task.sleep(for: .milliseconds(50))
        }
        let stopped2 = state.withLock { state -> Bool in
            if case .stopped = state { return true }
            let infer = URL(string: "http://127.0.0.1:\(port)/v2/models/\(configuration.model)/infer")!  // model names are [a-z0-9-]
            state = .ready(process, port: port, grpcPort: grpcPort, infer: infer)
            return false
        }
        if stopped2 { await process.stop(grace: 1) }
    }

    private func isReady(port: Int) async -> Bool {
        let request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(configuration.server.ready)")
        guard let response = try? await client.execute(request, timeout: .seconds(2)) else { return false }
        _ = try? await response.body.collect(upTo: 1 << 16)
        return response.status == .ok
    }

    /// Watches the process; when it dies, starts it again after a backoff that doubles (0.2 s to 10 s) and resets
    /// once it has run for a minute.
    private func supervise() async {
        var backoff = 0.2
        var healthySince = ContinuousClock.now
        while !_Concurrency.Task.isCancelled {
            try? await _Concurrency.Task.sleep(for: .milliseconds(50))
            let process: ChildProcess? = state.withLock { state in
                if case .ready(let process, _, _, _) = state { return process }
                return nil
            }
            guard let process else { return }
            if ContinuousClock.now - healthySince > .seconds(60) { backoff = 0.2 }
            guard process.exitStatus() != nil else { continue }
            await process.stop(grace: 0)  // whatever the leader left in its group
            while !_Concurrency.Task.isCancelled {
                let keepGoing = state.withLock { state -> Bool in
                    if case .stopped = state { return false }
                    state = .down(until: ContinuousClock.now + .milliseconds(Int(backoff * 1000)))
                    return true
                }
                guard keepGoing else { return }
                try? await _Concurrency.Task.sleep(for: .milliseconds(Int(backoff * 1000)))
                backoff = min(backoff * 2, 10)
                counters.withLock { $0.restarts += 1 }
                do {
                    try await launch()
                    healthySince = ContinuousClock.now
                    break
                } catch {
                    if let process = state.withLock({ state -> ChildProcess? in
                        if case .starting(let process) = state { return process }
                        return nil
                    }) {
                        await process.stop(grace: 0)
                    }
                }
            }
        }
    }

    /// The predictions of its server for `rows` (the model's feature columns).
    /// - Throws: ``ExternalModelError``: `.unavailable` (with `retryAfter`) while it is down or restarting,
    ///   `.badAnswer` when it answers something else than predictions (its status and message are kept).
    public func predict(_ rows: Dataset, classes: [String]?, task: LearningTask, id: String? = nil) async throws -> Predictions {
        try await predict(rows, classes: classes, task: task, id: id, on: client.eventLoopGroup.any()).get()
    }

    /// As above, completed on `eventLoop` (an event-loop handler's own). The request goes out on a kept-alive
    /// connection of the shared pool, whichever loop it is on: a connection bound to the caller's loop
    /// (`.delegateAndChannel`) is closed by async-http-client as soon as that loop has no other request waiting, which
    /// made every forward open a new connection.
    public func predict(_ rows: Dataset, classes: [String]?, task: LearningTask, id: String? = nil, on eventLoop: any EventLoop)
        -> EventLoopFuture<Predictions>
    {
        guard let url = inferURL else { return eventLoop.makeFailedFuture(unavailable()) }
        let request: HTTPClient.Request
        do {
            request = try HTTPClient.Request(
                url: url, method: .POST, headers: ["content-type": "application/json"],
                body: .bytes(ServerProtocol.request(rows, task: task, id: id)))
        } catch {
            return eventLoop.makeFailedFuture(ExternalModelError(.badAnswer, "cannot address the server of \(configuration.model)"))
        }
        let count = rows.rowCount
        return client.execute(request: request, eventLoop: .delegate(on: eventLoop), deadline: .now() + .seconds(60))
            .flatMapError { [self] _ in
                // Refused or reset: the process died under this request. Its supervisor starts it again.
                eventLoop.makeFailedFuture(unavailable())
            }
            .flatMapThrowing { [configuration] response in
                let body = response.body ?? ByteBuffer()
                guard response.status == .ok else {
                    throw ExternalModelError(
                        .badAnswer,
                        "the model server of \(configuration.model) answered \(response.status.code): \(String(buffer: body).prefix(400))")
                }
                return try body.withUnsafeReadableBytes { try ServerProtocol.predictions($0, rows: count, classes: classes) }
            }
    }

    private func unavailable() -> ExternalModelError {
        counters.withLock { $0.refused += 1 }
        let wait = state.withLock { state -> Double in
            if case .down(let until) = state {
                let left = until - ContinuousClock.now
                return Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18
            }
            return 0
        }
        return ExternalModelError(
            .unavailable, "the model server of \(configuration.model) is restarting; retry shortly",
            retryAfter: max(1, Int(wait.rounded(.up)) + 1))
    }

    /// Stops supervising and ends its process group (SIGTERM, then SIGKILL after 5 s).
    public func stop() async {
        supervisor.withLock { $0?.cancel() }
        let process = state.withLock { state -> ChildProcess? in
            defer { state = .stopped }
            switch state {
            case .ready(let process, _, _, _): return process
            case .starting(let process): return process
            default: return nil
            }
        }
        await process?.stop()
    }


    /// A loopback port nothing listens on now (the kernel's pick).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ExternalModelError(.start, "cannot open a socket to find a free port") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress -> Bool in
                bind(fd, socketAddress, length) == 0 && getsockname(fd, socketAddress, &length) == 0
            }
        }
        guard bound else { throw ExternalModelError(.start, "cannot find a free loopback port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
