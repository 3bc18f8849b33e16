import ArgumentParser
import Foundation
import GitStore
import Learning
import LoopbackHTTP
import Manifests
import Reconciler
import Registry

struct FeedbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feedback",
        abstract: "Send true labels for earlier predictions to an environment's server.",
        discussion: """
            FILE is a CSV with an 'id' column (the request ids the predictions were
            made under) and a 'label' column (the true class, or the true value for
            regression). The server joins them with its predictions and reports live
            metrics per version (also in /metrics); labels are kept under
            .stagecraft/feedback/<env>/ for 'stagecraft monitor'.

            Examples:
              stagecraft feedback --env prod --model penguins --file labels.csv
            """
    )

    @Option(name: .long, help: "The environment whose server made the predictions.", transform: Name.environment)
    var env: String

    @Option(name: .long, help: "The model.", transform: Name.model)
    var model: String

    @Option(name: .long, help: ArgumentHelp("CSV with 'id' and 'label' columns.", valueName: "file"))
    var file: String

    @OptionGroup var repository: RepositoryOptions
    @OptionGroup var format: OutputOptions

    func run() async throws {
        let console = Console.current
        let repo = try repository.open()
        let workspace = try Workspace(repository: repo, toolVersion: Stagecraft.version, ref: repository.ref)
        let environment = try workspace.environment(env, at: try repo.resolve(repository.ref))
        let data = try CSVReader.read(
            Data(contentsOf: URL(fileURLWithPath: file)), source: file, types: ["id": .categorical, "label": .categorical])
        guard let ids = data.column("id"), let labels = data.column("label") else {
            throw CommandFailure(.failure, "\(file): expected the columns 'id' and 'label' (found: \(data.names.joined(separator: ", ")))")
        }
        let connection: HTTPConnection
        do {
            connection = try HTTPConnection(host: environment.host, port: environment.port)
        } catch {
            throw CommandFailure(
                .failure,
                "no server for '\(env)' at \(environment.host):\(environment.port): \(error); start it with: "
                    + "stagecraft reconcile --env \(env)")
        }
        var accepted = 0
        var unmatched: [String] = []
        var last: [String: Any] = [:]
        for start in stride(from: 0, to: data.rowCount, by: 1_000) {
            let items = (start..<min(start + 1_000, data.rowCount)).map { ["id": ids.text(at: $0), "label": labels.text(at: $0)] }
            let response = try connection.send(
                "POST", "/v2/models/\(model)/feedback", body: try JSONSerialization.data(withJSONObject: ["feedback": items]))
            guard response.status == 200 else {
                throw CommandFailure(
                    .failure,
                    "the server refused the labels: \(response.status) "
                        + "\((response.json["error"] as? String) ?? response.text)")
            }
            accepted += response.json["accepted"] as? Int ?? 0
            unmatched += response.json["unmatched"] as? [String] ?? []
            last = response.json["live"] as? [String: Any] ?? [:]
        }
        if format.json {
            let body = try JSONSerialization.data(
                withJSONObject: ["accepted": accepted, "unmatched": unmatched, "live": last], options: [.sortedKeys, .prettyPrinted])
            console.print(String(decoding: body, as: UTF8.self))
            return
        }
        console.print("\(count(accepted, "row")) labelled; \(unmatched.count) ids matched no prediction")
        for (version, value) in last.sorted(by: { $0.key < $1.key }) {
            guard let metrics = value as? [String: Double] else { continue }
            let shown = metrics.filter { $0.key != "unknownLabels" }.sorted { $0.key < $1.key }.map {
                "\($0.key) "
                    + "\(GateResult.format($0.value))"
            }
            console.print("  \(version.prefix(12)): " + shown.joined(separator: "  "))
        }
    }
}
