import CompressNIO
public import Foundation
import GitStore
import HTTPTypes
public import Hummingbird
import Logging
import Manifests
import NIOCore
import NIOPosix
public import Reconciler
import Registry
public import ServiceLifecycle
import Synchronization

/// `stagecraft console`: the web console's HTTP server.
public struct ConsoleServer: Sendable {
    /// Applies an environment's reconcile now, as `stagecraft reconcile --env` does, with `user` as the actor.
    public typealias Reconcile = @Sendable (_ environment: String, _ user: ConsoleUser) throws -> ReconcileReport

    /// What the pages read.
    public let site: ConsoleSite
    /// Who may act.
    public let access: ConsoleAccess
    let pages: Pages
    let feed: ChangeFeed
    let sampler = TrafficSampler()
    let boards = BoardCache()
    let reconcile: Reconcile

    /// - Parameters:
    ///   - repository: how the footer names the repository.
    public init(site: ConsoleSite, access: ConsoleAccess, toolVersion: String, repository: String, reconcile: @escaping Reconcile) {
        self.site = site
        self.access = access
        self.reconcile = reconcile
        pages = Pages(toolVersion: toolVersion, repository: repository)
        feed = ChangeFeed(site: site)
    }

    /// The HTTP application and the change feed, to run together in a service group (the feed first to stop, so
    /// that open event streams end and the server's graceful shutdown can finish).
    public func services(host: String, port: Int, onListening: @escaping @Sendable (String) -> Void) -> [any Service] {
        var logger = Logger(label: "stagecraft.console")
        logger.logLevel = .critical
        let application = Application(
            router: router(), configuration: .init(address: .hostname(host, port: port), serverName: "stagecraft-console"),
            onServerRunning: { channel in onListening("http://\(host):\(channel.localAddress?.port ?? port)") }, logger: logger)
        return [application, feed]
    }

