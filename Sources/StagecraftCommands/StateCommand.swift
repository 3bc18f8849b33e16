import ArgumentParser
import Foundation
import Reconciler

/// `stagecraft state`: the state store itself.
struct StateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state",
        abstract: "Look after the state store (.stagecraft/state.db).",
        subcommands: [StateRebuildCommand.self]
    )
}

/// `stagecraft state rebuild`: a damaged store moved aside, a new one made from the git notes.
struct StateRebuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild",
        abstract: "Move the state store aside and rebuild its deployment records from refs/notes/stagecraft.",
        discussion: """
            Every finished deployment record is also a line in the git notes on its
            environment-file commit, so a damaged or lost state store loses nothing:
            the old file is kept as <file>.damaged-<time>, and the new one holds every
            noted record. The next reconcile of each environment finds what serves.

            Examples:
              stagecraft state rebuild
              stagecraft state rebuild --repo ../models
            """
    )

    @OptionGroup var repository: RepositoryOptions

    func run() async throws {
        let console = Console.current
        let workspace = try Workspace(repository: try repository.open(), toolVersion: Stagecraft.version, ref: repository.ref)
        let (movedTo, records) = try workspace.rebuildState()
        if let movedTo { console.print("moved the old state store to \(movedTo)") }
        console.print(
            console.styled("✓", .green) + " rebuilt \(workspace.statePath) with \(records) deployment record(s) "
                + "from refs/notes/stagecraft")
    }
}
