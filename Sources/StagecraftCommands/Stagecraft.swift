public import ArgumentParser
import Foundation
import GitStore
import Learning
import Manifests
import Reconciler
import Registry
#if canImport(Glibc)
import Glibc
#endif

/// The `stagecraft` command: takes machine-learning models from a commit to serving traffic, the GitOps way.
public struct Stagecraft: AsyncParsableCommand {
    public static let version = "0.1.0"

    public static let configuration = CommandConfiguration(
        commandName: "stagecraft",
        abstract: "Build, verify, serve and promote machine-learning models from a git repository.",
        discussion: """
            A git repository is the truth: manifests/<model>.yaml says how a model
            is built; environments/<env>.yaml says which version of each model
            runs there and what it must prove.

            Examples:
              stagecraft init my-models         new repository with an example
              stagecraft validate               check every file at HEAD
              stagecraft validate --ref main~3  check them at an older commit
              stagecraft reconcile --env dev    build, verify and serve dev
              stagecraft promote penguins --to qa
              stagecraft history --env prod
            """,
        version: version,
        subcommands: [
            InitCommand.self, ValidateCommand.self, BuildCommand.self, BuildsCommand.self,
            PlanCommand.self, ReconcileCommand.self, PromoteCommand.self, RollbackCommand.self, HistoryCommand.self, StatusCommand.self,
            ServeCommand.self, StopCommand.self, PredictCommand.self, QueueCommand.self, FeedbackCommand.self, MonitorCommand.self,
            StateCommand.self, GCCommand.self, RenderCommand.self, ApproveCommand.self, RejectCommand.self,
            EnvsCommand.self, DescribeCommand.self, DiffCommand.self, TagCommand.self, LogsCommand.self, ConsoleCommand.self,
        ]
    )

    public init() {}
}

/// What running a command in-process gives: its exit code and what it wrote.
public struct CommandResult: Sendable {
    public let exitCode: Int32
    public let output: String
    public let errorOutput: String
}

extension Stagecraft {
    /// Parses the process's arguments, runs the command and exits with its code: what the executable calls.
    public static func start() async {
        // Files Stagecraft creates are 0644 and folders 0755 whatever umask it inherits (0600/0700 where made private).
        umask(0o022)
        let code = await run(Array(CommandLine.arguments.dropFirst()), console: .standard)
        Foundation.exit(code)
    }

    /// Runs a command line in this process, writing to a buffer; for tests.
    public static func execute(_ arguments: [String]) async -> CommandResult {
        let console = Console.capturing()
        let code = await run(arguments, console: console)
        return CommandResult(exitCode: code, output: console.output, errorOutput: console.errorOutput)
    }

    /// Parses and runs `arguments`, reporting errors on `console`; returns the exit code.
    static func run(_ arguments: [String], console: Console) async -> Int32 {
        await Console.$current.withValue(console) {
            do {
                // A word where a command goes that names none: say which was meant, not "unexpected argument".
                if let word = arguments.first, !word.hasPrefix("-"), word != "help" {
                    let names = configuration.subcommands.map { $0._commandName }
                    if !names.contains(word) {
                        console.printError(
                            console.styled("error: ", .red) + "unknown command '\(word)'\(Spelling.didYouMean(word, among: names)) "
                                + "(commands: \(names.joined(separator: ", ")); see stagecraft --help)")
                        return ExitStatus.usage.rawValue
                    }
                }
                var command = try parseAsRoot(arguments)
                if var asyncCommand = command as? any AsyncParsableCommand {
                    try await asyncCommand.run()
                } else {
                    try command.run()
                }
                return ExitStatus.success.rawValue
            } catch {
                return report(error, console: console)
            }
        }
    }

    /// Prints `error` the way the user should see it and returns the exit code it stands for.
    static func report(_ error: any Error, console: Console) -> Int32 {
        switch error {
        case let failure as CommandFailure:
            if let message = failure.message { console.printError(console.styled("error: ", .red) + message) }
            return failure.status.rawValue
        case let invalid as InvalidProject:
            console.printError(invalid.description)
            return ExitStatus.failure.rawValue
        case let failure as ReconcileError:
            console.printError(console.styled("error: ", .red) + failure.description)
            switch failure.code {
            case .locked: return ExitStatus.lockHeld.rawValue
            case .unknownEnvironment: return ExitStatus.usage.rawValue  // a name on the command line that names nothing
            default: return ExitStatus.failure.rawValue
            }
        case is GitError, is LearningError, is RegistryError, is BuildError, is StateStoreError:
            console.printError(console.styled("error: ", .red) + String(describing: error))
            return ExitStatus.failure.rawValue
        default:
            let code = exitCode(for: error).rawValue
            let message = fullMessage(for: error)
            if !message.isEmpty {
                if code == 0 { console.print(message) } else { console.printError(message) }
            }
            // ArgumentParser's own usage errors (and anything unknown to it) exit 64.
            return code == ExitCode.validationFailure.rawValue ? ExitStatus.usage.rawValue : code
        }
    }
}
