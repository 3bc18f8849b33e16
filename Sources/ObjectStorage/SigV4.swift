import Crypto
public import Foundation

/// The keys a request is signed with. Its description never shows the secret or the token.
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    public var description: String { "access key \(accessKeyID.prefix(4))…" }
}

/// A request as Signature Version 4 sees it: the method, the host (with a port other than 80 and 443), the path as
/// sent (each segment already percent-encoded), the query as name/value pairs (not encoded) and the headers.
public struct SignableRequest: Sendable {
    public var method: String
    public var host: String
    public var path: String
    public var query: [(name: String, value: String)]
    /// Headers to sign and send, by name as given (the signer lower-cases names).
    public var headers: [(name: String, value: String)]

    public init(
        method: String, host: String, path: String, query: [(name: String, value: String)] = [],
        headers: [(name: String, value: String)] = []
    ) {
        self.method = method
        self.host = host
        self.path = path
        self.query = query
        self.headers = headers
    }

    /// The query string as sent, encoded and sorted as it is signed.
    public var encodedQuery: String { SigV4.canonicalQuery(query) }
}

/// AWS Signature Version 4 for S3 (the `Authorization` header form), as botocore's `S3SigV4Auth` computes it.
public struct SigV4: Sendable {
    public var region: String
    public var service: String

    public init(region: String, service: String = "s3") {
        self.region = region
        self.service = service
    }

    /// The sha256 of an empty body, as hex.
    public static let emptyPayloadHash = hex(SHA256.hash(data: Data()))

    /// `request` with `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` (with a session token) and
    /// `Authorization` added.
    public func sign(
        _ request: SignableRequest, payloadHash: String, credentials: AWSCredentials, date: Date
    ) -> SignableRequest {
        var signed = request
        let stamp = Self.timestamp(date)
        signed.headers.removeAll {
            ["x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "authorization"]
                .contains($0.name.lowercased())
        }
        signed.headers.append(("x-amz-content-sha256", payloadHash))
        signed.headers.append(("x-amz-date", stamp))
        if let token = credentials.sessionToken { signed.headers.append(("x-amz-security-token", token)) }
        if !signed.headers.contains(where: { $0.name.lowercased() == "host" }) { signed.headers.append(("host", request.host)) }
        let (canonical, signedNames) = Self.canonicalRequest(signed, payloadHash: payloadHash)
        let day = String(stamp.prefix(8))
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let toSign = "AWS4-HMAC-SHA256\n\(stamp)\n\(scope)\n\(Self.hex(SHA256.hash(data: Data(canonical.utf8))))"
        var key = SymmetricKey(data: Data("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Data(toSign.utf8), using: key))
        signed.headers.append(
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedNames), Signature=\(signature)"
            ))
        return signed
    }

    /// The canonical request and the signed header names (`;`-joined).
    static func canonicalRequest(_ request: SignableRequest, payloadHash: String) -> (String, String) {
        var headers: [String: [String]] = [:]
        for (name, value) in request.headers {
            let trimmed = value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
            headers[name.lowercased(), default: []].append(trimmed)
        }
        let names = headers.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(headers[$0]!.joined(separator: ","))\n" }.joined()
        let signedNames = names.joined(separator: ";")
        let text = [
            request.method.uppercased(), request.path.isEmpty ? "/" : request.path, canonicalQuery(request.query),
            canonicalHeaders, signedNames, payloadHash,
        ].joined(separator: "\n")
        return (text, signedNames)
    }

    /// Name/value pairs encoded (RFC 3986, `/` too) and sorted by name, then value.
    static func canonicalQuery(_ query: [(name: String, value: String)]) -> String {
        query.map { (encode($0.name), encode($0.value)) }.sorted { $0 < $1 }.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// Percent-encodes every byte but the unreserved characters (A–Z a–z 0–9 `-` `_` `.` `~`), and `/` when
    /// `keepSlash`: how S3 keys go into paths and how query values are signed.
    public static func encode(_ text: String, keepSlash: Bool = false) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC.
    static func timestamp(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
    }

    /// The sha256 of `data` as lowercase hex: a payload hash.
    public static func payloadHash(_ data: Data) -> String { hex(SHA256.hash(data: data)) }

    static func hex<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
        bytes.map { String(format: "%02x", $0) }.joined()
    }
}
