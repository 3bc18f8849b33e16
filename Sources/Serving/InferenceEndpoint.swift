import Foundation
import HTTPTypes
import Hummingbird
import Learning
import NIOCore
import NIOPosix

/// A JSON reply (`Content-Type: application/json`), built without Hummingbird so that the event-loop fast path can
/// write it as it is.
struct Reply {
    var status: HTTPResponse.Status
    /// The `Stagecraft-Source` header: the commit the answering version was built from.
    var source: String?
    var body: ByteBuffer
    /// With binary outputs: the length of the body's JSON part (`Inference-Header-Content-Length`).
    var jsonLength: Int?
    /// With a 503: seconds to wait before asking again (`Retry-After`).
    var retryAfter: Int? = nil

    /// The `Content-Type`: JSON, or raw bytes after a JSON header.
    var contentType: String { jsonLength == nil ? "application/json" : "application/octet-stream" }

    /// The headers besides the body's length.
    var headers: HTTPFields {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        if let source { headers[InferenceServer.sourceHeader] = source }
        if let jsonLength { headers[InferenceServer.binaryHeaderLength] = String(jsonLength) }
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        return headers
    }

    /// The same reply as a Hummingbird response.
    var response: Response { Response(status: status, headers: headers, body: .init(byteBuffer: body)) }

    static func json(_ body: ByteBuffer, status: HTTPResponse.Status = .ok, source: String? = nil) -> Reply {
        Reply(status: status, source: source, body: body)
    }
}

/// Answers `POST /v2/models/{model}[/versions/{version}]/infer` once the body has been read: decode, route (version,
/// split), predict, encode; records metrics, live feedback and capture. The Hummingbird route and the event-loop
/// fast path (``InferenceFastPath``) both answer through it.
struct InferenceEndpoint: Sendable {
    let repository: ModelRepository
    let metrics: ServerMetrics
    let capture: RequestCapture?
    let feedback: LiveFeedback?
    let bodyLimit: Int
    var accessLog: AccessLog? = nil

    /// What answering an infer request gave, whatever its protocol.
    struct Answer {
        /// The version that answered.
        var loaded: LoadedVersion
        var request: InferenceRequest
        var predictions: Predictions
        /// The request's id, or the one generated for it.
        var id: String
    }

    /// Routes (version path, or the split by request id), decodes, predicts, and records live feedback and capture
    /// for one infer request: what HTTP and gRPC requests share. Metrics are the caller's, once it knows its status.
    /// - Parameters:
    ///   - requestID: the request's id, read before decoding: it picks the split's bucket.
    ///   - decode: the request, decoded for the model file of the version that answers.
    ///   - answered: set to the answering version as soon as it is known (for the metrics of a request that fails later).
    func infer(
        model name: String, version: String?, requestID: String?, probe: Bool, started: ContinuousClock.Instant,
        answered: inout LoadedVersion?, decode: (ModelFile) throws(InferenceError) -> InferenceRequest
    ) throws -> Answer {
        let (loaded, decoded) = try route(model: name, version: version, requestID: requestID, answered: &answered, decode: decode)
        let predictions = try loaded.file.predict(decoded.rows)
        return finish(loaded, decoded, predictions, model: name, version: version, probe: probe, started: started)
    }

    /// As above, for a version that may have its own server: its predictions are forwarded from `eventLoop` (the
    /// caller's own, for an event-loop handler) and the answer completes there.
    func infer(
        model name: String, version: String?, requestID: String?, probe: Bool, started: ContinuousClock.Instant,
        on eventLoop: any EventLoop, decode: (ModelFile) throws(InferenceError) -> InferenceRequest
    ) -> EventLoopFuture<Answer> {
        var answered: LoadedVersion?
        let loaded: LoadedVersion
        let decoded: InferenceRequest
        do {
            (loaded, decoded) = try route(model: name, version: version, requestID: requestID, answered: &answered, decode: decode)
        } catch {
            return eventLoop.makeFailedFuture(Unanswered(version: answered, error: error))
        }
        return loaded.predict(decoded.rows, id: decoded.id, on: eventLoop)
            .flatMapErrorThrowing { error in throw Unanswered(version: loaded, error: error) }
            .map { [self] predictions in
                finish(loaded, decoded, predictions, model: name, version: version, probe: probe, started: started)
            }
    }

