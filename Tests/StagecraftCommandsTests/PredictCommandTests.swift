import Foundation
import Learning
import Registry
import StagecraftCommands
import StagecraftTesting
import Testing

@Suite struct PredictCommandTests {
    /// The example with penguins built and pinned in dev; returns the repository and the digest.
    static func pinnedExample() async throws -> (ScratchRepository, String) {
        let scratch = try ScratchRepository.example()
        let digest = try await builtDigest("penguins", in: scratch)
        try scratch.pin("penguins", version: digest)
        return (scratch, digest)
    }

    @Test func predictionsEqualTheStoredModels() async throws {
        let (scratch, digest) = try await Self.pinnedExample()
        let output = scratch.directory.appending("scored.csv")
        let result = await Stagecraft.execute(["predict", "penguins", "--env", "dev", "--input", scratch.directory.appending("data/penguins/test.csv"),
                                               "--output", output, "--repo", scratch.path])
        #expect(result.exitCode == 0, "\(result.errorOutput)")
        #expect(result.errorOutput.hasPrefix("68 rows predicted with penguins \(digest.prefix(12)) (dev) → "))
        let scored = try CSVReader.read(Data(contentsOf: URL(fileURLWithPath: output)), source: "scored.csv")
        let model = try ArtifactStore(root: URL(fileURLWithPath: scratch.directory.appending(".stagecraft/artifacts"))).model(digest)
        let test = try CSVReader.read(Data(contentsOf: URL(fileURLWithPath: scratch.directory.appending("data/penguins/test.csv"))), source: "test.csv")
        let expected = try model.predict(test)
        #expect((0..<scored.rowCount).map { scored.column("prediction")!.text(at: $0) } == expected.labels)
        guard case .numeric(let adelie)? = scored.column("probability_Adelie") else { Issue.record("no probability column"); return }
        #expect(adelie == (0..<test.rowCount).map { expected.probabilities![$0 * 3] })
    }

    @Test func aModelTheEnvironmentDoesNotRunIsAnError() async throws {
        let (scratch, _) = try await Self.pinnedExample()
        let input = scratch.directory.appending("data/breast-cancer/test.csv")
        let result = await Stagecraft.execute(["predict", "breast-cancer", "--env", "dev", "--input", input, "--repo", scratch.path])
        #expect(result.exitCode == 1)
        #expect(result.errorOutput == "error: environment 'dev' runs no version of 'breast-cancer' at HEAD (\(try scratch.gitLine(["rev-parse", "--short=12", "HEAD"])))\n")
    }
}
