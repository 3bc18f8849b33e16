public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A minimal HTTP/1.1 client over one keep-alive TCP connection to a server on this machine: what the
/// reconciler uses to drive an environment's server, and what tests use to send many requests cheaply.
/// Not safe to share between tasks; open one per task.
public final class HTTPConnection {
    /// The socket; -1 once closed. (A class whose initializer throws after every property is set is deinitialized,
    /// so the socket is closed in one place only, `deinit`: closing it twice could close another thread's file.)
    private let fd: Int32
    private var buffer: [UInt8] = []
    public let host: String
    public let port: Int

    /// One response, Content-Length framed.
    public struct Response: Sendable {
        public let status: Int
        /// Header names in lowercase.
        public let headers: [String: String]
        public let body: Data
        public var text: String { String(decoding: body, as: UTF8.self) }
        /// The body as a JSON object, or empty when it is not one.
        public var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body) as? [String: Any]) ?? [:] }
    }

    /// Connects to `host` (an IPv4 address or `localhost`) on `port`.
    /// - Parameter timeout: the longest wait for any one read or write, in seconds.
    public init(host: String = "127.0.0.1", port: Int, timeout: Double = 30) throws(HTTPConnectionError) {
        self.host = host
        self.port = port
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HTTPConnectionError(.connect, "cannot open a socket") }
        var limit = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr(host == "localhost" ? "127.0.0.1" : host)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw HTTPConnectionError(.connect, "cannot connect to \(host):\(port)") }  // deinit closes fd
    }

    deinit { if fd >= 0 { close(fd) } }

    /// True when something accepts TCP connections on `host:port`.
    public static func isListening(host: String = "127.0.0.1", port: Int) -> Bool {
        (try? HTTPConnection(host: host, port: port, timeout: 1)) != nil
    }

    /// Sends one request and reads its response.
    public func send(_ method: String, _ path: String, body: Data? = nil, headers: [String: String] = [:]) throws(HTTPConnectionError)
        -> Response
    {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        head += "\r\n"
        var bytes = Array(head.utf8)
        if let body { bytes += body }
        var sent = 0
        while sent < bytes.count {
            let written = bytes[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written > 0 else { throw HTTPConnectionError(.exchange, "cannot send to \(host):\(port)") }
            sent += written
        }
        var headerEnd: Int?
        while headerEnd == nil {
            headerEnd = find([13, 10, 13, 10])
            if headerEnd == nil { try fill() }
        }
        let headerText = String(decoding: buffer[0..<headerEnd!], as: UTF8.self)
        var lines = headerText.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else {
            throw HTTPConnectionError(
                .malformed, "\(host):\(port) answered '\(statusLine)', "
                    + "not HTTP")
        }
        var fields: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = Int(fields["content-length"] ?? "0") ?? 0
        let start = headerEnd! + 4
        while buffer.count < start + length { try fill() }
        let body = Data(buffer[start..<(start + length)])
        buffer.removeFirst(start + length)
        return Response(status: status, headers: fields, body: body)
    }

    private func find(_ pattern: [UInt8]) -> Int? {
        guard buffer.count >= pattern.count else { return nil }
        for index in 0...(buffer.count - pattern.count)
        where buffer[index] == pattern[0] && Array(buffer[index..<(index + pattern.count)]) == pattern {
            return index
        }
        return nil
    }

    private func fill() throws(HTTPConnectionError) {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else {
            throw HTTPConnectionError(
                .exchange,
                count == 0
                    ? "\(host):\(port) closed the connection"
                    : "no answer from "
                        + "\(host):\(port) in time")
        }
        buffer += chunk[0..<count]
    }
}

/// A connection that could not be made, or a request without a complete answer.
public struct HTTPConnectionError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// No connection could be made (nothing listens, no socket).
        public static let connect = Code("connect")
        /// The request could not be sent, or no complete answer came in time.
        public static let exchange = Code("exchange")
        /// The answer is not HTTP this client reads.
        public static let malformed = Code("malformed")
    }

    public let code: Code
    /// What failed, for the user.
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
