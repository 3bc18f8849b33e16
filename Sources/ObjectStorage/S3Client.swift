public import AsyncHTTPClient
import Crypto
public import Foundation
public import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOPosix

/// Where an S3-compatible service is: AWS itself (no URL), or a server of its own (MinIO, moto, Ceph), which
/// usually wants path-style addresses (`http://host/bucket/key` rather than `http://bucket.host/key`).
public struct S3Endpoint: Sendable, Equatable {
    /// The server, as `http(s)://host[:port]`; nil for AWS.
    public var url: URL?
    public var region: String
    public var pathStyle: Bool

    public init(url: URL? = nil, region: String = "us-east-1", pathStyle: Bool = false) {
        self.url = url
        self.region = region
        self.pathStyle = pathStyle
    }
}

/// An object as a listing or `HeadObject` describes it.
public struct S3Object: Sendable, Equatable {
    public var key: String
    public var size: Int
    public var etag: String?
    public var lastModified: Date?
}

/// A small client of the S3 API over async-http-client, signed with Signature Version 4: the calls Stagecraft needs
/// (`PutObject` with multipart upload above ``multipartThreshold``, `GetObject` streamed to disk and checked against
/// the sha256 expected, `HeadObject`, `ListObjectsV2` paged, `DeleteObjects`). A request that fails with a 5xx,
/// throttling or a connection error is retried with exponential backoff and full jitter; each attempt has a timeout.
public struct S3Client: Sendable {
    public let endpoint: S3Endpoint
    private let credentials: AWSCredentials
    private let http: HTTPClient
    private let signer: SigV4
    /// Attempts per request (the first and the retries).
    public var attempts: Int
    /// The longest an attempt may take; transfers of data get ``transferTimeout``.
    public var timeout: TimeAmount = .seconds(30)
    public var transferTimeout: TimeAmount = .minutes(10)
    /// The first retry waits up to this; each further one up to twice as long, at most ``maximumBackoff``.
    public var baseBackoff: Duration = .milliseconds(200)
    public var maximumBackoff: Duration = .seconds(5)

    /// Objects larger than this are sent in parts of ``partSize``.
    public static let multipartThreshold = 16 << 20
    public static let partSize = 16 << 20

