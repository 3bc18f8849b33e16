import ArgumentParser
import Foundation
import GitStore
import LoopbackHTTP
import Manifests
import Reconciler
import Registry

struct EnvsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "envs",
        abstract: "The environments in pipeline order: upstream, URL, whether the server runs, track, approval.",
        discussion: """
            Lists environments/*.yaml at --ref in the order versions travel (each after
            its upstream), with the server's address, whether a server runs there
            (its pid and since when), whether the environment tracks the branch, and
            who must approve promotions into it.

            Examples:
              stagecraft envs
              stagecraft envs --output json
            """
    )

    @OptionGroup var repository: RepositoryOptions
    @OptionGroup var format: OutputOptions

    struct Row: Encodable {
        var name: String
        var upstream: String?
        var url: String
        var grpcPort: Int?
        var running: Bool
        var pid: Int32?
        var since: Date?
        var track: Bool
        var approval: Approval?
        var models: Int
        var pinned: Int

        struct Approval: Encodable {
            var approvers: [String]
            var count: Int
        }
    }

    func run() async throws {
        let console = Console.current
        let repo = try repository.openOrFetch()
        let source = try GitProjectSource(repository: repo, ref: repository.ref)
        let (project, _) = try Project.check(source)
        let root = Builder(repository: repo, toolVersion: Stagecraft.version).localRoot
        let rows = EnvironmentOrder.names(project).compactMap { project.environments[$0] }.map { environment in
            let files = RunFiles(root: root, environment: environment.name)
            let pid = files.runningPID()
            let since = pid.flatMap { _ in files.pidFileWritten }
            return Row(
                name: environment.name, upstream: environment.upstream, url: "http://\(environment.host):\(environment.port)",
                grpcPort: environment.grpcPort, running: pid != nil, pid: pid, since: since, track: environment.track,
                approval: environment.requiredApproval.map { Row.Approval(approvers: $0.approvers, count: $0.count) },
                models: environment.models.count, pinned: environment.models.filter { $0.version != nil }.count)
        }
        if format.json {
            console.print(try JSONOutput.encode(rows))
            return
        }
        var cells = [["ENVIRONMENT", "UPSTREAM", "URL", "SERVER", "TRACK", "APPROVAL", "PINNED"]]
        for row in rows {
            let server = row.pid.map { "running (pid \($0)\(row.since.map { ", since " + Timestamp.string($0) } ?? ""))" } ?? "stopped"
            let approval = row.approval.map { "\($0.count) of \($0.approvers.joined(separator: ", "))" } ?? "-"
            cells.append([
                row.name, row.upstream ?? "-", row.url, server, row.track ? "yes" : "no", approval, "\(row.pinned)/\(row.models)",
            ])
        }
        for (index, text) in table(cells).enumerated() { console.print(index == 0 ? console.styled(text, .bold) : text) }
    }
}

/// Environments in pipeline order (each after its upstream), then any the project could not place (an invalid file).
enum EnvironmentOrder {
    static func names(_ project: Project, all: [String] = []) -> [String] {
        project.environmentOrder + all.filter { !project.environmentOrder.contains($0) }
    }
}
