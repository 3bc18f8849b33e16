import Foundation
import Reconciler
import Testing

/// The push webhook's signature check and verdicts.
@Suite struct PushWebhookTests {
    /// GitHub's published example ("Validating webhook deliveries"): this secret and body give this signature.
    @Test func gitHubsTestVectorIsValidAndAnyChangeIsNot() {
        let webhook = PushWebhook(secret: Data("It's a Secret to Everybody".utf8), following: "main")
        let body = Data("Hello, World!".utf8)
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        #expect(webhook.signature(of: body) == expected)
        #expect(webhook.isSigned(body, signature: expected))
        #expect(webhook.isSigned(body, signature: expected.uppercased().replacingOccurrences(of: "SHA256=", with: "sha256=")))
        #expect(!webhook.isSigned(Data("Hello, World?".utf8), signature: expected))
        #expect(!webhook.isSigned(body, signature: String(expected.dropLast()) + "f"))
        #expect(!webhook.isSigned(body, signature: String(expected.dropLast(2))))
        #expect(!webhook.isSigned(body, signature: "sha1=" + expected.dropFirst(7)))
        #expect(!webhook.isSigned(body, signature: "sha256=" + String(repeating: "zz", count: 32)))
        #expect(!PushWebhook(secret: Data("another".utf8), following: "main").isSigned(body, signature: expected))
    }

    @Test func eachDeliveryGetsItsVerdict() {
        let webhook = PushWebhook(secret: Data("s3cret".utf8), following: "origin/main")
        #expect(webhook.watchedRef == "refs/heads/main")
        func judge(_ body: String, event: String?, signed: Bool = true, generic: Bool = false) -> PushWebhook.Verdict {
            let data = Data(body.utf8)
            var headers: [String: String] = [:]
            if let event { headers["x-github-event"] = event }
            if signed { headers[generic ? "x-signature" : "x-hub-signature-256"] = webhook.signature(of: data) }
            return webhook.judge(header: { headers[$0] }, body: data)
        }
        #expect(judge(#"{"ref": "refs/heads/main"}"#, event: "push") == .reconcile)
        #expect(judge(#"{"ref": "refs/heads/dev"}"#, event: "push") == .ignored("a push to refs/heads/dev, not refs/heads/main"))
        #expect(judge(#"{"zen": "x"}"#, event: "ping") == .ping)
        #expect(judge("{}", event: "issues") == .ignored("the event is 'issues', not push"))
        #expect(judge("not json", event: "push") == .ignored("the push names no ref"))
        #expect(judge(#"{"ref": "refs/heads/main"}"#, event: "push", signed: false) == .refused("no X-Hub-Signature-256 or X-Signature header"))
        // The generic form: X-Signature, no event header; a body without a ref is a push too.
        #expect(judge(#"{"ref": "refs/heads/main"}"#, event: nil, generic: true) == .reconcile)
        #expect(judge("anything", event: nil, generic: true) == .reconcile)
        #expect(judge(#"{"ref": "refs/heads/dev"}"#, event: nil, generic: true) == .ignored("a push to refs/heads/dev, not refs/heads/main"))
        let forged = webhook.judge(header: { $0 == "x-hub-signature-256" ? webhook.signature(of: Data("other".utf8)) : nil }, body: Data("{}".utf8))
        #expect(forged == .refused("the signature does not match the body signed with the secret"))
    }

    @Test func theFollowedRefIsTheBranchAPushNames() {
        for (ref, expected) in [("main", "refs/heads/main"), ("refs/heads/release", "refs/heads/release"), ("origin/main", "refs/heads/main"),
                                ("refs/remotes/origin/prod", "refs/heads/prod")] {
            #expect(PushWebhook(secret: Data("k".utf8), following: ref).watchedRef == expected)
        }
    }
}