    /// The HTTP client S3 clients share unless given one: it does not retry failed connections on its own (this
    /// client does, with its backoff) and gives up connecting after 5 seconds; it follows no redirect.
    public static let sharedHTTP: HTTPClient = {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(5)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    public init(endpoint: S3Endpoint, credentials: AWSCredentials, http: HTTPClient = S3Client.sharedHTTP, attempts: Int = 5) {
        self.endpoint = endpoint
        self.credentials = credentials
        self.http = http
        self.attempts = max(1, attempts)
        signer = SigV4(region: endpoint.region)
    }

    // MARK: Addresses

    /// The scheme, host (with a non-default port) and path of `key` in `bucket` (or of the bucket when `key` is nil).
    public func address(bucket: String, key: String?) -> (scheme: String, host: String, path: String) {
        let scheme = endpoint.url?.scheme ?? "https"
        var host = endpoint.url?.host ?? "s3.\(endpoint.region).amazonaws.com"
        if let port = endpoint.url?.port, !(scheme == "http" && port == 80), !(scheme == "https" && port == 443) {
            host += ":\(port)"
        }
        let encodedKey = key.map { SigV4.encode($0, keepSlash: true) }
        if endpoint.pathStyle {
            return (scheme, host, "/\(bucket)" + (encodedKey.map { "/\($0)" } ?? ""))
        }
        return (scheme, "\(bucket).\(host)", "/" + (encodedKey ?? ""))
    }

    // MARK: Objects

    /// What `PutObject` found when asked to write only a new object.
    public enum PutOutcome: Sendable, Equatable { case stored, alreadyThere }

    /// Writes `data` to `key`. With `onlyIfAbsent`, the write is conditional (`If-None-Match: *`): an existing object is
    /// kept and ``PutOutcome/alreadyThere`` returned.
    @discardableResult
    public func put(bucket: String, key: String, data: Data, onlyIfAbsent: Bool = false) async throws(S3Error) -> PutOutcome {
        let headers = onlyIfAbsent ? [(name: "If-None-Match", value: "*")] : []
        do {
            _ = try await send("PUT", bucket: bucket, key: key, headers: headers, body: data, timeout: transferTimeout)
            return .stored
        } catch  where error.code == .preconditionFailed {
            return .alreadyThere
        }
    }

    /// Uploads the file at `file` to `key`: in one request up to ``multipartThreshold``, in parts above it (a failed
    /// multipart upload is aborted, so that no part is left billed). Returns the file's sha256.
    @discardableResult
    public func upload(bucket: String, key: String, file: URL) async throws(S3Error) -> String {
        let handle: FileHandle
        let size: Int
        do {
            handle = try FileHandle(forReadingFrom: file)
            size = (try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int) ?? 0
        } catch {
            throw S3Error(.io, "cannot read \(file.path)", cause: error)
        }
        defer { try? handle.close() }
        func read(_ count: Int) async throws(S3Error) -> Data {
            do {
                return try await NIOThreadPool.singleton.runIfActive { try handle.read(upToCount: count) ?? Data() }
            } catch {
                throw S3Error(.io, "cannot read \(file.path)", cause: error)
            }
        }
        var hash = SHA256()
        if size <= Self.multipartThreshold {
            let data = try await read(max(size, 1))
            hash.update(data: data)
            try await put(bucket: bucket, key: key, data: data)
            return SigV4.hex(hash.finalize())
        }
        let created = try await send("POST", bucket: bucket, key: key, query: [("uploads", "")], body: Data())
        guard let uploadID = XMLTree.parse(created.body)?["UploadId"]?.text, !uploadID.isEmpty else {
            throw S3Error(.badResponse, "s3://\(bucket)/\(key): CreateMultipartUpload answered no UploadId")
        }
        do throws(S3Error) {
            var parts: [(number: Int, etag: String)] = []
            while true {
                let data = try await read(Self.partSize)
                if data.isEmpty { break }
                hash.update(data: data)
                let number = parts.count + 1
                let answer = try await send(
                    "PUT", bucket: bucket, key: key, query: [("partNumber", "\(number)"), ("uploadId", uploadID)], body: data,
                    timeout: transferTimeout)
                guard let etag = answer.headers.first(name: "ETag") else {
                    throw S3Error(.badResponse, "s3://\(bucket)/\(key): part \(number) was answered without an ETag")
                }
                parts.append((number, etag))
            }
            let list = parts.map {
                "<Part><PartNumber>\($0.number)</PartNumber><ETag>\(XMLTree.escape($0.etag))</ETag></Part>"
            }.joined()
            let body = Data("<CompleteMultipartUpload>\(list)</CompleteMultipartUpload>".utf8)
            let done = try await send("POST", bucket: bucket, key: key, query: [("uploadId", uploadID)], body: body)
            // CompleteMultipartUpload may fail after its 200 status line: the error is then the body.
            if let tree = XMLTree.parse(done.body), tree.name == "Error" {
                throw S3Error(.badResponse, "s3://\(bucket)/\(key): completing the upload failed: \(tree["Code"]?.text ?? "")")
            }
        } catch {
            _ = try? await send("DELETE", bucket: bucket, key: key, query: [("uploadId", uploadID)], body: nil)
            throw error
        }
        return SigV4.hex(hash.finalize())
    }

    /// The object's bytes, when it is at most `limit` bytes (small files: records, listings).
    public func get(bucket: String, key: String, limit: Int = 64 << 20) async throws(S3Error) -> Data {
        try await send("GET", bucket: bucket, key: key, body: nil, limit: limit, timeout: transferTimeout).body
    }

    /// Streams `key` into the file `file` (replaced whole: written aside, then renamed) and checks its sha256 when
    /// `sha256` is given; a mismatch leaves no file and throws ``S3Error/Code/contentMismatch``. Returns the size and
    /// the sha256 of what was written.
    @discardableResult
    public func download(bucket: String, key: String, to file: URL, sha256 expected: String? = nil)
        async throws(S3Error) -> (size: Int, sha256: String)
    {
        let partial = file.deletingLastPathComponent().appendingPathComponent(".\(file.lastPathComponent).\(UUID().uuidString).part")
        defer { try? FileManager.default.removeItem(at: partial) }
        var lastError: S3Error?
        for attempt in 0..<attempts {
            if attempt > 0 { await backoff(attempt) }
            do {
                let outcome = try await downloadOnce(bucket: bucket, key: key, to: partial)
                if let expected, outcome.sha256 != expected {
                    throw S3Error(
                        .contentMismatch,
                        "s3://\(bucket)/\(key) is not the content expected: sha256 \(outcome.sha256), expected \(expected)")
                }
                do {
                    _ = try? FileManager.default.removeItem(at: file)
                    try FileManager.default.moveItem(at: partial, to: file)
                } catch {
                    throw S3Error(.io, "cannot write \(file.path)", cause: error)
                }
                return outcome
            } catch let error as S3Error where error.code == .unavailable {
                lastError = error
            } catch let error as S3Error {
                throw error
            } catch {
                lastError = S3Error(.unavailable, "s3://\(bucket)/\(key): the download broke off", cause: error)
            }
        }
        throw lastError!
    }

    private func downloadOnce(bucket: String, key: String, to file: URL) async throws -> (size: Int, sha256: String) {
        let response = try await execute("GET", bucket: bucket, key: key, query: [], headers: [], body: nil, timeout: transferTimeout)
        guard (200..<300).contains(response.status.code) else {
            let body = try await response.body.collect(upTo: 64 << 10)
            throw failure(status: response.status.code, body: Data(buffer: body), bucket: bucket, key: key)
        }
        guard FileManager.default.createFile(atPath: file.path, contents: nil) else {
            throw S3Error(.io, "cannot create \(file.path)")
        }
        let handle = try FileHandle(forWritingTo: file)
        defer { try? handle.close() }
        var hash = SHA256()
        var size = 0
        for try await chunk in response.body {
            let bytes = Data(buffer: chunk)
            hash.update(data: bytes)
            size += bytes.count
            try await NIOThreadPool.singleton.runIfActive { try handle.write(contentsOf: bytes) }
        }
        return (size, SigV4.hex(hash.finalize()))
    }

    /// The object's size and ETag; nil when there is no such object.
    public func head(bucket: String, key: String) async throws(S3Error) -> S3Object? {
        do {
            let answer = try await send("HEAD", bucket: bucket, key: key, body: nil)
            return S3Object(
                key: key, size: answer.headers.first(name: "Content-Length").flatMap { Int($0) } ?? 0,
                etag: answer.headers.first(name: "ETag"), lastModified: nil)
        } catch  where error.code == .notFound {
            return nil
        }
    }

    /// Every object whose key starts with `prefix`, following continuation tokens page after page (of `pageSize`
    /// keys at most; the server's limit is 1,000).
    public func list(bucket: String, prefix: String, pageSize: Int = 1000) async throws(S3Error) -> [S3Object] {
        var objects: [S3Object] = []
        var token: String?
        repeat {
            var query = [(name: "list-type", value: "2"), (name: "prefix", value: prefix), (name: "max-keys", value: "\(pageSize)")]
            if let token { query.append((name: "continuation-token", value: token)) }
            let answer = try await send("GET", bucket: bucket, key: nil, query: query, body: nil)
            guard let tree = XMLTree.parse(answer.body), tree.name == "ListBucketResult" else {
                throw S3Error(.badResponse, "s3://\(bucket)/\(prefix): the listing is not a ListBucketResult")
            }
            let dates = ISO8601DateFormatter()
            dates.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            for item in tree.all("Contents") {
                guard let key = item["Key"]?.text else { continue }
                let modified = item["LastModified"]?.text
                objects.append(
                    S3Object(
                        key: key, size: Int(item["Size"]?.text ?? "") ?? 0, etag: item["ETag"]?.text,
                        lastModified: modified.flatMap { dates.date(from: $0) ?? ISO8601DateFormatter().date(from: $0) }))
            }
            token = tree["IsTruncated"]?.text == "true" ? tree["NextContinuationToken"]?.text : nil
        } while token != nil
        return objects
    }

    /// Deletes `keys` (1,000 per request, as the API allows). Keys that were not there are not an error.
    public func delete(bucket: String, keys: [String]) async throws(S3Error) {
        for start in stride(from: 0, to: keys.count, by: 1000) {
            let batch = keys[start..<min(start + 1000, keys.count)]
            let list = batch.map { "<Object><Key>\(XMLTree.escape($0))</Key></Object>" }.joined()
            let body = Data("<Delete><Quiet>true</Quiet>\(list)</Delete>".utf8)
            let md5 = Data(Insecure.MD5.hash(data: body)).base64EncodedString()
            let answer = try await send(
                "POST", bucket: bucket, key: nil, query: [("delete", "")], headers: [("Content-MD5", md5)], body: body)
            if let failed = XMLTree.parse(answer.body)?.all("Error").first {
                throw S3Error(
                    .badResponse,
                    "s3://\(bucket)/\(failed["Key"]?.text ?? ""): not deleted: \(failed["Code"]?.text ?? "")"
                        + " \(failed["Message"]?.text ?? "")")
            }
        }
    }

    // MARK: Requests

    struct Answer {
        var headers: HTTPHeaders
        var body: Data
    }

    /// Sends a request, retrying what may pass on a second try; the answer's body is read whole (up to `limit`).
    private func send(
        _ method: String, bucket: String, key: String?, query: [(name: String, value: String)] = [],
        headers: [(name: String, value: String)] = [], body: Data?, limit: Int = 16 << 20, timeout: TimeAmount? = nil
    ) async throws(S3Error) -> Answer {
        let place = "s3://\(bucket)/\(key ?? "")"
        var lastError: S3Error?
        for attempt in 0..<attempts {
            if attempt > 0 { await backoff(attempt) }
            do {
                let response = try await execute(
                    method, bucket: bucket, key: key, query: query, headers: headers, body: body, timeout: timeout ?? self.timeout)
                let data = Data(buffer: try await response.body.collect(upTo: limit))
                guard (200..<300).contains(response.status.code) else {
                    throw failure(status: response.status.code, body: data, bucket: bucket, key: key ?? "")
                }
                return Answer(headers: response.headers, body: data)
            } catch let error as S3Error where error.code == .unavailable {
                lastError = error
            } catch let error as S3Error {
                throw error
            } catch {
                lastError = S3Error(.unavailable, "\(place): cannot reach \(endpointName)", cause: error)
            }
        }
        throw S3Error(.unavailable, "\(lastError!.message) (\(attempts) attempts)", cause: lastError!.cause.map(Cause.init))
    }

    private struct Cause: Error, CustomStringConvertible { let description: String }

    private var endpointName: String { endpoint.url?.absoluteString ?? "s3.\(endpoint.region).amazonaws.com" }

    /// One signed request.
    private func execute(
        _ method: String, bucket: String, key: String?, query: [(name: String, value: String)],
        headers: [(name: String, value: String)], body: Data?, timeout: TimeAmount
    ) async throws -> HTTPClientResponse {
        let (scheme, host, path) = address(bucket: bucket, key: key)
        let payload = body ?? Data()
        let payloadHash = SigV4.hex(SHA256.hash(data: payload))
        let signed = signer.sign(
            SignableRequest(method: method, host: host, path: path, query: query, headers: headers), payloadHash: payloadHash,
            credentials: credentials, date: Date())
        let encodedQuery = signed.encodedQuery
        var request = HTTPClientRequest(url: "\(scheme)://\(host)\(path)" + (encodedQuery.isEmpty ? "" : "?\(encodedQuery)"))
        request.method = HTTPMethod(rawValue: method)
        for (name, value) in signed.headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(body) }
        return try await http.execute(request, timeout: timeout)
    }

