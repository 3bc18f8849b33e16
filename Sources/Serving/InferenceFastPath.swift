import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import CoreFoundation
import NIOCore

/// Answers infer requests straight from the connection's bytes, on its event loop: no HTTP decoder, no header
/// conversion, no hop to Swift concurrency, one write per answer. It sits first in the pipeline and reads plain
/// `POST /v2/models/{m}[/versions/{v}]/infer HTTP/1.1` requests with a `Content-Length` body within the limit,
/// pipelined or not. The first request that is anything else (another path or method, a chunked body, `Expect`,
/// HTTP/1.0, a header it does not read the same way as the HTTP decoder would) hands the connection over, from that
/// request's first byte on, to the HTTP decoder and Hummingbird's router, and this handler leaves the pipeline.
/// Requests it answers are always complete before the next is read, so answers stay in request order.
final class InferenceFastPath: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let endpoint: InferenceEndpoint
    private let serverName: String
    /// Bytes read but not answered yet: the start of the next request.
    private(set) var buffered: ByteBuffer?
    /// The server is shutting down: close once the request being read is answered.
    private var quiescing = false
    private var date = HTTPDate()

    init(endpoint: InferenceEndpoint, serverName: String) {
        self.endpoint = endpoint
        self.serverName = serverName
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if buffered == nil {
            buffered = bytes
        } else {
            buffered!.writeBuffer(&bytes)
        }
        if !awaitingReply { drain(context: context) }
    }

    /// A request forwarded to a model's own server is being answered: nothing more is read or answered until its
    /// reply is written, so that replies stay in request order.
    private var awaitingReply = false

    /// Answers the buffered requests in order, until one is incomplete, is for the router, or waits on a model's own
    /// server.
    private func drain(context: ChannelHandlerContext) {
        var flush = false
        while let readable = buffered, readable.readableBytes > 0 {
            switch Self.parse(readable, bodyLimit: endpoint.bodyLimit) {
            case .incomplete:
                // Keep only the unanswered request's bytes, so that a long connection whose reads keep cutting
                // requests in two does not keep every byte it ever read.
                if buffered!.readerIndex > 0 { buffered!.discardReadBytes() }
                if flush { context.flush() }
                return
            case .other:
                if flush { context.flush() }
                handOver(context: context)
                return
            case .infer(let request):
                let started = ContinuousClock.now
                let body = readable.getSlice(at: readable.readerIndex + request.bodyStart, length: request.bodyLength) ?? ByteBuffer()
                buffered!.moveReaderIndex(forwardBy: request.bodyStart + request.bodyLength)
                if endpoint.repository.hasOwnServer(model: request.model) {
                    // Forwarded from this event loop; the reply is written when it comes, then the rest is read.
                    if flush { context.flush() }
                    awaitingReply = true
                    let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                    endpoint.answer(
                        model: request.model, version: request.version, body: .success(body), binaryHeader: request.binaryHeader,
                        probe: request.probe, started: started, on: context.eventLoop
                    ).whenSuccess { reply in
                        let (handler, context) = bound.value
                        handler.awaitingReply = false
                        guard handler.write(reply, request: request, context: context) else { return }
                        context.flush()
                        handler.drain(context: context)
                        if handler.heldRead, context.channel.isWritable {
                            handler.heldRead = false
                            context.read()
                        }
                    }
                    return
                }
                let reply = endpoint.answer(
                    model: request.model, version: request.version, body: .success(body),
                    binaryHeader: request.binaryHeader, probe: request.probe, started: started)
                guard write(reply, request: request, context: context) else { return }
                flush = true
            }
        }
        buffered = nil
        if flush { context.flush() }
    }

    /// Writes one reply; false when the connection closes after it (asked for, or the server is quiescing).
    private func write(_ reply: Reply, request: Request, context: ChannelHandlerContext) -> Bool {
        let close = request.close || (quiescing && (buffered?.readableBytes ?? 0) == 0)
        let answer = wrapOutboundOut(encode(reply, close: close, allocator: context.channel.allocator))
        if close {
            buffered = nil
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(answer).whenComplete { _ in bound.value.close(promise: nil) }
            return false
        }
        context.write(answer, promise: nil)
        return true
    }

    /// A read the channel asked for while it could not take more writes: made once it can.
    private var heldRead = false

    /// A client that sends requests without reading the answers is not read from until its answers drain, so
    /// they cannot pile up in memory.
    func read(context: ChannelHandlerContext) {
        if context.channel.isWritable && !awaitingReply {
            context.read()
        } else {
            heldRead = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if heldRead, context.channel.isWritable, !awaitingReply {
            heldRead = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, (buffered?.readableBytes ?? 0) > 0 || awaitingReply {
            quiescing = true  // answer the request being read, then close
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Passes what is buffered on to the HTTP decoder and leaves the pipeline: the connection is the router's now.
    private func handOver(context: ChannelHandlerContext) {
        if let rest = buffered, rest.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(rest)) }
        buffered = nil
        if heldRead {
            heldRead = false
            context.read()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// The whole answer, status line to body.
    private func encode(_ reply: Reply, close: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: 256 + reply.body.readableBytes)
        if reply.status == .ok {
            out.writeStaticString("HTTP/1.1 200 OK\r\n")
        } else {
            out.writeString("HTTP/1.1 \(reply.status.code) \(reply.status.reasonPhrase)\r\n")
        }
        if let jsonLength = reply.jsonLength {
            out.writeStaticString("Content-Type: application/octet-stream\r\n")
            out.writeString("\(BinaryTensors.headerLengthField): \(jsonLength)\r\n")
        } else {
            out.writeStaticString("Content-Type: application/json\r\n")
        }
        if let source = reply.source {
            out.writeString(InferenceServer.sourceHeader.rawName)
            out.writeStaticString(": ")
            out.writeString(source)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("Content-Length: ")
        out.writeString(String(reply.body.readableBytes))
        out.writeStaticString("\r\nDate: ")
        out.writeString(date.now())
        out.writeStaticString("\r\nServer: ")
        out.writeString(serverName)
        out.writeStaticString("\r\n")
        if let retryAfter = reply.retryAfter { out.writeString("Retry-After: \(retryAfter)\r\n") }
        if close { out.writeString("Connection: close\r\n") }
        out.writeString("\r\n")
        var body = reply.body
        out.writeBuffer(&body)
        return out
    }

    /// What the buffered bytes start with.
    enum Parsed: Equatable {
        /// A complete infer request this handler answers; offsets are from the reader index.
        case infer(Request)
        /// Not all of a request yet (nothing in it so far says it is not one to answer here).
        case incomplete
        /// Anything else: the HTTP decoder and the router take over.
        case other
    }

    struct Request: Equatable {
        var model: String
        var version: String?
        var probe = false
        var close = false
        /// The `Inference-Header-Content-Length` header's text (the binary tensor extension).
        var binaryHeader: Substring?
        var bodyStart = 0
        var bodyLength = 0
    }

    /// Longest head read here; longer ones go to the HTTP decoder, which has its own limits.
    static let headLimit = 16 << 10

    /// Reads one request from the start of `buffer`.
    static func parse(_ buffer: ByteBuffer, bodyLimit: Int) -> Parsed {
        buffer.withUnsafeReadableBytes { bytes -> Parsed in
            let count = bytes.count
            let prefix = "POST /v2/models/".utf8
            // The request line: exactly `POST <path> HTTP/1.1`.
            for (index, byte) in prefix.enumerated() {
                guard index < count else { return .incomplete }
                guard bytes[index] == byte else { return .other }
            }
            var position = prefix.count
            while position < count, bytes[position] != 32 {
                guard bytes[position] > 32, bytes[position] < 127, position < 1024 else { return .other }
                position += 1
            }
            guard position < count else { return position < 1024 ? .incomplete : .other }
            let path = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[5..<position]), as: UTF8.self)
            guard let target = inferTarget(path) else { return .other }
            for byte in " HTTP/1.1\r\n".utf8 {
                guard position < count else { return .incomplete }
                guard bytes[position] == byte else { return .other }
                position += 1
            }
            var request = Request(model: target.model, version: target.version)
            var contentLength: Int?
            // Header lines up to the empty line.
            while true {
                guard position + 1 < count else { return count > headLimit ? .other : .incomplete }
                if bytes[position] == 13 && bytes[position + 1] == 10 {
                    position += 2
                    break
                }
                let nameStart = position
                while position < count, bytes[position] != 58 {
                    // Token characters only (no spaces, no folding, no bare line ends).
                    guard Self.isToken(bytes[position]) else { return .other }
                    position += 1
                }
                guard position < count else { return count > headLimit ? .other : .incomplete }
                guard position > nameStart else { return .other }
                let nameEnd = position
                position += 1
                while position < count, bytes[position] == 32 || bytes[position] == 9 { position += 1 }
                let valueStart = position
                while position < count, bytes[position] != 13 {
                    guard bytes[position] >= 32 || bytes[position] == 9, bytes[position] != 127 else { return .other }
                    position += 1
                }
                guard position + 1 < count else { return count > headLimit ? .other : .incomplete }
                guard bytes[position + 1] == 10 else { return .other }
                var valueEnd = position
                while valueEnd > valueStart, bytes[valueEnd - 1] == 32 || bytes[valueEnd - 1] == 9 { valueEnd -= 1 }
                position += 2
                guard position <= headLimit else { return .other }
                let name = UnsafeRawBufferPointer(rebasing: bytes[nameStart..<nameEnd])
                let value = UnsafeRawBufferPointer(rebasing: bytes[valueStart..<valueEnd])
                if Self.equalsIgnoringCase(name, "content-length") {
                    guard contentLength == nil, !value.isEmpty, value.count <= 12, value.allSatisfy({ $0 &- 48 < 10 }) else {
                        return .other
                    }
                    contentLength = value.reduce(0) { $0 * 10 + Int($1 - 48) }
                } else if Self.equalsIgnoringCase(name, "connection") {
                    if Self.equalsIgnoringCase(value, "close") {
                        request.close = true
                    } else if !Self.equalsIgnoringCase(value, "keep-alive") {
                        return .other
                    }
                } else if Self.equalsIgnoringCase(name, "transfer-encoding") || Self.equalsIgnoringCase(name, "expect")
                    || Self.equalsIgnoringCase(name, "upgrade")
                {
                    return .other
                } else if Self.equalsIgnoringCase(name, "stagecraft-probe") {
                    request.probe = true
                } else if Self.equalsIgnoringCase(name, "inference-header-content-length") {
                    guard request.binaryHeader == nil else { return .other }
                    request.binaryHeader = Substring(String(decoding: value, as: UTF8.self))
                }
            }
            guard let length = contentLength, length <= bodyLimit else { return .other }
            guard count - position >= length else { return .incomplete }
            request.bodyStart = position
            request.bodyLength = length
            return .infer(request)
        }
    }

    /// The model and version of an infer path (`/v2/models/{m}/infer`, `/v2/models/{m}/versions/{v}/infer`); nil
    /// for any other path, and for paths with a query or escapes, which the router reads.
    static func inferTarget(_ path: String?) -> (model: String, version: String?)? {
        guard let path, path.hasPrefix("/v2/models/"), path.hasSuffix("/infer"),
            !path.utf8.contains(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "%") })
        else { return nil }
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

    /// RFC 9110 token characters.
    static func isToken(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default: return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// ASCII bytes equal to lowercase `text`, ignoring case.
    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ text: StaticString) -> Bool {
        guard bytes.count == text.utf8CodeUnitCount else { return false }
        let expected = UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)
        for index in 0..<bytes.count where bytes[index] | 0x20 != expected[index] { return false }
        return true
    }
}

/// Hummingbird's HTTP/1.1 channel with ``InferenceFastPath`` in front of its HTTP decoder.
struct InferenceHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let http1: HTTP1Channel
    let endpoint: InferenceEndpoint
    let serverName: String

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        do {
            try channel.pipeline.syncOperations.addHandler(InferenceFastPath(endpoint: endpoint, serverName: serverName))
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return http1.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await http1.handle(value: value, logger: logger)
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
            var time = clock.tv_sec
            var parts = tm()
            gmtime_r(&time, &parts)
            let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
            let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
            text =
                "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
                + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
        }
        return text
    }
}
