import Crypto
public import Foundation
public import GitStore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Someone who may act in the console: the git identity their actions are committed as.
public struct ConsoleUser: Sendable, Codable, Hashable, CustomStringConvertible {
    public var name: String
    public var email: String

    /// Someone named `name` with the address `email`.
    public init(name: String, email: String) {
        self.name = name
        self.email = email
    }

    /// `Name <email>`, as git and the approval trailers write a person.
    public var description: String { "\(name) <\(email)>" }

    /// The git signature of an action taken now.
    public var signature: Signature { Signature(name: name, email: email) }

    /// Reads `Name <email>`; nil when it is not of that form or holds a control character.
    public static func parse(_ text: String) -> ConsoleUser? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasSuffix(">"), let open = trimmed.lastIndex(of: "<"),
            !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else { return nil }
        let name = trimmed[..<open].trimmingCharacters(in: .whitespaces)
        let email = String(trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)])
        guard !name.isEmpty, !name.contains(where: { "<>".contains($0) }), email.contains("@"),
            !email.contains(where: { " <>\t".contains($0) }), name.count <= 200,
            email.count <= 200
        else { return nil }
        return ConsoleUser(name: name, email: email)
    }
}

/// Why a request may not act.
public enum AccessDenial: Error, Sendable, Equatable {
    /// Not signed in: 401.
    case notSignedIn
    /// Signed in, but the form's CSRF token or the request's origin is wrong: 403.
    case forbidden(String)
}

/// Who may act in the console, and the sessions of those signed in.
///
/// Two files under `.stagecraft/`, both mode 0600, keep only SHA-256 hashes of secrets:
/// - `console-token`: one line per token, `<sha256 of the token> <Name <email>>`; a token is typed into the sign-in
///   form (or given with `Authorization: Bearer` to `/api`).
/// - `console-logins`: one-time login links (`stagecraft console --login`), `<sha256> <expiry> <Name <email>>`; a
///   link signs in once, within 15 minutes.
///
/// Sessions live in memory (at most ``sessionLimit``, the oldest ended first): a cookie `HttpOnly; SameSite=Strict`
/// names one, and each has a CSRF token every form carries.
public final class ConsoleAccess: Sendable {
    /// One signed-in browser: who, the token its forms carry, and when it signed in.
    public struct Session: Sendable {
        public var user: ConsoleUser
        public var csrf: String
        public var started: Date
    }

    /// The session cookie's name.
    public static let cookie = "stagecraft_session"
    /// How long a login link stays good.
    public static let loginLifetime: TimeInterval = 15 * 60
    /// How long a session lasts.
    public static let sessionLifetime: TimeInterval = 12 * 3600
    /// How many sessions are kept at once; the oldest ends when one more starts.
    public static let sessionLimit = 1_000

    /// `.stagecraft/` of the repository.
    public let root: URL
    private let sessions = Mutex<[String: Session]>([:])

    /// Access whose files live in `root` (the repository's `.stagecraft/`).
    public init(root: URL) { self.root = root }

    public var tokenFile: URL { root.appendingPathComponent("console-token") }
    public var loginFile: URL { root.appendingPathComponent("console-logins") }

    // MARK: Issuing

    /// A new token for `user`, written (hashed) to `console-token`; the token itself is returned once, to print.
    public func issueToken(for user: ConsoleUser) throws -> String {
        let token = Self.secret()
        try rewrite(tokenFile) { $0 + ["\(Self.hash(token)) \(user)"] }
        return token
    }

    /// A one-time login code for `user`, good for ``loginLifetime``.
    public func issueLogin(for user: ConsoleUser, now: Date = Date()) throws -> String {
        let code = Self.secret()
        let expiry = Int((now + Self.loginLifetime).timeIntervalSince1970)
        // Expired links are dropped whenever one is issued, so the file stays small.
        try rewrite(loginFile) { lines in
            lines.filter { line in Self.fields(line).map { Double($0.1) ?? 0 > now.timeIntervalSince1970 } ?? false }
                + ["\(Self.hash(code)) \(expiry) \(user)"]
        }
        return code
    }

    // MARK: Signing in

