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
