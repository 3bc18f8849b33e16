import Foundation
import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Answers infer requests on the connection's event loop, without a hop to Swift concurrency: the request's parts
/// are gathered here, answered by ``InferenceEndpoint`` and written back at once. Every other request passes on to
/// Hummingbird's router unchanged.
///
/// Responses stay in request order under HTTP pipelining: while a request that went to the router has not been
/// answered in full, the infer requests behind it go to the router too (whose infer routes answer the same way).
final class InferenceChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// An infer request being read here.
    private struct Pending {
        var model: String
        var version: String?
        var probe: Bool
        var closeAfter: Bool
        var started: ContinuousClock.Instant
        var body: ByteBuffer?
        var tooLarge = false
    }

    private let endpoint: InferenceEndpoint
    private let serverName: String
    private var pending: Pending?
    /// Requests passed on to the router whose response has not ended yet.
    private var forwarded = 0
    /// The server is shutting down: close once the request being read here is answered.
    private var quiescing = false
    private var dateHeader = HTTPDate()

    init(endpoint: InferenceEndpoint, serverName: String) {
        self.endpoint = endpoint
        self.serverName = serverName
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        guard var request = pending else {
            if case .head(let head) = part {
                if forwarded == 0, head.method == .post, let target = Self.inferTarget(head.path) {
                    pending = Pending(model: target.model, version: target.version, probe: head.headerFields[InferenceServer.probeHeader] != nil,
                                      closeAfter: head.headerFields[.connection].map(Self.isClose) ?? false, started: .now)
                    return
                }
                forwarded += 1
            }
            context.fireChannelRead(data)
            return
        }
        switch part {
        case .head:
            // The codec never sends a head before the previous request's end; pass it on rather than lose it.
            context.fireChannelRead(data)
        case .body(var chunk):
            guard !request.tooLarge else { return }
            pending = nil  // keep the body buffer uniquely referenced while it grows
            if (request.body?.readableBytes ?? 0) + chunk.readableBytes > endpoint.bodyLimit {
                request.tooLarge = true
                request.body = nil
            } else if request.body == nil {
                request.body = chunk
            } else {
                request.body!.writeBuffer(&chunk)
            }
            pending = request
        case .end:
            pending = nil
            let body: Result<ByteBuffer, InferenceError> =
                request.tooLarge ? .failure(endpoint.tooLarge) : .success(request.body ?? ByteBuffer())
            let reply = endpoint.answer(model: request.model, version: request.version, body: body, probe: request.probe,
                                        started: request.started)
            write(reply, context: context, close: request.closeAfter || quiescing)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), forwarded > 0 { forwarded -= 1 }
        context.write(data, promise: promise)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, pending != nil {
            quiescing = true  // answer the request being read, then close
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func write(_ reply: Reply, context: ChannelHandlerContext, close: Bool) {
        var head = HTTPResponse(status: reply.status, headerFields: reply.headers)
        head.headerFields[.contentLength] = String(reply.body.readableBytes)
        head.headerFields[.date] = dateHeader.now()
        head.headerFields[.server] = serverName
        if close { head.headerFields[.connection] = "close" }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(reply.body)), promise: nil)
        if close {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in bound.value.close(promise: nil) }
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    /// A `Connection` header that asks to close after the response.
    static func isClose(_ value: String) -> Bool {
        value.utf8.count == 5 && value.utf8.elementsEqual("close".utf8) || value.lowercased() == "close"
    }

    /// The model and version of an infer path (`/v2/models/{m}/infer`, `/v2/models/{m}/versions/{v}/infer`); nil
    /// for any other path, and for paths with a query or escapes, which the router reads.
    static func inferTarget(_ path: String?) -> (model: String, version: String?)? {
        guard let path, path.hasPrefix("/v2/models/"), path.hasSuffix("/infer"),
              !path.utf8.contains(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "%") }) else { return nil }
        let parts = path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        // "", "v2", "models", model, ["versions", version,] "infer"
        switch parts.count {
        case 5 where !parts[3].isEmpty:
            return (String(Substring(parts[3])), nil)
        case 7 where !parts[3].isEmpty && !parts[5].isEmpty && parts[4].elementsEqual("versions".utf8):
            return (String(Substring(parts[3])), String(Substring(parts[5])))
        default:
            return nil
        }
    }
}

/// The `Date` header's value (RFC 9110 IMF-fixdate), formatted once a second.
struct HTTPDate {
    private var second = 0
    private var text = ""

    mutating func now() -> String {
        var clock = timespec()
        clock_gettime(CLOCK_REALTIME, &clock)
        if clock.tv_sec != second || text.isEmpty {
            second = clock.tv_sec
            var time = clock.tv_sec, parts = tm()
            gmtime_r(&time, &parts)
            let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"], months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
            text = "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
        }
        return text
    }
}
