import Foundation
import StagecraftTesting
import Testing

@testable import WebConsole

@Suite struct AccessTests {
    let folder: ScratchDirectory
    let access: ConsoleAccess
    let ada = ConsoleUser(name: "Ada Lovelace", email: "ada@example.com")

    init() throws {
        folder = try ScratchDirectory("console-access")
        access = ConsoleAccess(root: URL(fileURLWithPath: folder.appending(".stagecraft")))
    }

    @Test func tokensAreKeptHashedInAFileOnlyTheOwnerReads() throws {
        let token = try access.issueToken(for: ada)
        #expect(ConsoleAccess.plausible(token))
        let text = try folder.read(".stagecraft/console-token")
        #expect(!text.contains(token))
        #expect(text == "\(ConsoleAccess.hash(token)) Ada Lovelace <ada@example.com>\n")
        let mode = try FileManager.default.attributesOfItem(atPath: access.tokenFile.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(access.user(forToken: token) == ada)
        #expect(access.user(forToken: String(token.dropLast()) + (token.hasSuffix("0") ? "1" : "0")) == nil)
        #expect(access.user(forToken: "../../etc/passwd") == nil)
        #expect(access.user(forToken: ConsoleAccess.hash(token)) == nil)  // the hash itself is not a token
    }

    @Test func aLoginLinkSignsInOnceAndExpires() throws {
        let code = try access.issueLogin(for: ada)
        #expect(!(try folder.read(".stagecraft/console-logins")).contains(code))
        #expect(access.redeemLogin(code) == ada)
        #expect(access.redeemLogin(code) == nil)
        let old = try access.issueLogin(for: ada, now: Date().addingTimeInterval(-ConsoleAccess.loginLifetime - 1))
        #expect(access.redeemLogin(old) == nil)
        // Expired links are dropped when the next one is issued.
        _ = try access.issueLogin(for: ada, now: Date().addingTimeInterval(-ConsoleAccess.loginLifetime - 1))
        _ = try access.issueLogin(for: ada)
        #expect(try folder.read(".stagecraft/console-logins").split(separator: "\n").count == 1)
    }

    @Test func actingNeedsASessionAndItsCSRFToken() throws {
        let cookie = access.startSession(for: ada)
        let session = try #require(access.session(cookie))
        #expect(session.user == ada)
        #expect(access.authorize(cookie: nil, csrf: session.csrf).failure == .notSignedIn)
        #expect(access.authorize(cookie: "0" + cookie.dropFirst(), csrf: session.csrf).failure == .notSignedIn)
        #expect(access.authorize(cookie: cookie, csrf: nil).failure.map(\.isForbidden) == true)
        #expect(access.authorize(cookie: cookie, csrf: String(repeating: "0", count: 64)).failure.map(\.isForbidden) == true)
        #expect(access.authorize(cookie: cookie, csrf: session.csrf).success?.user == ada)
        // Sessions end when signed out, and after their lifetime.
        #expect(access.session(cookie, now: Date().addingTimeInterval(ConsoleAccess.sessionLifetime + 1)) == nil)
        access.endSession(cookie)
        #expect(access.session(cookie) == nil)
    }

    @Test func sessionsAreBounded() throws {
        let first = access.startSession(for: ada, now: Date().addingTimeInterval(-10))
        for _ in 0..<ConsoleAccess.sessionLimit { _ = access.startSession(for: ada) }
        #expect(access.session(first) == nil)
    }

    @Test(arguments: [
        ("Ada Lovelace <ada@example.com>", true), ("  Bob <bob@example.com> ", true), ("ada@example.com", false),
        ("<ada@example.com>", false), ("Ada <ada example.com>", false), ("Ada <ada@example.com>\nEvil <e@x>", false),
        ("Ada <a@b> <c@d>", false),
    ])
    func identities(text: String, valid: Bool) {
        #expect((ConsoleUser.parse(text) != nil) == valid, "\(text)")
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let failure) = self { return failure }
        return nil
    }
    var success: Success? {
        if case .success(let success) = self { return success }
        return nil
    }
}

extension AccessDenial {
    var isForbidden: Bool {
        if case .forbidden = self { return true }
        return false
    }
}