    /// The error for a status other than 2xx, with S3's code and message when the body has them.
    private func failure(status: UInt, body: Data, bucket: String, key: String) -> S3Error {
        let tree = XMLTree.parse(body)
        let code = tree?["Code"]?.text
        let detail = [code, tree?["Message"]?.text].compactMap { $0 }.joined(separator: ": ")
        let text = "s3://\(bucket)/\(key): HTTP \(status)" + (detail.isEmpty ? "" : " (\(detail))")
        switch status {
        case 404: return S3Error(.notFound, text)
        case 403: return S3Error(.accessDenied, text)
        case 412: return S3Error(.preconditionFailed, text)
        case 429, 500...599: return S3Error(.unavailable, text)
        default: return code == "SlowDown" || code == "Throttling" ? S3Error(.unavailable, text) : S3Error(.badResponse, text)
        }
    }

    /// Exponential backoff with full jitter: a random wait up to min(maximum, base × 2^(attempt − 1)).
    private func backoff(_ attempt: Int) async {
        let ceiling = min(maximumBackoff, baseBackoff * (1 << min(attempt - 1, 16)))
        let nanoseconds = ceiling.components.seconds * 1_000_000_000 + ceiling.components.attoseconds / 1_000_000_000
        try? await Task.sleep(nanoseconds: UInt64.random(in: 0...UInt64(max(nanoseconds, 1))))
    }
}

/// `s3://bucket/key` (or a prefix).
public struct S3Location: Sendable, Equatable, CustomStringConvertible {
    public var bucket: String
    public var key: String

    /// Parses `s3://bucket[/key]`; nil when it is not such a URL.
    public init?(_ text: String) {
        guard text.hasPrefix("s3://") else { return nil }
        let rest = text.dropFirst(5)
        let bucket = rest.prefix { $0 != "/" }
        guard !bucket.isEmpty else { return nil }
        self.bucket = String(bucket)
        key = String(rest.dropFirst(bucket.count + 1))
    }

    public init(bucket: String, key: String) {
        self.bucket = bucket
        self.key = key
    }

    public var description: String { "s3://\(bucket)/\(key)" }
}
