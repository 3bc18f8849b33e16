import Foundation
import Learning
import Registry
import StagecraftTesting
import Testing

@Suite struct VersionDigestTests {
    @Test func theDigestIsSHA256OfTheDocumentedText() throws {
        let digest = VersionDigest.compute(canonicalSpec: #"{"task":"regression"}"#, dataHashes: ["data/b.csv": "bb", "data/a.csv": "aa"], formatVersion: 1)
        // The same text hashed by an independent tool.
        let text = "stagecraft-version\nformat 1\nspec {\"task\":\"regression\"}\ndata data/a.csv aa\ndata data/b.csv bb\n"
        let expected = try ProcessRunner.run("sha256sum", [], input: Data(text.utf8)).stdout.prefix(64)
        #expect(digest == String(expected))
        #expect(VersionDigest.short(digest) == String(expected.prefix(12)))
        #expect(VersionDigest.compute(canonicalSpec: #"{"task":"regression"}"#, dataHashes: ["data/a.csv": "aa", "data/b.csv": "bc"], formatVersion: 1) != digest)
        #expect(VersionDigest.compute(canonicalSpec: #"{"task":"regression"}"#, dataHashes: ["data/a.csv": "aa", "data/b.csv": "bb"], formatVersion: 2) != digest)
    }
}

@Suite struct ArtifactStoreTests {
    func sampleModel() throws -> (ModelFile, MetricsFile) {
        let data = try CSVReader.read(Data("x,y\n1,a\n2,a\n3,b\n4,b\n5,a\n6,b\n".utf8), source: "t.csv")
        let outcome = try Training.run(TrainingRequest(task: .binaryClassification, target: "y", algorithm: .logisticRegression), train: data, test: data)
        let record = BuildRecord(digest: String(repeating: "c", count: 64), model: "m", data: [:], parameters: outcome.parameters, tool: "test")
        return (outcome.modelFile(task: .binaryClassification, target: "y", build: record), MetricsFile(holdout: outcome.holdoutMetrics, search: []))
    }

    func info(_ digest: String, model: String = "m", at seconds: Double) -> BuildInfo {
        BuildInfo(digest: digest, model: model, algorithm: "logistic-regression", task: "binary-classification", source: String(repeating: "1", count: 40),
                  ref: "HEAD", data: [:], parameters: [:], metrics: ["auc": 1], timings: [:], tool: "test", createdAt: Date(timeIntervalSince1970: seconds))
    }

    @Test func storesWholeVersionsAndListsThemNewestFirst() throws {
        let scratch = try ScratchDirectory()
        let store = ArtifactStore(root: URL(fileURLWithPath: scratch.appending("artifacts")))
        let (model, metrics) = try sampleModel()
        let first = String(repeating: "a", count: 64), second = String(repeating: "b", count: 64)
        #expect(!store.contains(first))
        try store.store(digest: first, model: model, metrics: metrics, build: info(first, at: 1_000))
        try store.store(digest: second, model: model, metrics: metrics, build: info(second, model: "n", at: 2_000))
        #expect(store.contains(first))
        #expect(try store.model(first) == model)
        #expect(try store.metrics(first) == metrics)
        #expect(try store.builds().map(\.digest) == [second, first])
        #expect(store.resolve(String(first.prefix(12))) == first)
        #expect(store.resolve("ffffffffffff") == nil)
        // Storing the same digest again keeps the first files; nothing is left in staging.
        try store.store(digest: first, model: model, metrics: metrics, build: info(first, at: 3_000))
        #expect(try store.buildInfo(first).createdAt == Date(timeIntervalSince1970: 1_000))
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.root.path).sorted() == [first, second])
    }

    @Test func anIncompleteFolderIsNotAVersionAndIsReplaced() throws {
        let scratch = try ScratchDirectory()
        let store = ArtifactStore(root: URL(fileURLWithPath: scratch.appending("artifacts")))
        let digest = String(repeating: "d", count: 64)
        try scratch.write("{}", to: "artifacts/\(digest)/model.json")
        #expect(!store.contains(digest))
        #expect(try store.builds().isEmpty)
        let (model, metrics) = try sampleModel()
        try store.store(digest: digest, model: model, metrics: metrics, build: info(digest, at: 1))
        #expect(store.contains(digest))
        #expect(try store.model(digest) == model)
        let missing = #expect(throws: RegistryError.self) { try store.model(String(repeating: "e", count: 64)) }
        #expect(missing?.message == "version eeeeeeeeeeee is not in the artifact store (\(store.root.path))")
    }
}