    /// Why a request was not answered, and by which version when that was known (for its metrics).
    struct Unanswered: Error {
        var version: LoadedVersion?
        var error: any Error
    }

    /// The version that answers and the request decoded for it.
    private func route(
        model name: String, version: String?, requestID: String?, answered: inout LoadedVersion?,
        decode: (ModelFile) throws(InferenceError) -> InferenceRequest
    ) throws -> (LoadedVersion, InferenceRequest) {
        guard let loaded = repository.resolve(model: name, version: version, requestID: requestID) else {
            throw InferenceError(.notFound, InferenceServer.notFoundMessage(name, version, repository))
        }
        answered = loaded
        return (loaded, try decode(loaded.file))
    }

    /// Records live feedback and capture (not for probes) and gives the answer.
    private func finish(
        _ loaded: LoadedVersion, _ decoded: InferenceRequest, _ predictions: Predictions, model name: String, version: String?,
        probe: Bool, started: ContinuousClock.Instant
    ) -> Answer {
        let file = loaded.file
        let id = decoded.id ?? InferenceRequest.newID()
        // Verification probes (reconcile's online gates) are not live traffic.
        if !probe {
            feedback?.remember(
                id: id, model: name, version: loaded.version, predictions: predictions, classes: file.classes,
                rows: decoded.rows.rowCount)
            if let capture {
                let shadow = version == nil ? repository.shadow(of: name).flatMap { $0.version == loaded.version ? nil : $0 } : nil
                capture.record(
                    id: id, model: name, version: loaded.version, rows: decoded.rows, predictions: predictions,
                    classes: file.classes, latency: seconds(since: started), shadow: shadow)
            }
        }
        return Answer(loaded: loaded, request: decoded, predictions: predictions, id: id)
    }

    /// Counts one answered request under its model (when loaded), answering version, status and protocol.
    func count(
        model name: String, answered: LoadedVersion?, status: Int, protocol: ServerMetrics.WireProtocol,
        started: ContinuousClock.Instant, id: String? = nil, probe: Bool = false
    ) {
        let elapsed = seconds(since: started)
        metrics.record(
            requested: name, in: repository, version: answered?.version, status: status, protocol: `protocol`, seconds: elapsed)
        accessLog?.record(
            model: name, version: answered?.version, status: status, seconds: elapsed, id: id,
            protocol: `protocol` == .grpc ? "grpc" : "http", probe: probe)
    }

    /// The reply to an HTTP infer request for `model` (and `version`, when the path names one).
    /// - Parameters:
    ///   - body: the request body, or why it could not be read (too large, broken).
    ///   - binaryHeader: the `Inference-Header-Content-Length` header's text, when the request has one (the binary
    ///     tensor extension: the body's JSON part is that long, the inputs' raw data follows).
    ///   - probe: the request is a verification probe (header `Stagecraft-Probe`): answered and counted, not captured.
    ///   - started: when the request arrived, for the latency metric.
    func answer(
        model name: String, version: String?, body: Result<ByteBuffer, InferenceError>, binaryHeader: Substring? = nil,
        probe: Bool, started: ContinuousClock.Instant
    ) -> Reply {
        var answered: LoadedVersion?
        var id: String?
        let reply: Reply
        do {
            let (json, binary) = try parse(model: name, version: version, body: body, binaryHeader: binaryHeader)
            id = try InferenceRequest.id(json)  // the access log names a request that fails later too
            let done = try infer(model: name, version: version, requestID: id, probe: probe, started: started, answered: &answered) {
                file throws(InferenceError) in try InferenceRequest.decode(json, binary: binary, for: file)
            }
            id = done.id
            reply = Self.reply(done, model: name)
        } catch {
            reply = InferenceServer.reply(for: error)
        }
        count(model: name, answered: answered, status: Int(reply.status.code), protocol: .http, started: started, id: id, probe: probe)
        return reply
    }

