import ArgumentParser
import Foundation
import GitStore
import Manifests
import Reconciler
import Registry

/// `stagecraft gc`: deletes the built versions nothing needs any more.
struct GCCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Delete built versions that no environment needs (local, cache and S3).",
        discussion: """
            A version is kept when an environment file pins it (version, traffic
            split or shadow) at any branch head or at any commit of the last --keep,
            when it was built within --keep, when the state store records it as
            serving, or when a running server has it loaded. Everything else is
            deleted from the artifact folder (or cache) and from S3. Prints what it
            deletes, or with --dry-run would delete, and the bytes freed.

            Examples:
              stagecraft gc --dry-run
              stagecraft gc --keep 7d
              stagecraft gc --keep 0 --output json
            """
    )

    @OptionGroup var repository: RepositoryOptions
    @OptionGroup var format: OutputOptions

    @Flag(name: .long, help: "Say what would go; delete nothing.")
    var dryRun = false

    @Option(name: .long, help: "Keep what commits and builds of this long ago need: 30d, 12h, or 0 for the branch heads only.")
    var keep = "30d"

    func validate() throws {
        guard keep == "0" || DurationText.seconds(keep) != nil else {
            throw ValidationError("--keep expects a duration such as 30d, 12h or 45m, or 0 (got '\(keep)')")
        }
    }

    func run() async throws {
        let console = Console.current
        let workspace = try Workspace(repository: try repository.open(), toolVersion: Stagecraft.version, ref: repository.ref)
        let window = keep == "0" ? 0 : DurationText.seconds(keep)!
        // In use now: what the state store records as serving and what running servers have loaded.
        var inUse: Set<String> = []
        let state = try workspace.openState(notice: console.warn)
        let head = try workspace.repository.resolve(repository.ref)
        for name in try workspace.environmentNames(at: head) {
            for served in try state.served(environment: name).values { inUse.formUnion(served.versions) }
            guard let environment = try? workspace.environment(name, at: head) else { continue }
            let client = try workspace.serverClient(for: environment)
            if client.isLive() {
                for versions in try client.state().versions.values { inUse.formUnion(versions) }
            }
        }
        let outcome = try GarbageCollector(workspace: workspace, window: window).collect(inUse: inUse, dryRun: dryRun)
        if format.json {
            console.print(try JSONOutput.encode(outcome))
            return
        }
        let verb = dryRun ? "would delete" : "deleted"
        for victim in outcome.deleted {
            let built = victim.builtAt.map { " built \(Timestamp.string($0))" } ?? ""
            console.print(
                "\(verb) \(VersionDigest.short(victim.digest)) \(victim.model ?? "?")\(built) — "
                    + "\(Self.bytes(victim.bytes)) in \(victim.places.joined(separator: ", "))")
        }
        let mark = console.styled("✓", .green)
        console.print(
            "\(mark) \(verb) \(count(outcome.deleted.count, "version")), \(Self.bytes(outcome.freedBytes)) "
                + "\(dryRun ? "to free" : "freed"); kept \(outcome.kept)"
                + (dryRun && !outcome.deleted.isEmpty ? " (run without --dry-run to delete)" : ""))
    }

    /// `812 B`, `14.2 kB`, `3.1 MB`.
    static func bytes(_ count: Int) -> String {
        if count < 1000 { return "\(count) B" }
        if count < 1_000_000 { return String(format: "%.1f kB", Double(count) / 1000) }
        return String(format: "%.1f MB", Double(count) / 1_000_000)
    }
}
