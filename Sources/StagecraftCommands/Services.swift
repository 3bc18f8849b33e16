import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// A long-running loop of a command (`reconcile --watch`, `monitor --watch`, the queue worker) as a
/// swift-service-lifecycle service: each round runs on a thread of its own (its work blocks: git, files, processes),
/// then the loop waits. SIGTERM or SIGINT stops it between rounds, never in the middle of one.
struct LoopService: Service {
    /// One round; returns the seconds to wait before the next, or nil to stop. Blocking work in it runs through
    /// ``onThread(_:)``.
    let round: @Sendable () async -> Double?
    /// Ends a pause early (a webhook's delivery); nil waits out every pause.
    var wake: WakeSignal?

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            // Not cancelled by a shutdown: a round that started finishes.
            guard let pause = await round() else { return }
            guard pause > 0 else { continue }
            try? await cancelWhenGracefulShutdown { [wake] in
                if let wake { await wake.sleep(for: pause) } else { try await Task.sleep(for: .seconds(pause)) }
            }
        }
    }

    /// Runs blocking `work` on a new thread and waits for it without holding an async executor's thread. The command's
    /// console goes with it (a task-local value does not cross to a thread of its own by itself).
    static func onThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        let console = Console.current
        return await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: Console.$current.withValue(console) { work() }) }
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// Runs blocking, throwing `work` on a new thread and waits for it without holding an async executor's thread.
    static func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        let console = Console.current
        return try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Console.$current.withValue(console) { Result { try work() } }) }
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// Runs the loop in a service group that shuts it down gracefully on SIGTERM and SIGINT, with `beside` (a webhook
    /// listener) running as long as it does; `wake` ends the loop's pauses early.
    static func runUntilSignalled(
        _ label: String, wake: WakeSignal? = nil, beside: [any Service] = [], round: @escaping @Sendable () async -> Double?
    ) async throws {
        var logger = Logger(label: "stagecraft.\(label)")
        logger.logLevel = .critical
        let group = ServiceGroup(
            configuration: .init(
                // A loop that ends by itself (`queue --once`, a one-shot round) ends the group as a success.
                services: [.init(service: LoopService(round: round, wake: wake), successTerminationBehavior: .gracefullyShutdownGroup)]
                    + beside.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }
}

/// A value a service's rounds share; they run one at a time, so no two threads touch it at once.
final class RoundState<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}