    /// As above, for a model whose versions may have their own server: the reply completes on `eventLoop`.
    func answer(
        model name: String, version: String?, body: Result<ByteBuffer, InferenceError>, binaryHeader: Substring? = nil,
        probe: Bool, started: ContinuousClock.Instant, on eventLoop: any EventLoop
    ) -> EventLoopFuture<Reply> {
        let parsed: (json: JSON, binary: ByteBuffer?, id: String?)
        do {
            let (json, binary) = try parse(model: name, version: version, body: body, binaryHeader: binaryHeader)
            parsed = (json, binary, try InferenceRequest.id(json))
        } catch {
            let reply = InferenceServer.reply(for: error)
            count(model: name, answered: nil, status: Int(reply.status.code), protocol: .http, started: started, probe: probe)
            return eventLoop.makeSucceededFuture(reply)
        }
        return infer(model: name, version: version, requestID: parsed.id, probe: probe, started: started, on: eventLoop) {
            file throws(InferenceError) in try InferenceRequest.decode(parsed.json, binary: parsed.binary, for: file)
        }.map { [self] done in
            let reply = Self.reply(done, model: name)
            count(model: name, answered: done.loaded, status: 200, protocol: .http, started: started, id: done.id, probe: probe)
            return reply
        }.recover { [self] failure in
            let unanswered = failure as? Unanswered
            let reply = InferenceServer.reply(for: unanswered?.error ?? failure)
            count(
                model: name, answered: unanswered?.version, status: Int(reply.status.code), protocol: .http, started: started,
                id: parsed.id, probe: probe)
            return reply
        }
    }

    /// The body's JSON part and binary data, once the model is known to be loaded.
    private func parse(
        model name: String, version: String?, body: Result<ByteBuffer, InferenceError>, binaryHeader: Substring?
    ) throws -> (JSON, ByteBuffer?) {
        var headerLength: Int?
        if let binaryHeader {
            guard let length = Int(binaryHeader), length >= 0 else {
                throw InferenceError(
                    .badRequest,
                    "\(BinaryTensors.headerLengthField) must be a whole number of bytes, found "
                        + "'\(binaryHeader.prefix(40))'")
            }
            headerLength = length
        }
        let (body, binary) = try BinaryTensors.split(try body.get(), headerLength: headerLength)
        guard repository.contains(model: name) else {
            throw InferenceError(.notFound, InferenceServer.notFoundMessage(name, version, repository))
        }
        let json = try body.withUnsafeReadableBytes { bytes in Result { () throws(InferenceError) in try InferenceRequest.parse(bytes) }
        }.get()
        return (json, binary)
    }

    /// The V2 response to an answered request.
    private static func reply(_ done: Answer, model name: String) -> Reply {
        let answer = InferenceResponse.body(
            model: name, version: done.loaded.version, id: done.id, predictions: done.predictions,
            classes: done.loaded.file.classes, outputs: done.request.outputs, binary: done.request.binaryOutputs)
        return Reply(status: .ok, source: done.loaded.source, body: ByteBuffer(bytes: answer.bytes), jsonLength: answer.jsonLength)
    }

    /// The Hummingbird route's answer: reads the body, then answers as above.
    func answer(_ request: Request, model: String?, version: String?) async -> Response {
        let started = ContinuousClock.now
        guard let model else { return InferenceServer.error(.badRequest, "no model in the path") }
        let body: Result<ByteBuffer, InferenceError>
        do {
            body = .success(try await request.body.collect(upTo: bodyLimit))
        } catch is NIOTooManyBytesError {
            body = .failure(.bodyTooLarge(limit: bodyLimit))
        } catch {
            body = .failure(InferenceError(.badRequest, "the body could not be read"))
        }
        let binaryHeader = request.headers[InferenceServer.binaryHeaderLength].map { Substring($0) }
        let probe = request.headers[InferenceServer.probeHeader] != nil
        guard repository.hasOwnServer(model: model) else {
            return answer(model: model, version: version, body: body, binaryHeader: binaryHeader, probe: probe, started: started).response
        }
        let eventLoop = MultiThreadedEventLoopGroup.singleton.any()
        let reply = answer(
            model: model, version: version, body: body, binaryHeader: binaryHeader, probe: probe, started: started, on: eventLoop)
        return ((try? await reply.get()) ?? InferenceServer.errorReply(.internalServerError, "no answer")).response
    }
}
