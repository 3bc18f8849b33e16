import Foundation
import StagecraftCommands
import StagecraftTesting
import Testing

@Suite struct ValidateCommandTests {
    @Test func theExampleIsValid() async throws {
        let scratch = try ScratchRepository.example()
        let result = await Stagecraft.execute(["validate", "--repo", scratch.path])
        let head = try scratch.gitLine(["rev-parse", "--short=12", "HEAD"])
        #expect(result.exitCode == 0)
        #expect(result.output == "✓ valid at HEAD (\(head)): 2 models (breast-cancer, penguins), 3 environments (dev, qa, prod)\n")
        #expect(result.errorOutput == "")
    }

    @Test func aBrokenCopyListsEveryProblemAndExitsOne() async throws {
        let scratch = try ScratchRepository.example()
        let model = try scratch.directory.read("manifests/penguins.yaml")
        let qa = try scratch.directory.read("environments/qa.yaml")
        try scratch.commit([
            "manifests/penguins.yaml": model.replacingOccurrences(of: "algorithm: gradient-boosting", with: "algorithm: gradient-boost")
                .replacingOccurrences(of: "seed: 7", with: "seed: seven"),
            "environments/qa.yaml": qa.replacingOccurrences(of: "auc: \">= 0.95\"", with: "auc: \"at least 0.95\""),
        ])
        let head = try scratch.gitLine(["rev-parse", "--short=12", "HEAD"])
        let result = await Stagecraft.execute(["validate", "--repo", scratch.path])
        #expect(result.exitCode == 1)
        #expect(result.output == """
            environments/qa.yaml:10:10: gate 'auc' must be '<op> <number>' or '<op> serving [+|- <number>]' with op one of >=, <=, >, < (such as ">= 0.9" or ">= serving - 0.005"), found 'at least 0.95'
            manifests/penguins.yaml:19:16: unknown algorithm 'gradient-boost'; did you mean 'gradient-boosting'? (expected one of: logistic-regression, linear-regression, gradient-boosting)
            manifests/penguins.yaml:21:11: expected a whole number for 'spec.trainer.seed', found 'seven'
            ✗ 3 problems at HEAD (\(head))

            """)

        // The working tree is not what is read: the previous commit is still valid.
        #expect(await Stagecraft.execute(["validate", "--repo", scratch.path, "--ref", "HEAD~1"]).exitCode == 0)
    }

    @Test func jsonOutputIsMachineReadable() async throws {
        let scratch = try ScratchRepository.example()
        let model = try scratch.directory.read("manifests/penguins.yaml")
        try scratch.commit(["manifests/penguins.yaml": model.replacingOccurrences(of: "seed: 7", with: "seed: -1")])
        let result = await Stagecraft.execute(["validate", "--repo", scratch.path, "--output", "json"])
        #expect(result.exitCode == 1)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        #expect(report["valid"] as? Bool == false)
        #expect(report["commit"] as? String == (try scratch.gitLine(["rev-parse", "HEAD"])))
        #expect(report["environments"] as? [String] == ["dev", "qa", "prod"])
        let problems = try #require(report["problems"] as? [[String: Any]])
        #expect(problems.count == 1)
        #expect(problems.first?["message"] as? String == "'spec.trainer.seed' must be between 0 and 2147483647, found -1")
        let location = problems.first?["location"] as? [String: Any]
        #expect(location?["file"] as? String == "manifests/penguins.yaml")
        #expect(location?["line"] as? Int == 21)
        #expect(location?["column"] as? Int == 11)
    }

    @Test func usageErrorsExit64AndGitErrorsExit1() async throws {
        let scratch = try ScratchRepository.example()
        let unknownOption = await Stagecraft.execute(["validate", "--bogus"])
        #expect(unknownOption.exitCode == 64)
        #expect(unknownOption.errorOutput.contains("Unknown option '--bogus'"))
        #expect(await Stagecraft.execute(["frobnicate"]).exitCode == 64)
        #expect(await Stagecraft.execute(["validate", "--output", "yaml"]).exitCode == 64)

        let badRef = await Stagecraft.execute(["validate", "--repo", scratch.path, "--ref", "no-such-branch"])
        #expect(badRef.exitCode == 1)
        #expect(badRef.errorOutput == "error: cannot resolve 'no-such-branch' to a commit in \(scratch.path) (libgit2: revspec 'no-such-branch' not found)\n")
    }

    @Test func versionAndHelp() async {
        let version = await Stagecraft.execute(["--version"])
        #expect(version.exitCode == 0)
        #expect(version.output == "\(Stagecraft.version)\n")
        let help = await Stagecraft.execute(["validate", "--help"])
        #expect(help.exitCode == 0)
        #expect(help.output.contains("stagecraft validate --repo ../models --ref origin/main --output json"))
    }
}

@Suite struct InitCommandTests {
    @Test func initCreatesAValidRepositoryWithOneCleanCommit() async throws {
        let scratch = try ScratchDirectory()
        let target = scratch.appending("models")
        let result = await Stagecraft.execute(["init", target])
        #expect(result.exitCode == 0, "\(result.errorOutput)")
        #expect(result.output.hasPrefix("✓ initialized a Stagecraft repository in \(target) (commit "))
        let log = try ProcessRunner.run("git", ["-C", target, "log", "--format=%s", "--name-only"])
        #expect(log.stdout == """
            Set up Stagecraft: example model and dev, qa, prod environments

            .gitignore
            data/example/test.csv
            data/example/train.csv
            environments/dev.yaml
            environments/prod.yaml
            environments/qa.yaml
            manifests/example.yaml
            stagecraft.yaml

            """)
        #expect(try ProcessRunner.run("git", ["-C", target, "status", "--porcelain"]).stdout == "")
        #expect(try String(contentsOfFile: target + "/.gitignore", encoding: .utf8) == ".stagecraft/\n")
        #expect(await Stagecraft.execute(["validate", "--repo", target]).exitCode == 0)

        let again = await Stagecraft.execute(["init", target])
        #expect(again.exitCode == 1)
        #expect(again.errorOutput == "error: \(target)/manifests already exists: this is already a Stagecraft repository\n")
    }

    @Test func initKeepsAnExistingRepositoryAndGitignore() async throws {
        let existing = try ScratchRepository()
        try existing.commit([".gitignore": "*.log\n", "notes.txt": "mine\n"], message: "mine")
        let result = await Stagecraft.execute(["init", existing.path])
        #expect(result.exitCode == 0, "\(result.errorOutput)")
        #expect(try existing.directory.read(".gitignore") == "*.log\n.stagecraft/\n")
        #expect(try existing.gitLine(["rev-list", "--count", "HEAD"]) == "2")
        #expect(try existing.git(["status", "--porcelain"]) == "")
    }
}
