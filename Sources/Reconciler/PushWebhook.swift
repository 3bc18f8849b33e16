import Crypto
public import Foundation

/// A forge's push webhook, as `reconcile --watch --webhook` takes it: each delivery's signature checked against the
/// shared secret, then judged. GitHub's form signs the raw body with `X-Hub-Signature-256: sha256=<hex HMAC-SHA256>`
/// and names the event in `X-GitHub-Event` (the delivery in `X-GitHub-Delivery`); the generic form, for other forges
/// and scripts, signs it the same way in `X-Signature` and every delivery is a push. No HTTP here: the listener maps a
/// verdict to a status.
public struct PushWebhook: Sendable {
    /// The largest body read; a larger one is refused unread (413).
    public static let bodyLimit = 1 << 20

    private let secret: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: secret) }
    /// The branch `--watch` follows, as a push names it (`refs/heads/main`).
    public let watchedRef: String

    /// - Parameters:
    ///   - secret: the shared secret, as the forge was given it.
    ///   - ref: the ref `reconcile` follows (`main`, `refs/heads/main`, `origin/main`).
    public init(secret: some DataProtocol, following ref: String) {
        self.secret = Array(secret)
        watchedRef = Self.branchRef(ref)
    }

    /// What to do with one delivery.
    public enum Verdict: Equatable, Sendable {
        /// A push to the watched branch: reconcile now.
        case reconcile
        /// GitHub's `ping` when the hook is made: answered, nothing done.
        case ping
        /// Signed, but nothing to do (another event, another branch): why.
        case ignored(String)
        /// Not signed with the secret: why (never the secret or the expected signature).
        case refused(String)
    }

    /// Judges a delivery from its headers (looked up by lower-case name) and raw body.
    public func judge(header: (String) -> String?, body: some DataProtocol) -> Verdict {
        guard let signature = header("x-hub-signature-256") ?? header("x-signature") else {
            return .refused("no X-Hub-Signature-256 or X-Signature header")
        }
        guard isSigned(body, signature: signature) else {
            return .refused("the signature does not match the body signed with the secret")
        }
        let event = header("x-github-event")
        switch event {
        case "ping": return .ping
        case "push", nil: break
        case let other?: return .ignored("the event is '\(other.prefix(40))', not push")
        }
        let pushed = (try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])?["ref"] as? String
        guard let pushed else {
            // The generic form need not say which branch: any signed delivery is a push.
            return event == nil ? .reconcile : .ignored("the push names no ref")
        }
        guard pushed == watchedRef else { return .ignored("a push to \(pushed.prefix(200)), not \(watchedRef)") }
        return .reconcile
    }

    /// Whether `signature` (`sha256=<64 hex digits>`) is the body's HMAC-SHA256 under the secret, compared in
    /// constant time.
    public func isSigned(_ body: some DataProtocol, signature: String) -> Bool {
        guard signature.hasPrefix("sha256="), let code = Self.bytes(hex: signature.dropFirst(7)), code.count == 32 else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: Array(body), using: key)
    }

    /// `sha256=<hex>` for a body: what a forge sends.
    public func signature(of body: some DataProtocol) -> String {
        "sha256=" + HMAC<SHA256>.authenticationCode(for: Array(body), using: key).map { String(format: "%02x", $0) }.joined()
    }

    /// The `refs/heads/…` ref a push of the followed branch names.
    static func branchRef(_ ref: String) -> String {
        if ref.hasPrefix("refs/heads/") { return ref }
        if ref.hasPrefix("refs/remotes/") {
            return "refs/heads/" + ref.dropFirst("refs/remotes/".count).split(separator: "/", maxSplits: 1).last.map(String.init)!
        }
        if ref.hasPrefix("origin/") { return "refs/heads/" + ref.dropFirst("origin/".count) }
        return "refs/heads/" + ref
    }

    private static func bytes(hex: Substring) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
