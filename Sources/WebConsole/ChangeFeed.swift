import Foundation
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Tells open pages when what they show may have changed: a service that, while any page listens, reads the site's
/// ``ConsoleSite/changeStamp()`` every ``interval`` and sends `change` to every listener when it moved. Each
/// listener is an `AsyncStream` that ends when the service stops, so the server's graceful shutdown does not wait on
/// open event streams.
final class ChangeFeed: Service, Sendable {
    enum Event: Sendable {
        case change
        case keepAlive
    }

    private struct State {
        var listeners: [Int: AsyncStream<Event>.Continuation] = [:]
        var next = 0
        var stamp: String?
        var closed = false
    }

    /// At most this many pages listen at once; one more gets 503.
    static let listenerLimit = 256
    let interval: Duration
    private let site: ConsoleSite
    private let state = Mutex(State())

    init(site: ConsoleSite, interval: Duration = .milliseconds(500)) {
        self.site = site
        self.interval = interval
    }

    /// A stream of events for one page, and its key for ``unsubscribe(_:)``; nil when too many pages listen.
    func subscribe() -> (Int, AsyncStream<Event>)? {
        let (stream, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let key: Int? = state.withLock { state in
            guard !state.closed, state.listeners.count < Self.listenerLimit else { return nil }
            state.next += 1
            state.listeners[state.next] = continuation
            return state.next
        }
        guard let key else { return nil }
        return (key, stream)
    }

    func unsubscribe(_ key: Int) {
        state.withLock { $0.listeners.removeValue(forKey: key) }?.finish()
    }

    func run() async throws {
        await withGracefulShutdownHandler {
            var sinceKeepAlive = Duration.zero
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                try? await Task.sleep(for: interval)
                sinceKeepAlive += interval
                let listening = state.withLock { !$0.listeners.isEmpty }
                guard listening else { continue }
                let site = self.site
                let stamp = try? await NIOThreadPool.singleton.runIfActive { try site.changeStamp() }
                let (changed, listeners) = state.withLock { state -> (Bool, [AsyncStream<Event>.Continuation]) in
                    defer { if let stamp { state.stamp = stamp } }
                    return (stamp != nil && state.stamp != nil && stamp != state.stamp, Array(state.listeners.values))
                }
                if changed {
                    for listener in listeners { listener.yield(.change) }
                } else if sinceKeepAlive >= .seconds(15) {
                    sinceKeepAlive = .zero
                    for listener in listeners { listener.yield(.keepAlive) }
                }
            }
            close()
        } onGracefulShutdown: {
            self.close()
        }
    }

    private func close() {
        let listeners = state.withLock { state -> [AsyncStream<Event>.Continuation] in
            state.closed = true
            defer { state.listeners = [:] }
            return Array(state.listeners.values)
        }
        for listener in listeners { listener.finish() }
    }
}