    // MARK: Routes

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: SecurityHeaders())
        router.get("/") { request, _ in await self.html(request) { viewer in try self.boardPage(viewer) } }
        router.get("/api/board") { request, _ in await self.json(request) { try self.board() } }
        router.get("/models/:model") { request, context in
            let model = context.parameters.get("model") ?? ""
            return await self.html(request) { viewer in try self.modelPage(model, request: request, viewer: viewer) }
        }
        router.get("/api/models/:model") { request, context in
            let model = context.parameters.get("model") ?? ""
            return await self.json(request) {
                guard ModelManifest.isValidName(model),
                    let page = try self.site.modelPage(model, page: Self.page(request), compare: Self.compare(request))
                else { throw NotFound(what: "model '\(model.prefix(64))'") }
                return page
            }
        }
        router.get("/environments/:environment") { request, context in
            let name = context.parameters.get("environment") ?? ""
            return await self.html(request) { viewer in try self.environmentPage(name, viewer: viewer) }
        }
        router.get("/api/environments/:environment") { request, context in
            let name = context.parameters.get("environment") ?? ""
            return await self.json(request) {
                guard ModelManifest.isValidName(name), let page = try self.site.environmentPage(name, sampler: self.sampler) else {
                    throw NotFound(what: "environment '\(name.prefix(64))'")
                }
                return page
            }
        }
        router.get("/events") { _, _ in self.events() }
        router.get("/static/console.css") { request, _ in
            Self.respond(request, .ok, type: "text/css; charset=utf-8", ByteBuffer(string: Templates.stylesheet), cache: "max-age=300")
        }
        router.get("/static/console.js") { request, _ in
            Self.respond(request, .ok, type: "text/javascript; charset=utf-8", ByteBuffer(string: Templates.script), cache: "max-age=300")
        }
        router.get("/login") { request, _ in
            await self.document(request, status: .ok, title: "Sign in", body: self.pages.login(error: nil), viewer: self.viewer(request))
        }
        router.post("/login") { request, _ in await self.signIn(request) }
        router.get("/login/:code") { request, context in await self.redeem(request, context.parameters.get("code") ?? "") }
        router.post("/logout") { request, _ in await self.signOut(request) }
        for action in ConsoleAction.Kind.allCases {
            router.get("/actions/\(action.rawValue)") { request, _ in await self.confirmation(action, request) }
            router.post("/actions/\(action.rawValue)") { request, _ in await self.act(action, request) }
        }
        return router
    }

    // MARK: Pages

    func viewer(_ request: Request) -> Viewer {
        guard let session = access.session(request.cookies[ConsoleAccess.cookie]?.value) else { return .anonymous }
        return Viewer(user: session.user, csrf: session.csrf)
    }

    /// The names in the navigation bar, and the commit shown in the footer.
    func frame() throws -> (environments: [String], commit: String) {
        let (commit, _, names) = try site.project()
        return (names, commit.hex)
    }

    struct Rendered: Sendable {
        var title: String
        var body: String
        var refresh: Int?
        /// Whether the page follows changes (a confirmation keeps showing what the user confirms).
        var live = true
        var status: HTTPResponse.Status = .ok
    }

    /// Renders on a thread of the blocking pool (git, the state store and the environments' servers are read
    /// synchronously); a failure becomes a page saying what went wrong.
    func html(_ request: Request, _ render: @escaping @Sendable (Viewer) throws -> Rendered) async -> Response {
        let viewer = self.viewer(request)
        do {
            let (rendered, frame) = try await NIOThreadPool.singleton.runIfActive { (try render(viewer), try self.frame()) }
            return htmlResponse(
                request, rendered.status,
                pages.page(
                    title: rendered.title, body: rendered.body, viewer: viewer, environments: frame.environments, commit: frame.commit,
                    refresh: rendered.refresh, live: rendered.live))
        } catch let missing as NotFound {
            return await document(
                request, status: .notFound, title: "Not found", body: pages.notice("Not found", [("bad", "No \(missing.what).")]),
                viewer: viewer)
        } catch {
            return await document(
                request, status: .internalServerError, title: "Error",
                body: pages.notice("Something went wrong", [("bad", Self.message(error))]),
                viewer: viewer)
        }
    }

    /// A page whose body is made (sign-in, notices), with the navigation as far as it can be read.
    func document(_ request: Request, status: HTTPResponse.Status, title: String, body: String, viewer: Viewer) async -> Response {
        let frame = (try? await NIOThreadPool.singleton.runIfActive { try self.frame() }) ?? ([], "")
        return htmlResponse(request, status, pages.page(title: title, body: body, viewer: viewer, environments: frame.0, commit: frame.1))
    }

    func boardPage(_ viewer: Viewer) throws -> Rendered {
        Rendered(title: "Board", body: pages.board(try board(), viewer: viewer))
    }

    /// The board as of now: built again when a branch moved or a record was written, else at most
    /// ``BoardCache/maximumAge`` old (what only the environments' servers know, such as one that died, shows by then).
    func board() throws -> Board {
        let stamp = try site.changeStamp()
        if let board = boards.board(stamp: stamp) { return board }
        let board = try site.board()
        boards.keep(board, stamp: stamp)
        return board
    }

    func modelPage(_ model: String, request: Request, viewer: Viewer) throws -> Rendered {
        guard ModelManifest.isValidName(model) else { throw NotFound(what: "model '\(model.prefix(64))'") }
        let compare = Self.compare(request)
        guard let page = try site.modelPage(model, page: Self.page(request), compare: compare) else {
            throw NotFound(what: "model '\(model)'")
        }
        return Rendered(title: model, body: pages.model(page, viewer: viewer, compare: compare))
    }

    func environmentPage(_ name: String, viewer: Viewer) throws -> Rendered {
        guard ModelManifest.isValidName(name), let page = try site.environmentPage(name, sampler: sampler) else {
            throw NotFound(what: "environment '\(name.prefix(64))'")
        }
        return Rendered(
            title: name, body: pages.environment(page, viewer: viewer), refresh: 5)
    }

    func json(_ request: Request, _ build: @escaping @Sendable () throws -> some Encodable & Sendable) async -> Response {
        do {
            let data = try await NIOThreadPool.singleton.runIfActive { () throws -> Data in
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                encoder.dateEncodingStrategy = .iso8601
                return try encoder.encode(try build())
            }
            return Self.respond(request, .ok, type: "application/json", ByteBuffer(bytes: data))
        } catch let missing as NotFound {
            return Self.jsonError(.notFound, "no \(missing.what)")
        } catch {
            return Self.jsonError(.internalServerError, Self.message(error))
        }
    }

    static func jsonError(_ status: HTTPResponse.Status, _ message: String) -> Response {
        let body = (try? JSONEncoder().encode(["error": message])) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// Server-sent events: `change` when what pages show may have changed, a comment every 15 s otherwise.
    func events() -> Response {
        guard let (key, stream) = feed.subscribe() else {
            return Response(status: .serviceUnavailable, headers: [.retryAfter: "5"], body: .init(byteBuffer: ByteBuffer(string: "busy\n")))
        }
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"],
            body: ResponseBody { writer in
                defer { self.feed.unsubscribe(key) }
                try await writer.write(ByteBuffer(string: "retry: 2000\n: listening\n\n"))
                var count = 0
                for await event in stream {
                    switch event {
                    case .change:
                        count += 1
                        try await writer.write(ByteBuffer(string: "event: change\ndata: \(count)\n\n"))
                    case .keepAlive:
                        try await writer.write(ByteBuffer(string: ": still here\n\n"))
                    }
                }
                try await writer.finish(nil)
            })
    }

    func htmlResponse(_ request: Request, _ status: HTTPResponse.Status, _ text: String) -> Response {
        Self.respond(request, status, type: "text/html; charset=utf-8", ByteBuffer(string: text))
    }

    /// An answer of `type`, gzip-compressed when the client accepts it and it is worth it.
    static func respond(
        _ request: Request, _ status: HTTPResponse.Status, type: String, _ body: ByteBuffer, cache: String = "no-store"
    ) -> Response {
        var headers: HTTPFields = [.contentType: type, .cacheControl: cache, .vary: "Accept-Encoding"]
        var body = body
        if body.readableBytes > 1_024, Self.acceptsGzip(request.headers[.acceptEncoding]),
            let compressed = try? body.compress(with: .gzip())
        {
            headers[.contentEncoding] = "gzip"
            body = compressed
        }
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }

    /// Whether an `Accept-Encoding` header lists gzip (without `q=0`).
    static func acceptsGzip(_ header: String?) -> Bool {
        guard let header else { return false }
        return header.split(separator: ",").contains { item in
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            return parts.first?.lowercased() == "gzip"
                && !parts.dropFirst().contains { $0.replacingOccurrences(of: " ", with: "") == "q=0" }
        }
    }

    static func page(_ request: Request) -> Int { Form.parse(request.uri.query ?? "")["page"].flatMap { Int($0) } ?? 1 }

    static func compare(_ request: Request) -> (String, String)? {
        let query = Form.parse(request.uri.query ?? "")
        guard let a = query["a"], let b = query["b"], !a.isEmpty, !b.isEmpty else { return nil }
        return (a, b)
    }

    static func message(_ error: any Error) -> String {
        (error as? ReconcileError)?.message ?? String(describing: error)
    }

    // MARK: Signing in

    func signIn(_ request: Request) async -> Response {
        let form = await Self.form(request)
        let access = self.access
        let user = try? await NIOThreadPool.singleton.runIfActive { form["token"].flatMap { access.user(forToken: $0) } }
        guard let user = user ?? nil else {
            return await document(
                request, status: .unauthorized, title: "Sign in", body: pages.login(error: "That token is not known here."),
                viewer: .anonymous)
        }
        return startSession(user)
    }

    func redeem(_ request: Request, _ code: String) async -> Response {
        let access = self.access
        let user = try? await NIOThreadPool.singleton.runIfActive { access.redeemLogin(code) }
        guard let user = user ?? nil else {
            return await document(
                request, status: .unauthorized, title: "Sign in",
                body: pages.login(error: "That login link is unknown, used or expired; run stagecraft console --login for a new one."),
                viewer: .anonymous)
        }
        return startSession(user)
    }

    func startSession(_ user: ConsoleUser) -> Response {
        let id = access.startSession(for: user)
        var response = Response(status: .seeOther, headers: [.location: "/"])
        response.setCookie(
            Cookie(
                name: ConsoleAccess.cookie, value: id, maxAge: Int(ConsoleAccess.sessionLifetime), path: "/", httpOnly: true,
                sameSite: .strict))
        return response
    }

    func signOut(_ request: Request) async -> Response {
        let form = await Self.form(request)
        let cookie = request.cookies[ConsoleAccess.cookie]?.value
        if case .failure(let denial) = access.authorize(cookie: cookie, csrf: form["csrf"]) { return await denied(request, denial) }
        access.endSession(cookie)
        var response = Response(status: .seeOther, headers: [.location: "/"])
        response.setCookie(Cookie(name: ConsoleAccess.cookie, value: "", maxAge: 0, path: "/", httpOnly: true, sameSite: .strict))
        return response
    }

    func denied(_ request: Request, _ denial: AccessDenial) async -> Response {
        switch denial {
        case .notSignedIn:
            return await document(
                request, status: .unauthorized, title: "Sign in to act",
                body: pages.notice("Sign in to act", [("bad", "Only signed-in users may act; everyone else reads.")], back: "/login"),
                viewer: .anonymous)
        case .forbidden(let why):
            return await document(
                request, status: .forbidden, title: "Forbidden", body: pages.notice("Forbidden", [("bad", why)]), viewer: .anonymous)
        }
    }

    /// The fields of a form body (at most 64 KiB).
    static func form(_ request: Request) async -> [String: String] {
        guard let body = try? await request.body.collect(upTo: 64 << 10) else { return [:] }
        return Form.parse(String(buffer: body))
    }
}

