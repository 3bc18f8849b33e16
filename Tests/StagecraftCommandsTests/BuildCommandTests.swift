import Foundation
import StagecraftCommands
import StagecraftTesting
import Testing

@Suite struct BuildCommandTests {
    @Test func buildsThenReusesTheArtifact() async throws {
        let scratch = try ScratchRepository.example()
        let head = try scratch.gitLine(["rev-parse", "--short=12", "HEAD"])
        let first = await Stagecraft.execute(["build", "breast-cancer", "--repo", scratch.path])
        #expect(first.exitCode == 0, "\(first.errorOutput)")
        let lines = first.output.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("✓ breast-cancer "))
        #expect(lines[0].contains(" built from \(head) in "))
        #expect(lines[1].hasPrefix("  holdout: accuracy 0.9"))
        let digest = try #require(lines[2].split(separator: "/").last.map(String.init))
        #expect(digest.count == 64)
        for file in ["model.json", "metrics.json", "build.json"] {
            #expect(FileManager.default.fileExists(atPath: scratch.directory.appending(".stagecraft/artifacts/\(digest)/\(file)")))
        }
        let second = await Stagecraft.execute(["build", "breast-cancer", "--repo", scratch.path])
        #expect(second.exitCode == 0)
        #expect(second.output.hasPrefix("✓ breast-cancer \(digest.prefix(12)) reused: the artifact store has it (built from \(head))"))
        // The state of the work tree is untouched: .stagecraft/ is ignored.
        #expect(try scratch.git(["status", "--porcelain"]) == "")
    }

    @Test func twoBuildsOfTheSameInputsAreByteIdenticalAndTheDigestFollowsTheInputs() async throws {
        let one = try ScratchRepository.example(), two = try ScratchRepository.example()
        // An unrelated commit in the second repository: same inputs, same digest.
        try two.commit(["README.md": "notes\n"])
        func build(_ scratch: ScratchRepository) async throws -> [String: Any] {
            let result = await Stagecraft.execute(["build", "penguins", "--repo", scratch.path, "--output", "json"])
            #expect(result.exitCode == 0, "\(result.errorOutput)")
            return try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        }
        let a = try await build(one), b = try await build(two)
        let digest = try #require(a["digest"] as? String)
        #expect(b["digest"] as? String == digest)
        #expect(a["reused"] as? Bool == false)
        for file in ["model.json", "metrics.json"] {
            let left = try Data(contentsOf: URL(fileURLWithPath: one.directory.appending(".stagecraft/artifacts/\(digest)/\(file)")))
            let right = try Data(contentsOf: URL(fileURLWithPath: two.directory.appending(".stagecraft/artifacts/\(digest)/\(file)")))
            #expect(left == right, "\(file) differs")
        }
        // A comment in the manifest does not change the version; a data change does.
        let manifest = try one.directory.read("manifests/penguins.yaml")
        try one.commit(["manifests/penguins.yaml": manifest + "# a comment\n"])
        #expect(try await build(one)["reused"] as? Bool == true)
        let data = try one.directory.read("data/penguins/train.csv")
        try one.commit(["data/penguins/train.csv": data.replacingOccurrences(of: "Adelie,Torgersen,39.1,", with: "Adelie,Torgersen,39.2,")])
        let changed = try await build(one)
        #expect(changed["digest"] as? String != digest)
        #expect(changed["reused"] as? Bool == false)
        let builds = await Stagecraft.execute(["builds", "penguins", "--repo", one.path])
        #expect(builds.output.split(separator: "\n").count == 3)  // header + two versions
    }

    @Test func anUnknownModelOrABadManifestFailsWithExit1() async throws {
        let scratch = try ScratchRepository.example()
        let unknown = await Stagecraft.execute(["build", "pengiuns", "--repo", scratch.path])
        #expect(unknown.exitCode == 1)
        #expect(unknown.errorOutput.hasPrefix("error: no model 'pengiuns' at HEAD ("))
        let manifest = try scratch.directory.read("manifests/penguins.yaml")
        try scratch.commit(["manifests/penguins.yaml": manifest.replacingOccurrences(of: "trees: 100", with: "tres: 100")])
        let bad = await Stagecraft.execute(["build", "penguins", "--repo", scratch.path])
        #expect(bad.exitCode == 1)
        #expect(bad.errorOutput.hasPrefix("manifests/penguins.yaml:20:33: unknown key 'tres' in spec.trainer.params; did you mean 'trees'?"))
        // The other model still builds: one bad manifest does not block the rest.
        #expect(await Stagecraft.execute(["build", "breast-cancer", "--repo", scratch.path]).exitCode == 0)
    }
}
