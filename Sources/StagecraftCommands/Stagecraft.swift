public import ArgumentParser

/// The `stagecraft` command: takes machine-learning models from a commit to serving traffic, the GitOps way.
public struct Stagecraft: AsyncParsableCommand {
    public static let version = "0.1.0"

    public static let configuration = CommandConfiguration(
        commandName: "stagecraft",
        abstract: "Build, verify, serve and promote machine-learning models from a git repository.",
        version: version,
        subcommands: []
    )

    public init() {}
}

extension Stagecraft {
    /// Parses the process's arguments, runs the command and exits with its code: what the executable calls.
    public static func start() async {
        await main()
    }
}
