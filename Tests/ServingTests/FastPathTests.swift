import Foundation
import NIOCore
import NIOEmbedded
@testable import Serving
import Testing

/// What the event-loop fast path reads itself, what it waits for, and what it leaves to the HTTP decoder.
@Suite struct FastPathTests {
    func parse(_ text: String, bodyLimit: Int = 1_000) -> InferenceFastPath.Parsed {
        InferenceFastPath.parse(ByteBuffer(string: text), bodyLimit: bodyLimit)
    }

    @Test func aPlainInferRequestIsReadWithItsBody() {
        let text = "POST /v2/models/penguins/infer HTTP/1.1\r\nHost: x\r\ncontent-LENGTH: 2\r\nConnection: close\r\nStagecraft-Probe: 1\r\n\r\n{}POST"
        guard case .infer(let request) = parse(text) else { Issue.record("not read: \(parse(text))"); return }
        #expect(request.model == "penguins" && request.version == nil && request.close && request.probe)
        #expect(request.bodyStart == text.utf8.count - 6 && request.bodyLength == 2)
        guard case .infer(let versioned) = parse("POST /v2/models/m/versions/abc/infer HTTP/1.1\r\nContent-Length: 0\r\n\r\n") else {
            Issue.record("a version path is not read"); return
        }
        #expect(versioned.model == "m" && versioned.version == "abc" && !versioned.close && !versioned.probe)
    }

    @Test func everyPrefixOfARequestWaitsForMore() {
        let text = "POST /v2/models/penguins/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
        for length in 1..<text.utf8.count {
            let prefix = String(decoding: Array(text.utf8.prefix(length)), as: UTF8.self)
            #expect(parse(prefix) == .incomplete, "\(prefix.debugDescription)")
        }
    }

    @Test(arguments: [
        "GET /v2/models/penguins/infer HTTP/1.1\r\n\r\n",
        "POST /v2/health/live HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "POST /v2/models/penguins/ready HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "POST /v2/models/penguins/infer?x=1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "POST /v2/models/pen%67uins/infer HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "POST /v2/models//infer HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "POST /v2/models/penguins/infer HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
        "POST /v2/models/penguins/infer HTTP/1.1\r\n\r\n",
        "POST /v2/models/penguins/infer HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
        "POST /v2/models/penguins/infer HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
        "POST /v2/models/penguins/infer HTTP/1.1\r\nContent-Length: 1001\r\n\r\n",
        "POST /v2/models/penguins/infer HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /v2/models/penguins/infer HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
        "POST /v2/models/penguins/infer HTTP/1.1\r\nConnection: upgrade\r\nContent-Length: 2\r\n\r\n",
        "POST /v2/models/penguins/infer HTTP/1.1\r\nBad Header: 1\r\nContent-Length: 2\r\n\r\n",
        "POST /v2/models/penguins/infer HTTP/1.1\r\nNoColon\r\n\r\n",
        "POST /v2/models/penguins/infer HTTP/1.1\r\nX: folded\r\n continued\r\nContent-Length: 0\r\n\r\n",
        "POST /v2/models/penguins/infer HTTP/1.1\r\nX: bare\nContent-Length: 0\r\n\r\n",
        "POST  /v2/models/penguins/infer HTTP/1.1\r\n\r\n",
    ])
    func anythingElseGoesToTheHTTPDecoder(_ text: String) {
        #expect(parse(text) == .other)
    }

    @Test func anOverlongHeadGoesToTheHTTPDecoder() {
        let head = "POST /v2/models/penguins/infer HTTP/1.1\r\nX: " + String(repeating: "a", count: 20_000)
        #expect(parse(head) == .other)
    }

    /// Through the handler on NIO's embedded channel: 100 pipelined requests whose reads all end inside a request
    /// get 100 answers, in order, and the handler keeps only the unanswered request's bytes.
    @Test func readsThatCutRequestsKeepOnlyTheUnansweredBytes() throws {
        let repository = ModelRepository()
        repository.load(LoadedVersion(model: "breast-cancer", version: String(repeating: "cd", count: 32), source: String(repeating: "1", count: 40),
                                      file: Models.breastCancer.0))
        let endpoint = InferenceEndpoint(repository: repository, metrics: ServerMetrics(), capture: nil, feedback: nil, bodyLimit: 1 << 20)
        let handler = InferenceFastPath(endpoint: endpoint, serverName: "stagecraft")
        let channel = EmbeddedChannel(handler: handler)
        var wire = ""
        for index in 0..<100 {
            let body = String(decoding: perFeatureBody(Models.breastCancer.0, Models.breastCancer.1, rows: 0..<1, id: "r\(index)"), as: UTF8.self)
            wire += "POST /v2/models/breast-cancer/infer HTTP/1.1\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        }
        let bytes = Array(wire.utf8)
        var largest = 0
        for start in stride(from: 0, to: bytes.count, by: 997) {  // 997 bytes per read: every read ends inside a request
            try channel.writeInbound(ByteBuffer(bytes: bytes[start..<min(start + 997, bytes.count)]))
            largest = max(largest, handler.buffered.map { $0.readerIndex + $0.readableBytes } ?? 0)
        }
        var answers: [String] = []
        while let out = try channel.readOutbound(as: ByteBuffer.self) { answers.append(String(buffer: out)) }
        #expect(answers.count == 100)
        #expect(answers.enumerated().allSatisfy { $1.hasPrefix("HTTP/1.1 200 OK\r\n") && $1.contains("\"id\":\"r\($0)\"") })
        // What is kept stays within one request and one read (the whole stream is 100 requests).
        let request = bytes.count / 100
        #expect(largest <= request + 997 + 64, "kept up to \(largest) bytes, requests are \(request)")
        #expect(handler.buffered == nil)
        _ = try channel.finish()
    }
}
