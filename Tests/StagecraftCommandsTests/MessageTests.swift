import Foundation
import StagecraftCommands
import StagecraftTesting
import Testing

/// Messages that say what to do next, with their exact text and exit code.
@Suite struct MessageTests {
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
                + "promote, rollback, history, status, serve, stop, predict, queue, feedback, monitor, state, gc, render, approve, reject; see stagecraft --help)\n")
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
}
