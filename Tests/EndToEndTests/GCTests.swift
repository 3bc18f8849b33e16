import Foundation
import StagecraftTesting
import Testing

/// `stagecraft gc` on a repository with 20 builds of which 5 are pinned: exactly the 15 others go, locally and in S3.
@Suite struct GCTests {
    @Test func dryRunThenGCDeleteExactlyTheUnpinnedBuilds() throws {
        guard S3Server.available else { Issue.record(Comment(rawValue: S3Server.missing)); return }
        let s3 = try S3Server()
        defer { s3.stop() }
        try s3.createBucket("team-models")
        let scratch = try ScratchRepository.example()
        try SharedStoresTests.useSharedStores(scratch, s3: s3)
        // 20 builds of penguins, one per learning rate, each from a commit of its own.
        let manifest = try scratch.directory.read("manifests/penguins.yaml")
        var builds: [(digest: String, source: String)] = []
        for step in 1...20 {
            let rate = String(format: "%.2f", 0.05 * Double(step))
            let source = try scratch.commit(
                ["manifests/penguins.yaml": manifest.replacingOccurrences(of: "learningRate: 0.1", with: "learningRate: \(rate)")],
                message: "penguins: learning rate \(rate)")
            let built = try scratch.stagecraft(["build", "penguins", "--output", "json"])
            #expect(built.status == 0, "\(built.stderr)")
            builds.append((try #require((GitOpsLoopTests.json(built.stdout) as? [String: Any])?["digest"] as? String), source))
        }
        #expect(Set(builds.map(\.digest)).count == 20)
        // 5 are pinned at the head: qa's version, prod's version, and a dev split of two with a shadow.
        try scratch.setPin("penguins", version: builds[3].digest, source: builds[3].source, in: "qa")
        try scratch.setPin("penguins", version: builds[7].digest, source: builds[7].source, in: "prod")
        try scratch.setPin("penguins", version: builds[11].digest, source: builds[11].source, in: "dev")
        var dev = try scratch.directory.read("environments/dev.yaml")
        dev = dev.replacingOccurrences(
            of: "      source: \(builds[11].source.prefix(12))\n",
            with: "      source: \(builds[11].source.prefix(12))\n      traffic:\n        - {version: \(builds[11].digest.prefix(12)), weight: 90}\n"
                + "        - {version: \(builds[12].digest.prefix(12)), weight: 10}\n"
                + "      shadow: {version: \(builds[13].digest.prefix(12))}\n")
        try scratch.commit(["environments/dev.yaml": dev], message: "dev: a split and a shadow")
        #expect(try scratch.stagecraft(["validate"]).status == 0)
        let pinned = Set([3, 7, 11, 12, 13].map { builds[$0].digest })

        func remote() throws -> Set<String> {
            Set(try SharedStoresTests.remoteObjects(s3).keys.compactMap { key in
                key.hasSuffix("/build.json") ? key.split(separator: "/")[1].description : nil
            })
        }
        func local() throws -> Set<String> {
            Set(try FileManager.default.contentsOfDirectory(atPath: scratch.directory.appending(".stagecraft/cache/artifacts"))
                .filter { $0.count == 64 })
        }
        #expect(try remote().count == 20 && local().count == 20)

        // Within the default window (30 days) every build is new: nothing goes.
        let recent = try scratch.stagecraft(["gc", "--dry-run"])
        #expect(recent.status == 0 && recent.stdout.contains("would delete 0 versions"), "\(recent.stdout)\(recent.stderr)")

        let dry = try scratch.stagecraft(["gc", "--dry-run", "--keep", "0", "--output", "json"])
        #expect(dry.status == 0, "\(dry.stderr)")
        let plan = try #require(GitOpsLoopTests.json(dry.stdout) as? [String: Any])
        let named = Set((plan["deleted"] as? [[String: Any]] ?? []).compactMap { $0["digest"] as? String })
        #expect(named == Set(builds.map(\.digest)).subtracting(pinned))
        #expect((plan["freedBytes"] as? Int ?? 0) > 0)
        #expect(try remote().count == 20 && local().count == 20, "a dry run deleted something")

        let gc = try scratch.stagecraft(["gc", "--keep", "0"])
        #expect(gc.status == 0, "\(gc.stderr)")
        #expect(gc.stdout.contains("deleted 15 versions"), "\(gc.stdout)")
        #expect(try remote() == pinned)
        #expect(try local() == pinned)
        #expect(try scratch.stagecraft(["gc", "--keep", "0"]).stdout.contains("deleted 0 versions"))
    }

    @Test func whatServesIsKeptEvenWhenNoFilePinsItAnyMore() throws {
        let scratch = try ScratchRepository.example()
        try scratch.useFreePorts()
        defer { scratch.stopServers() }
        #expect(try scratch.stagecraft(["reconcile", "--env", "dev"]).status == 0)
        let serving = Set(try FileManager.default.contentsOfDirectory(atPath: scratch.directory.appending(".stagecraft/artifacts"))
            .filter { $0.count == 64 })
        #expect(serving.count == 2)
        // dev no longer pins them, and is not reconciled: its server still serves both, the state store says so.
        let dev = try scratch.directory.read("environments/dev.yaml").components(separatedBy: "\n").map { line in
            line.hasPrefix("      version:") ? "      version: ~" : line.hasPrefix("      source:") ? "      source: ~" : line
        }.joined(separator: "\n")
        try scratch.commit(["environments/dev.yaml": dev], message: "dev: unpin everything")
        let gc = try scratch.stagecraft(["gc", "--keep", "0", "--output", "json"])
        #expect(gc.status == 0, "\(gc.stderr)")
        #expect(((GitOpsLoopTests.json(gc.stdout) as? [String: Any])?["deleted"] as? [Any])?.isEmpty == true, "\(gc.stdout)")
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: scratch.directory.appending(".stagecraft/artifacts"))
            .filter { $0.count == 64 })
        #expect(left == serving)
    }
}
