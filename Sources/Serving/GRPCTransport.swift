import Foundation
import GRPCCore
import NIOCore
import NIOExtras
import NIOHPACK
import NIOHTTP2
import NIOPosix

/// The gRPC service's listener: HTTP/2 (prior knowledge, plaintext) on NIO, every call of
/// `inference.GRPCInferenceService` answered on its connection's event loop straight from the frames, as
/// ``InferenceFastPath`` answers HTTP/1.1: no per-call task, stream channel or async sequence. The service's calls are
/// all unary, so a call is its request headers, one length-prefixed message and the answer. The one call that may
/// block (loading a model from disk or object storage) runs on the thread pool.
final class GRPCListener: Sendable {
    let host: String
    let port: Int
    let service: GRPCInference
    /// The largest message taken; a larger one is answered `RESOURCE_EXHAUSTED` without being kept.
    let messageLimit: Int
    private let quiescing: ServerQuiescingHelper

    init(host: String, port: Int, service: GRPCInference, messageLimit: Int) {
        self.host = host
        self.port = port
        self.service = service
        self.messageLimit = messageLimit
        self.quiescing = ServerQuiescingHelper(group: MultiThreadedEventLoopGroup.singleton)
    }

    /// Listens until ``beginGracefulShutdown()`` or cancellation; throws when the port cannot be bound.
    func serve() async throws {
        let service = self.service
        let messageLimit = self.messageLimit
        let quiescing = self.quiescing
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(NIOHTTP2Handler(mode: .server, initialSettings: GRPCConnection.settings))
                    try pipeline.addHandler(GRPCConnection(service: service, messageLimit: messageLimit))
                }
            }
            .bind(host: host == "localhost" ? "127.0.0.1" : host, port: port).get()
        try await withTaskCancellationHandler {
            try await server.closeFuture.get()
        } onCancel: {
            self.beginGracefulShutdown()
        }
    }

    /// Stops listening; each connection is told (`GOAWAY`) and closes once its calls are answered.
    func beginGracefulShutdown() {
        quiescing.initiateShutdown(promise: nil)
    }
}

