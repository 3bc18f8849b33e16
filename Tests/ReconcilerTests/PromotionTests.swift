import Foundation
import GitStore
import Manifests
import Reconciler
import Registry
import StagecraftTesting
import Testing

@Suite struct PromotionTests {
    func deployment(_ text: String, _ model: String) throws -> ModelDeployment {
        let (manifest, diagnostics) = EnvironmentManifest.decode(text, file: "environments/qa.yaml")
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        return try #require(manifest?.deployment(model))
    }

    static let environment = """
        apiVersion: stagecraft/v1
        kind: Environment
        metadata: {name: qa}
        spec:
          upstream: dev
          server: {host: 127.0.0.1, port: 8102}
          models:
            a:
              version: ~            # set by promotion
              source: ~
            b: {version: "0123456789ab", source: '1111111', gates: {auc: ">= 0.9"}}
            c:
              source: 2222222   # source first
              version: 3f2a9c1e5b7d
        """

    @Test func onlyTheTwoScalarsChange() throws {
        let text = Self.environment
        for (model, version, source) in [("a", "aaaaaaaaaaaa", "bbbbbbbbbbbb"), ("b", "cccccccccccc", "dddddddddddd"), ("c", "eeeeeeeeeeee", "ffffffffffff")] {
            let edited = try Promotion.pin(text, deployment: try deployment(text, model), version: version, source: source)
            let before = text.components(separatedBy: "\n"), after = edited.components(separatedBy: "\n")
            #expect(before.count == after.count)
            let changed = zip(before, after).filter { $0 != $1 }
            #expect(changed.count == (model == "b" ? 1 : 2), "\(changed)")
            // The result decodes to the new pin, and everything else decodes as before.
            let pinned = try deployment(edited, model)
            #expect(pinned.version == version && pinned.source == source)
            let (old, _) = EnvironmentManifest.decode(text, file: "environments/qa.yaml")
            let (new, _) = EnvironmentManifest.decode(edited, file: "environments/qa.yaml")
            #expect(old?.models.filter { $0.model != model }.map(\.model) == new?.models.filter { $0.model != model }.map(\.model))
            #expect(new?.deployment(model)?.gates.map(\.description) == old?.deployment(model)?.gates.map(\.description))
        }
        let edited = try Promotion.pin(text, deployment: try deployment(text, "a"), version: "aaaaaaaaaaaa", source: "bbbbbbbbbbbb")
        #expect(edited.contains("      version: aaaaaaaaaaaa            # set by promotion\n      source: bbbbbbbbbbbb\n"))
        let flow = try Promotion.pin(text, deployment: try deployment(text, "b"), version: "cccccccccccc", source: "dddddddddddd")
        #expect(flow.contains(#"b: {version: cccccccccccc, source: dddddddddddd, gates: {auc: ">= 0.9"}}"#))
    }

    @Test func anEntryWithoutTheKeysIsRefusedWithItsPlace() throws {
        let text = Self.environment.replacingOccurrences(of: "      source: ~\n", with: "")
        let entry = try deployment(text, "a")
        #expect(throws: ReconcileError.self) { try Promotion.pin(text, deployment: entry, version: "aaaaaaaaaaaa", source: "bbbbbbbbbbbb") }
    }

    @Test func withoutAVerificationUpstreamOnlyForceCommitsAndSaysSo() throws {
        let scratch = try ScratchRepository.example()
        let repository = try Repository.open(at: scratch.path)
        let workspace = try Workspace(repository: repository, toolVersion: "test")
        let built = try workspace.builder.build(model: "penguins", ref: "HEAD")
        let state = try workspace.openState()
        let promotion = Promotion(workspace: workspace, state: state)
        let author = Signature(name: "Ada", email: "ada@example.com")
        #expect(throws: ReconcileError.self) {
            try promotion.promote(model: "penguins", to: "qa", version: built.digest, force: false, branch: nil, author: author)
        }
        #expect(try scratch.gitLine(["rev-list", "--count", "HEAD"]) == "1")
        let forced = try promotion.promote(model: "penguins", to: "qa", version: String(built.digest.prefix(12)), force: true, branch: "promote-penguins", author: author)
        #expect(forced.forced && forced.branch == "promote-penguins")
        // On its own branch, from main's tip; main and the working tree are untouched.
        #expect(try scratch.gitLine(["rev-list", "--count", "main"]) == "1")
        #expect(try scratch.gitLine(["rev-parse", "promote-penguins~1"]) == scratch.gitLine(["rev-parse", "main"]))
        let message = try scratch.git(["log", "-1", "--format=%B", "promote-penguins"])
        #expect(message.contains("Stagecraft-Forced: it has not passed verification in 'dev'"))
        #expect(message.contains("Stagecraft-Evidence: none"))
        #expect(try scratch.gitLine(["log", "-1", "--format=%an", "promote-penguins"]) == "Ada")
        #expect(try scratch.gitLine(["status", "--porcelain"]) == "")
    }
}
