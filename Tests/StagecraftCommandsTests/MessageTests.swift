import Foundation
import StagecraftCommands
import StagecraftTesting
import Testing

/// Messages that say what to do next, with their exact text and exit code.
@Suite struct MessageTests {
    /// Servers that in-process reconciles start are the real binary (not this test process).
    init() { setenv("STAGECRAFT_EXECUTABLE", Fixtures.stagecraftBinary, 1) }

    @Test func outsideARepositoryNamesInitAndRepo() async throws {
        let folder = try ScratchDirectory("not-a-repo")
        let result = await Stagecraft.execute(["status", "--repo", folder.path])
        #expect(result.exitCode == 1)
        #expect(result.errorOutput == "error: not a git repository: \(folder.path); run `stagecraft init` or pass `--repo`\n")
    }

    @Test func anUnknownCommandSuggestsTheNearestAndExits64() async {
        let result = await Stagecraft.execute(["histroy", "--env", "qa"])
        #expect(result.exitCode == 64)
        #expect(
            result.errorOutput
                == "error: unknown command 'histroy'; did you mean 'history'? (commands: init, validate, build, builds, plan, reconcile, "
                + "promote, rollback, history, status, serve, stop, predict, queue, feedback, monitor, state, gc, render, approve, reject, envs, describe, diff, tag, logs, console; see "
                + "stagecraft --help)\n")
        // Help and options are not commands.
        #expect(await Stagecraft.execute(["help", "history"]).exitCode == 0)
        #expect(await Stagecraft.execute(["--version"]).exitCode == 0)
    }

    @Test func historyOfAnUnknownModelSaysWhichModelsThereAre() async throws {
        let scratch = try ScratchRepository.example()
        let result = await Stagecraft.execute(["history", "--repo", scratch.path, "--model", "penguin"])
        #expect(result.exitCode == 1)
        #expect(result.errorOutput == "error: no model 'penguin'; did you mean 'penguins'? (models: breast-cancer, penguins)\n")
        let far = await Stagecraft.execute(["history", "--repo", scratch.path, "--model", "churn"])
        #expect(far.errorOutput == "error: no model 'churn' (models: breast-cancer, penguins)\n")
    }

    @Test func anUnknownEnvironmentExits64WithTheEnvironmentsThereAre() async throws {
        let scratch = try ScratchRepository.example()
        let head = String(try scratch.gitLine(["rev-parse", "HEAD"]).prefix(12))
        for command in [["plan"], ["reconcile"], ["status"], ["render", "--target", "kserve", "--storage-uri", "s3://models/x"]] {
            let result = await Stagecraft.execute(command + ["--env", "staging", "--repo", scratch.path])
            #expect(result.exitCode == 64, "\(command)")
            #expect(result.errorOutput.hasSuffix(
                "no environment 'staging' at \(head) (expected environments/staging.yaml; environments: dev, prod, qa)\n"), "\(command)")
        }
        let predict = await Stagecraft.execute(["predict", "penguins", "--env", "staging", "--input", "data/penguins/test.csv", "--repo", scratch.path])
        #expect(predict.exitCode == 64)
        #expect(predict.errorOutput.hasPrefix("error: no environment 'staging' at "))
    }

    @Test func aMissingInputFileIsOneLine() async throws {
        let scratch = try ScratchRepository.example()
        let missing = await Stagecraft.execute(["predict", "penguins", "--env", "dev", "--input", "/nonexistent/new.csv", "--repo", scratch.path])
        #expect(missing.exitCode == 1)
        #expect(missing.errorOutput == "error: input file /nonexistent/new.csv does not exist; --input takes a CSV file with a header row\n")
        let folder = await Stagecraft.execute(["predict", "penguins", "--env", "dev", "--input", scratch.path, "--repo", scratch.path])
        #expect(folder.errorOutput == "error: input file \(scratch.path) is a folder; --input takes a CSV file with a header row\n")
    }

    @Test func reconcileSaysWhereItServesAndWhoHoldsTheLock() async throws {
        let scratch = try ScratchRepository.example()
        let ports = try scratch.useFreePorts()
        defer { scratch.stopServers() }
        // Another process holds qa's lock (written as a reconcile writes it: its pid), for half a second.
        try FileManager.default.createDirectory(atPath: scratch.directory.appending(".stagecraft/run"), withIntermediateDirectories: true)
        let lock = scratch.directory.appending(".stagecraft/run/qa.lock")
        let holder = try BackgroundProcess("flock", [lock, "sh", "-c", "echo $$ > \(lock); exec sleep 0.7"])
        defer { holder.stop() }
        usleep(300_000)
        let result = await Stagecraft.execute(["reconcile", "--env", "qa", "--repo", scratch.path])
        #expect(result.exitCode == 0, "\(result.errorOutput)")
        // The pid the holder wrote (flock's child shell, which became sleep) and its command line.
        #expect(result.errorOutput.hasPrefix("waiting for another reconcile of 'qa' to finish (pid "), "\(result.errorOutput)")
        #expect(result.errorOutput.contains(": sleep 0.7)\n"), "\(result.errorOutput)")
        let dev = await Stagecraft.execute(["reconcile", "--env", "dev", "--repo", scratch.path])
        #expect(dev.exitCode == 0, "\(dev.errorOutput)")
        #expect(dev.output.contains(" (7 actions); serving at http://127.0.0.1:\(ports["dev"]!)\n"), "\(dev.output)")
        let again = await Stagecraft.execute(["reconcile", "--env", "dev", "--repo", scratch.path])
        #expect(again.output.hasSuffix("; serving at http://127.0.0.1:\(ports["dev"]!)\n"))
    }

    @Test func jsonLinesTakeZeroAndOneAsNumbersAndAFileThatCannotParseIsDeadLetteredAtOnce() async throws {
        let scratch = try ScratchRepository.example()
        let digest = try await builtDigest("penguins", in: scratch)
        try scratch.pin("penguins", version: digest)
        let queue = try ScratchDirectory("queue")
        try FileManager.default.createDirectory(atPath: queue.path + "/inbox", withIntermediateDirectories: true)
        try """
            {"island": "Torgersen", "bill_length_mm": 0, "bill_depth_mm": 1, "flipper_length_mm": 193, "body_mass_g": 3450, "sex": "female"}

            """.write(toFile: queue.path + "/inbox/flags.jsonl", atomically: true, encoding: .utf8)
        try "{\"island\": \"Dream\",\n".write(toFile: queue.path + "/inbox/broken.jsonl", atomically: true, encoding: .utf8)
        let run = await Stagecraft.execute(
            ["queue", "--env", "dev", "--model", "penguins", "--dir", queue.path, "--retries", "3", "--backoff", "10ms", "--once",
             "--repo", scratch.path])
        #expect(run.exitCode == 0, "\(run.errorOutput)|\(run.output)")
        let scored = try String(contentsOfFile: queue.path + "/outbox/flags.csv", encoding: .utf8).split(separator: "\n")
        #expect(scored.count == 2 && scored[1].hasPrefix("Torgersen,0,1,193,3450,female,"), "\(scored)")
        #expect(run.errorOutput.contains("✗ broken.jsonl → dead-letter/: broken.jsonl:1: not a JSON object\n"), "\(run.errorOutput)")
        #expect(!run.errorOutput.contains("↻ broken.jsonl"))
        #expect(FileManager.default.fileExists(atPath: queue.path + "/dead-letter/broken.jsonl"))
    }

    @Test func validateSaysWhatItReadAndReportsEveryProblem() async throws {
        let scratch = try ScratchRepository.example()
        // An edit not committed: valid as committed, and a warning that the work tree was not read.
        try scratch.directory.write(try scratch.directory.read("environments/qa.yaml") + "# tuned\n", to: "environments/qa.yaml")
        let edited = await Stagecraft.execute(["validate", "--repo", scratch.path])
        let head = String(try scratch.gitLine(["rev-parse", "HEAD"]).prefix(12))
        #expect(edited.exitCode == 0)
        #expect(edited.errorOutput == "warning: validate read HEAD (\(head)), not the work tree: environments/qa.yaml has uncommitted "
            + "changes (commit them to validate them)\n")
        try scratch.git(["checkout", "environments/qa.yaml"])

        // A misspelt data path: the nearest committed one. A path the work tree has but git does not: is it committed?
        let manifest = try scratch.directory.read("manifests/penguins.yaml")
        try scratch.commit(["manifests/penguins.yaml": manifest.replacingOccurrences(of: "data/penguins/train.csv", with: "data/penguins/trian.csv")
            .replacingOccurrences(of: "data/penguins/test.csv", with: "data/penguins/holdout.csv")])
        // And, in the same run, a key error and a gate error in one environment file.
        let qa = try scratch.directory.read("environments/qa.yaml")
        try scratch.commit(["environments/qa.yaml": qa.replacingOccurrences(of: "  upstream: dev\n", with: "  upstream: dev\n  colour: blue\n")
            .replacingOccurrences(of: "accuracy: \">= 0.90\"", with: "accuracy: \"at least 0.9\"")])
        try scratch.directory.write(try scratch.directory.read("data/penguins/test.csv"), to: "data/penguins/holdout.csv")
        let broken = await Stagecraft.execute(["validate", "--repo", scratch.path])
        let commit = String(try scratch.gitLine(["rev-parse", "HEAD"]).prefix(12))
        #expect(broken.exitCode == 1)
        let lines = broken.output.split(separator: "\n").map(String.init)
        #expect(lines.count == 5, "\(broken.output)")
        #expect(lines.contains { $0.hasPrefix("environments/qa.yaml:") && $0.hasSuffix(": unknown key 'colour' in spec (expected one of: "
            + "upstream, track, server, gates, models, monitor, approval)") })
        #expect(lines.contains { $0.hasPrefix("environments/qa.yaml:") && $0.contains("gate 'accuracy' must be") })
        #expect(lines.contains { $0.hasSuffix("data file 'data/penguins/trian.csv' does not exist at HEAD (\(commit)) (nor a DVC pointer "
            + "'data/penguins/trian.csv.dvc'); did you mean 'data/penguins/train.csv'?") })
        #expect(lines.contains { $0.hasSuffix("data file 'data/penguins/holdout.csv' does not exist at HEAD (\(commit)) (nor a DVC "
            + "pointer 'data/penguins/holdout.csv.dvc'); the work tree has it: is it committed? (git add data/penguins/holdout.csv && git commit)") })
        #expect(lines.last == "✗ 4 problems at HEAD (\(commit))")
    }

    @Test func shellCompletionScriptsCoverEveryCommand() async {
        for shell in ["bash", "zsh", "fish"] {
            let script = await Stagecraft.execute(["--generate-completion-script", shell])
            #expect(script.exitCode == 0)
            for command in ["reconcile", "promote", "approve", "render", "describe"] { #expect(script.output.contains(command), "\(shell) \(command)") }
        }
    }
}