/// One HTTP/2 connection of the gRPC service. Calls are read frame by frame into their stream's buffer (bounded by the
/// message limit per call and twice that per connection), answered when the client ends its stream, and the answers
/// of one read are flushed together. Flow control is this handler's: the connection's and each stream's windows are
/// widened as their bytes are read.
final class GRPCConnection: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    /// The inbound window of the connection and of each stream.
    static let window = 1 << 20
    /// What the server tells each client when the connection opens.
    static let settings: HTTP2Settings = [
        HTTP2Setting(parameter: .maxConcurrentStreams, value: 100),
        HTTP2Setting(parameter: .initialWindowSize, value: window),
        HTTP2Setting(parameter: .maxHeaderListSize, value: HPACKDecoder.defaultMaxHeaderListSize),
    ]

    /// A call being read.
    private struct Call {
        /// Nil for a stream answered at its headers (not a call of this service).
        var method: GRPCInference.Method?
        var metadata: GRPCInference.CallMetadata
        /// The length-prefixed message, as far as it has come.
        var message: ByteBuffer
        /// Answered already (an error before its message ended, or a call on the thread pool): any more of its
        /// bytes are dropped.
        var answered = false
    }

    private let service: GRPCInference
    private let messageLimit: Int
    private var calls: [HTTP2StreamID: Call] = [:]
    /// Bytes held in calls' buffers, all streams together.
    private var buffered = 0
    private var flushPending = false
    /// Calls on the thread pool, not answered yet.
    private var blockingCalls = 0
    private var quiescing = false
    private var lastStream = HTTP2StreamID(0)

    init(service: GRPCInference, messageLimit: Int) {
        self.service = service
        self.messageLimit = messageLimit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.payload {
        case .headers(let headers):
            if calls[frame.streamID] != nil {
                // Trailers from the client end its message.
                if headers.endStream { end(context, stream: frame.streamID) }
            } else {
                begin(context, stream: frame.streamID, headers: headers.headers, ended: headers.endStream)
            }
        case .data(let payload):
            received(context, stream: frame.streamID, payload: payload)
        case .rstStream:
            drop(frame.streamID)
        default:
            break  // settings, pings, window updates and GOAWAY are NIOHTTP2Handler's
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if flushPending {
            flushPending = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ChannelShouldQuiesceEvent:
            quiescing = true
            write(
                context, HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: lastStream, errorCode: .noError, opaqueData: nil))
            )
            context.flush()
            closeIfIdle(context)
        case let closed as StreamClosedEvent:
            drop(closed.streamID)
        case let update as NIOHTTP2WindowUpdatedEvent:
            // Widen a window once it is half used: the connection's (which starts at 64 KiB, whatever the
            // settings say), and the stream's of a call whose message is still coming.
            guard let left = update.inboundWindowSize, left < Self.window / 2 else { break }
            guard update.streamID == .rootStream || calls[update.streamID].map({ !$0.answered }) == true else { break }
            write(context, HTTP2Frame(streamID: update.streamID, payload: .windowUpdate(windowSizeIncrement: Self.window - left)))
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A protocol error has been answered by NIOHTTP2Handler (GOAWAY or RST_STREAM); anything else ends the connection.
        if error is NIOHTTP2Errors.StreamError || error is NIOHTTP2Errors.StreamIDTooSmall { return }
        context.close(promise: nil)
    }

    // MARK: Reading calls

    private func begin(_ context: ChannelHandlerContext, stream: HTTP2StreamID, headers: HPACKHeaders, ended: Bool) {
        lastStream = max(lastStream, stream)
        var method: GRPCInference.Method?
        var metadata = GRPCInference.CallMetadata()
        var post = false
        var contentType: String?
        var encoding: String?
        for (name, value, _) in headers {
            switch name {
            case ":method": post = value == "POST"
            case ":path": method = GRPCInference.Method(path: value)
            case "content-type": contentType = value
            case "grpc-encoding": encoding = value
            case "authorization": metadata.authorization.append(value)
            case GRPCInference.probeMetadata: metadata.probe = true
            default: break
            }
        }
        guard post, let contentType, contentType == "application/grpc" || contentType.hasPrefix("application/grpc+proto") else {
            // Not gRPC: plain HTTP answers (gRPC's spec: 415 for another content type).
            let status = post ? "415" : "405"
            let answer: HPACKHeaders = [":status": status, "content-type": "text/plain"]
            calls[stream] = Call(method: nil, metadata: metadata, message: ByteBuffer(), answered: true)
            write(context, HTTP2Frame(streamID: stream, payload: .headers(.init(headers: answer, endStream: true))))
            finish(context, stream: stream, ended: ended)
            return
        }
        guard let method else {
            let path = headers.first(name: ":path") ?? ""
            fail(
                context, stream: stream, ended: ended,
                RPCError(code: .unimplemented, message: "no method \(path.prefix(200)) on this server"))
            return
        }
        if let encoding, encoding != "identity" {
            fail(
                context, stream: stream, ended: ended,
                RPCError(
                    code: .unimplemented,
                    message: "messages compressed with \(encoding.prefix(40)) are not read here: send them uncompressed"))
            return
        }
        calls[stream] = Call(method: method, metadata: metadata, message: ByteBuffer())
        if ended { end(context, stream: stream) }
    }

    private func received(_ context: ChannelHandlerContext, stream: HTTP2StreamID, payload: HTTP2Frame.FramePayload.Data) {
        guard case .byteBuffer(var bytes) = payload.data, var call = calls[stream], !call.answered else {
            if payload.endStream { finish(context, stream: stream, ended: true) }
            return
        }
        let length = bytes.readableBytes
        let size = call.message.readableBytes + length
        guard size <= messageLimit + 5, buffered + length <= 2 * messageLimit else {
            let message =
                size > messageLimit + 5
                ? "the message is over the limit of \(messageLimit) bytes"
                : "this connection holds more unfinished messages than the server takes (\(2 * messageLimit) bytes): "
                    + "send fewer at once"
            fail(context, stream: stream, ended: payload.endStream, RPCError(code: .resourceExhausted, message: message))
            return
        }
        if call.message.readableBytes == 0 {
            call.message = bytes  // the usual call: its whole message in one frame, kept as it came
        } else {
            call.message.writeBuffer(&bytes)
        }
        buffered += length
        calls[stream] = call
        if payload.endStream { end(context, stream: stream) }
    }

    /// The client ended its stream: the call's message is complete.
    private func end(_ context: ChannelHandlerContext, stream: HTTP2StreamID) {
        guard let call = calls[stream], !call.answered, let method = call.method else {
            return finish(context, stream: stream, ended: true)
        }
        let message: GRPCMessage
        switch GRPCMessage.unframe(call.message) {
        case .success(let body): message = body
        case .failure(let error):
            answer(context, stream: stream, .failure(error))
            return finish(context, stream: stream, ended: true)
        }
        if let later = service.answerLater(method, message: message, metadata: call.metadata, on: context.eventLoop) {
            // Forwarded to a model's own server from this loop: answered when it comes.
            blockingCalls += 1
            calls[stream]?.answered = true
            release(stream)
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            later.whenSuccess { result in
                let (handler, context) = bound.value
                handler.blockingCalls -= 1
                handler.answer(context, stream: stream, result)
                handler.flushPending = false
                context.flush()
                handler.drop(stream)
                handler.closeIfIdle(context)
            }
            return
        }
        guard method.blocks else {
            answer(context, stream: stream, service.answer(method, message: message, metadata: call.metadata))
            return finish(context, stream: stream, ended: true)
        }
        blockingCalls += 1
        calls[stream]?.answered = true
        release(stream)
        let service = self.service
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        NIOThreadPool.singleton.runIfActive(eventLoop: context.eventLoop) {
            service.answer(method, message: message, metadata: call.metadata)
        }.whenComplete { outcome in
            let (handler, context) = bound.value
            handler.blockingCalls -= 1
            let result = (try? outcome.get()) ?? .failure(RPCError(code: .unavailable, message: "the server is stopping"))
            handler.answer(context, stream: stream, result)
            handler.flushPending = false
            context.flush()
            handler.drop(stream)
            handler.closeIfIdle(context)
        }
    }

    // MARK: Answering

    private static let okHeaders: HPACKHeaders = [":status": "200", "content-type": "application/grpc"]
    private static let okTrailers: HPACKHeaders = ["grpc-status": "0"]

    private func answer(_ context: ChannelHandlerContext, stream: HTTP2StreamID, _ result: Result<GRPCMessage, RPCError>) {
        switch result {
        case .success(let message):
            write(context, HTTP2Frame(streamID: stream, payload: .headers(.init(headers: Self.okHeaders))))
            write(context, HTTP2Frame(streamID: stream, payload: .data(.init(data: .byteBuffer(message.framed)))))
            write(context, HTTP2Frame(streamID: stream, payload: .headers(.init(headers: Self.okTrailers, endStream: true))))
        case .failure(let error):
            var headers = Self.okHeaders
            headers.add(name: "grpc-status", value: String(error.code.rawValue))
            headers.add(name: "grpc-message", value: Self.percentEncoded(error.message))
            write(context, HTTP2Frame(streamID: stream, payload: .headers(.init(headers: headers, endStream: true))))
        }
    }

    /// An error answered before the message has all come: the rest of the stream is dropped, and the client is told
    /// to stop sending it.
    private func fail(_ context: ChannelHandlerContext, stream: HTTP2StreamID, ended: Bool, _ error: RPCError) {
        answer(context, stream: stream, .failure(error))
        if calls[stream] == nil { calls[stream] = Call(method: nil, metadata: .init(), message: ByteBuffer()) }
        calls[stream]?.answered = true
        release(stream)
        if !ended { write(context, HTTP2Frame(streamID: stream, payload: .rstStream(.noError))) }
        finish(context, stream: stream, ended: ended)
    }

    /// The call is over on both sides once the client has ended its stream.
    private func finish(_ context: ChannelHandlerContext, stream: HTTP2StreamID, ended: Bool) {
        guard ended else { return }
        drop(stream)
        closeIfIdle(context)
    }

    private func release(_ stream: HTTP2StreamID) {
        guard let held = calls[stream]?.message.readableBytes else { return }
        buffered -= held
        calls[stream]?.message = ByteBuffer()
    }

    private func drop(_ stream: HTTP2StreamID) {
        release(stream)
        calls[stream] = nil
    }

    private func closeIfIdle(_ context: ChannelHandlerContext) {
        guard quiescing, calls.isEmpty, blockingCalls == 0 else { return }
        context.close(promise: nil)
    }

    private func write(_ context: ChannelHandlerContext, _ frame: HTTP2Frame) {
        context.write(wrapOutboundOut(frame), promise: nil)
        flushPending = true
    }

    /// `grpc-message`'s encoding: printable ASCII but `%` as it is, every other byte of the UTF-8 as `%XX`.
    static func percentEncoded(_ text: String) -> String {
        var encoded = ""
        for byte in text.utf8 {
            if byte >= 0x20, byte <= 0x7E, byte != UInt8(ascii: "%") {
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                encoded += String(format: "%%%02X", byte)
            }
        }
        return encoded
    }
}
