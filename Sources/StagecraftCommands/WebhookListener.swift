import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Reconciler
import Synchronization

/// Ends a loop's wait early: ``fire()`` ends the current wait at once, or the next one when none is running (several
/// fires before a wait ends one wait).
final class WakeSignal: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    init() {}

    func fire() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            defer { state.waiter = nil }
            if state.waiter == nil { state.pending = true }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Waits `seconds`, or until ``fire()``, whichever comes first.
    func sleep(for seconds: Double) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: .seconds(seconds)) }
            group.addTask { await self.fired() }
            await group.next()
            group.cancelAll()
        }
    }

    private func fired() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.pending {
                        state.pending = false
                        return true
                    }
                    if Task.isCancelled { return true }
                    state.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }
}

/// `reconcile --watch --webhook HOST:PORT`: an HTTP listener for a forge's push deliveries (any path, `POST`). A push
/// to the followed branch, signed with the secret, wakes the loop at once; `ping` is answered 200, other signed events
/// 202 and ignored; a delivery not signed with the secret 401, a body over 1 MiB 413, each logged with its delivery id.
enum WebhookListener {
    /// The listener as a service of the loop's service group.
    /// Says so (through `log`) once it listens.
    static func application(
        host: String, port: Int, webhook: PushWebhook, wake: WakeSignal, log: @escaping @Sendable (String) -> Void
    ) -> some ApplicationProtocol {
        let router = Router()
        let receive: @Sendable (Request, BasicRequestContext) async -> Response = { request, _ in
            await answer(request, webhook: webhook, wake: wake, log: log)
        }
        router.post("/", use: receive)
        router.post("**", use: receive)
        var logger = Logger(label: "stagecraft.webhook")
        logger.logLevel = .critical
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "stagecraft-webhook"),
            onServerRunning: { _ in log("webhook: listening on \(host):\(port) for pushes to \(webhook.watchedRef)") }, logger: logger)
    }

    static func answer(_ request: Request, webhook: PushWebhook, wake: WakeSignal, log: @Sendable (String) -> Void) async -> Response {
        let delivery = deliveryID(request.headers[HTTPField.Name("X-GitHub-Delivery")!])
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: PushWebhook.bodyLimit)
        } catch {
            log("webhook: delivery \(delivery) refused (413): the body is over \(PushWebhook.bodyLimit) bytes")
            return text(.contentTooLarge, "the body is over the limit of \(PushWebhook.bodyLimit) bytes")
        }
        let verdict = webhook.judge(header: { name in request.headers[HTTPField.Name(name)!] }, body: body.readableBytesView)
        switch verdict {
        case .reconcile:
            log("webhook: delivery \(delivery): a push to \(webhook.watchedRef), reconciling now")
            wake.fire()
            return text(.ok, "reconciling")
        case .ping:
            log("webhook: delivery \(delivery): ping")
            return text(.ok, "pong")
        case .ignored(let reason):
            return text(.accepted, "ignored: \(reason)")
        case .refused(let reason):
            log("webhook: delivery \(delivery) refused (401): \(reason)")
            return text(.unauthorized, reason)
        }
    }

    /// A delivery id fit for a log line: at most 64 of `A-Z a-z 0-9 - _ .`, else `-`.
    static func deliveryID(_ header: String?) -> String {
        guard let header, !header.isEmpty, header.count <= 64,
            header.unicodeScalars.allSatisfy({
                $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0))
            })
        else { return "-" }
        return header
    }

    private static func text(_ status: HTTPResponse.Status, _ message: String) -> Response {
        Response(
            status: status, headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: message + "\n")))
    }
}