/// The last board built, with the change stamp it was built at.
final class BoardCache: Sendable {
    static let maximumAge: TimeInterval = 5
    private let last = Mutex<(stamp: String, built: Date, board: Board)?>(nil)

    func board(stamp: String, now: Date = Date()) -> Board? {
        last.withLock { last in
            guard let last, last.stamp == stamp, now.timeIntervalSince(last.built) < Self.maximumAge else { return nil }
            return last.board
        }
    }

    func keep(_ board: Board, stamp: String, now: Date = Date()) { last.withLock { $0 = (stamp, now, board) } }
}

/// A page or JSON document that does not exist.
struct NotFound: Error {
    var what: String
}

/// `application/x-www-form-urlencoded`, as forms post it and queries carry it.
enum Form {
    static func parse(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&").prefix(64) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String? { part.replacingOccurrences(of: "+", with: " ").removingPercentEncoding }
            guard let name = decode(parts[0]), let value = decode(parts.count > 1 ? parts[1] : "") else { continue }
            fields[name] = value
        }
        return fields
    }
}

/// Headers on every answer: no framing, no sniffing, scripts and styles only from the console itself (inline styles
/// allowed for version colours), forms only to it.
struct SecurityHeaders: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.contentSecurityPolicy] =
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            + "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        return response
    }
}