    /// The user whose login link `code` is, consuming it; nil when it is unknown, used or expired.
    public func redeemLogin(_ code: String, now: Date = Date()) -> ConsoleUser? {
        guard Self.plausible(code) else { return nil }
        let wanted = Self.hash(code)
        var found: ConsoleUser?
        try? rewrite(loginFile) { lines in
            lines.filter { line in
                guard let (hash, expiry, user) = Self.fields(line) else { return false }
                if Self.equal(hash, wanted) {
                    if (Double(expiry) ?? 0) > now.timeIntervalSince1970 { found = ConsoleUser.parse(user) }
                    return false
                }
                return true
            }
        }
        return found
    }

    /// The user `token` was issued to; nil when no line of `console-token` holds its hash.
    public func user(forToken token: String) -> ConsoleUser? {
        guard Self.plausible(token), let text = try? String(contentsOf: tokenFile, encoding: .utf8) else { return nil }
        let wanted = Self.hash(token)
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2, Self.equal(String(parts[0]), wanted) { return ConsoleUser.parse(String(parts[1])) }
        }
        return nil
    }

    /// Starts a session for `user`: the cookie value to set.
    public func startSession(for user: ConsoleUser, now: Date = Date()) -> String {
        let id = Self.secret()
        sessions.withLock { sessions in
            sessions = sessions.filter { now.timeIntervalSince($0.value.started) < Self.sessionLifetime }
            if sessions.count >= Self.sessionLimit, let oldest = sessions.min(by: { $0.value.started < $1.value.started }) {
                sessions[oldest.key] = nil
            }
            sessions[Self.hash(id)] = Session(user: user, csrf: Self.secret(), started: now)
        }
        return id
    }

    /// The live session a cookie value names.
    public func session(_ cookie: String?, now: Date = Date()) -> Session? {
        guard let cookie, Self.plausible(cookie) else { return nil }
        return sessions.withLock { sessions in
            guard let session = sessions[Self.hash(cookie)], now.timeIntervalSince(session.started) < Self.sessionLifetime else {
                return nil
            }
            return session
        }
    }

    /// Ends the session a cookie value names (signing out).
    public func endSession(_ cookie: String?) {
        guard let cookie else { return }
        _ = sessions.withLock { $0.removeValue(forKey: Self.hash(cookie)) }
    }

    /// The session that may act: signed in, with the session's CSRF token in the form.
    public func authorize(cookie: String?, csrf: String?) -> Result<Session, AccessDenial> {
        guard let session = session(cookie) else { return .failure(.notSignedIn) }
        guard let csrf, Self.equal(csrf, session.csrf) else {
            return .failure(.forbidden("the form's CSRF token is missing or wrong; reload the page and try again"))
        }
        return .success(session)
    }

    // MARK: Secrets and files

    /// 32 random bytes as 64 hex digits.
    static func secret() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(format: "%016llx", generator.next() as UInt64) }.joined()
    }

    static func hash(_ secret: String) -> String {
        SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// A secret as issued: 64 hex digits (anything else is not looked up).
    static func plausible(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// Compares in time independent of where they differ.
    static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for index in x.indices { difference |= x[index] ^ y[index] }
        return difference == 0
    }

    private static func fields(_ line: String) -> (String, String, String)? {
        let parts = line.split(separator: " ", maxSplits: 2)
        return parts.count == 3 ? (String(parts[0]), String(parts[1]), String(parts[2])) : nil
    }

    /// Rewrites `file` (mode 0600) under an exclusive lock, from its lines.
    private func rewrite(_ file: URL, _ change: ([String]) -> [String]) throws {
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let lockPath = file.path + ".lock"
        let descriptor = open(lockPath, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: lockPath]) }
        defer { close(descriptor) }
        flock(descriptor, LOCK_EX)
        defer { flock(descriptor, LOCK_UN) }
        let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
        let lines = change(text.split(separator: "\n").map(String.init))
        let temporary = file.path + ".tmp"
        let out = open(temporary, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o600)
        guard out >= 0 else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: temporary]) }
        let data = Array((lines.map { $0 + "\n" }.joined()).utf8)
        let written = data.withUnsafeBytes { write(out, $0.baseAddress, $0.count) }
        fchmod(out, 0o600)
        close(out)
        guard written == data.count, rename(temporary, file.path) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: file.path])
        }
    }
}
