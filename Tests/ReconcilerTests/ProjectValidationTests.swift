import Foundation
import GitStore
import Manifests
import Reconciler
import StagecraftTesting
import Testing

/// Checks that need the whole project at a ref, read from real git objects.
@Suite struct ProjectValidationTests {
    func check(_ scratch: ScratchRepository, ref: String = "HEAD") throws -> (Project, [String]) {
        let source = try GitProjectSource(repository: try Repository.open(at: scratch.path), ref: ref)
        let (project, diagnostics) = try Project.check(source)
        return (project, diagnostics.map(\.description))
    }

    @Test func theExampleAtTheProjectRootIsValid() throws {
        let (project, diagnostics) = try check(try ScratchRepository.example())
        #expect(diagnostics == [])
        #expect(project.models.keys.sorted() == ["breast-cancer", "penguins"])
        #expect(project.environmentOrder == ["dev", "qa", "prod"])
        #expect(project.environments["dev"]?.track == true)
        #expect(project.downstreams(of: "dev") == ["qa"])
    }

    @Test func crossFileProblemsAreAllReportedTogether() throws {
        let scratch = try ScratchRepository.example()
        let qa = try scratch.directory.read("environments/qa.yaml")
        let prod = try scratch.directory.read("environments/prod.yaml")
        try scratch.commit([
            // Same port as dev, and a model with no manifest.
            "environments/qa.yaml": qa.replacingOccurrences(of: "port: 8102", with: "port: 8101")
                .replacingOccurrences(of: "    penguins:\n", with: "    pengiuns:\n"),
            // An upstream that does not exist.
            "environments/prod.yaml": prod.replacingOccurrences(of: "upstream: qa", with: "upstream: staging"),
            // A regression model with a classification gate in an environment.
            "manifests/houses.yaml": """
                apiVersion: stagecraft/v1
                kind: Model
                metadata:
                  name: houses
                spec:
                  task: regression
                  data: {train: data/houses/train.csv, test: data/houses/test.csv, target: price}
                  trainer: {algorithm: linear-regression}

                """,
            "environments/lab.yaml": """
                apiVersion: stagecraft/v1
                kind: Environment
                metadata:
                  name: lab
                spec:
                  server: {port: 8109}
                  gates: {auc: ">= 0.9", rmse: "<= 10"}
                  models:
                    houses: {version: ~, source: ~}

                """,
        ], message: "break things")

        let (_, diagnostics) = try check(scratch)
        #expect(diagnostics == [
            "environments/lab.yaml:7:11: gate 'auc' does not apply to regression model 'houses' (expected one of: rmse, mae, r2, latencyP99Ms, errorRate)",
            "environments/prod.yaml:6:13: upstream 'staging' is not an environment (expected one of: dev, lab, qa)",
            "environments/qa.yaml:7:35: port 8101 is already used by environment 'dev' (environments/dev.yaml:7:35)",
            "environments/qa.yaml:17:5: model 'pengiuns' has no manifest (expected manifests/pengiuns.yaml); did you mean 'penguins'?",
            "manifests/houses.yaml:7:17: data file 'data/houses/train.csv' does not exist at HEAD (\(try scratch.gitLine(["rev-parse", "--short=12", "HEAD"]))) (nor a DVC pointer 'data/houses/train.csv.dvc')",
            "manifests/houses.yaml:7:46: data file 'data/houses/test.csv' does not exist at HEAD (\(try scratch.gitLine(["rev-parse", "--short=12", "HEAD"]))) (nor a DVC pointer 'data/houses/test.csv.dvc')",
        ])
        // The files are read at the ref, not from the working tree: the previous commit is still valid.
        #expect(try check(scratch, ref: "HEAD~1").1 == [])
    }

    @Test func aGRPCPortIsUniqueAcrossEnvironmentsAndTheirHTTPPorts() throws {
        let scratch = try ScratchRepository.example()
        let qa = try scratch.directory.read("environments/qa.yaml"), prod = try scratch.directory.read("environments/prod.yaml")
        try scratch.commit([
            "environments/qa.yaml": qa.replacingOccurrences(of: "port: 8102}", with: "port: 8102, grpcPort: 8101}"),
            "environments/prod.yaml": prod.replacingOccurrences(of: "port: 8103}", with: "port: 8103, grpcPort: 9103}"),
        ])
        #expect(try check(scratch).1 == ["environments/qa.yaml:7:51: grpcPort 8101 is already used by environment 'dev' (environments/dev.yaml:7:35)"])
        try scratch.commit(["environments/qa.yaml": qa.replacingOccurrences(of: "port: 8102}", with: "port: 8102, grpcPort: 9103}")])
        let second = try check(scratch).1
        #expect(second == ["environments/qa.yaml:7:51: grpcPort 9103 is already used by environment 'prod' (environments/prod.yaml:7:51)"], "\(second)")
    }

    @Test func anUpstreamCycleIsReportedOnce() throws {
        let scratch = try ScratchRepository.example()
        let dev = try scratch.directory.read("environments/dev.yaml")
        try scratch.commit(["environments/dev.yaml": dev.replacingOccurrences(of: "spec:\n", with: "spec:\n  upstream: prod\n")])
        let (project, diagnostics) = try check(scratch)
        #expect(diagnostics == ["environments/dev.yaml:6:13: upstream chain forms a cycle: dev → prod → qa → dev"])
        #expect(Set(project.environmentOrder) == ["dev", "qa", "prod"])
    }

    @Test func aTrafficSplitMustIncludeThePinnedVersion() throws {
        let scratch = try ScratchRepository.example()
        let qa = try scratch.directory.read("environments/qa.yaml")
        try scratch.commit(["environments/qa.yaml": qa.replacingOccurrences(of: """
                penguins:
                  version: ~
                  source: ~
            """, with: """
                penguins:
                  version: 3f2a9c1e5b7d
                  source: 8c1d2e4f0a9b
                  traffic:
                    - {version: 7b21e0d44a10, weight: 100}
            """)])
        #expect(try check(scratch).1 == ["environments/qa.yaml:18:16: version 3f2a9c1e5b7d of 'penguins' is missing from its traffic split"])
    }

    @Test func aRepositoryWithoutStagecraftFilesSaysSo() throws {
        let scratch = try ScratchRepository()
        try scratch.commit(["README.md": "hello\n"])
        let (_, diagnostics) = try check(scratch, ref: "main")
        #expect(diagnostics == [".:1:1: no manifests/ or environments/ folder at main (\(try scratch.gitLine(["rev-parse", "--short=12", "HEAD"]))): not a Stagecraft repository (run 'stagecraft init')"])
    }
}
