import Foundation
import StagecraftTesting
import Testing

/// The real `stagecraft` binary, run as a user runs it.
@Suite struct CommandLineTests {
    let binary = Fixtures.stagecraftBinary

    @Test func versionHelpAndUsage() throws {
        #expect(try ProcessRunner.run(binary, ["--version"]).stdout == "0.1.0\n")
        let help = try ProcessRunner.run(binary, ["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("stagecraft init my-models"))
        #expect(help.stdout.contains("validate"))
        let usage = try ProcessRunner.run(binary, ["validate", "--nope"])
        #expect(usage.status == 64)
        #expect(usage.stderr.contains("Unknown option '--nope'"))
    }

    @Test func initThenValidateThenBreakIt() throws {
        let scratch = try ScratchDirectory()
        let repo = scratch.appending("models")
        let initialized = try ProcessRunner.run(binary, ["init", repo])
        #expect(initialized.status == 0, "\(initialized.stderr)")
        // Plain output when not on a terminal: no colour codes.
        #expect(!initialized.stdout.contains("\u{1B}["))
        #expect(try ProcessRunner.run("git", ["-C", repo, "fsck", "--strict"]).status == 0)

        let valid = try ProcessRunner.run(binary, ["validate", "--output", "json"], in: repo)
        #expect(valid.status == 0)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(valid.stdout.utf8)) as? [String: Any])
        #expect(report["valid"] as? Bool == true)
        #expect(report["models"] as? [String] == ["example"])

        // An edit committed with git is what validate reads.
        let manifest = try String(contentsOfFile: repo + "/manifests/example.yaml", encoding: .utf8)
        try manifest.replacingOccurrences(of: "task: binary-classification", with: "task: clasification")
            .write(toFile: repo + "/manifests/example.yaml", atomically: true, encoding: .utf8)
        #expect(try ProcessRunner.run(binary, ["validate"], in: repo).status == 0)  // not committed yet
        try ProcessRunner.run("git", ["-C", repo, "commit", "-qam", "typo"])
        let invalid = try ProcessRunner.run(binary, ["validate"], in: repo)
        #expect(invalid.status == 1)
        #expect(invalid.stdout.hasPrefix("manifests/example.yaml:6:9: unknown task 'clasification'"))
    }
}

/// `build` and `builds` through the real binary, on a copy of the example.
@Suite struct BuildEndToEndTests {
    let binary = Fixtures.stagecraftBinary

    @Test func buildTheExampleTwiceAndListTheBuilds() throws {
        let scratch = try ScratchRepository.example()
        for model in ["breast-cancer", "penguins"] {
            let first = try ProcessRunner.run(binary, ["build", model, "--output", "json"], in: scratch.path)
            #expect(first.status == 0, "\(first.stderr)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any])
            #expect(report["reused"] as? Bool == false)
            let metrics = try #require(report["metrics"] as? [String: Double])
            #expect(metrics["accuracy"]! >= 0.95)
            let again = try ProcessRunner.run(binary, ["build", model], in: scratch.path)
            #expect(again.status == 0)
            #expect(again.stdout.contains(" reused: the artifact store has it"))
            // Off a terminal there is no progress line and no colour.
            #expect(again.stderr == "")
            #expect(!again.stdout.contains("\u{1B}["))
        }
        let builds = try ProcessRunner.run(binary, ["builds", "--output", "json"], in: scratch.path)
        let list = try #require(try JSONSerialization.jsonObject(with: Data(builds.stdout.utf8)) as? [[String: Any]])
        #expect(Set(list.compactMap { $0["model"] as? String }) == ["breast-cancer", "penguins"])
        #expect(list.allSatisfy { ($0["source"] as? String) == (try? scratch.gitLine(["rev-parse", "HEAD"])) })
    }
}
