import Foundation
public import Learning
import LoopbackHTTP

/// A version's own server started for one batch, from synchronous code (a build's gates, `predict`, `queue`): it
/// is started, asked for predictions in chunks, and stopped; nothing supervises it.
public final class ScoringSession {
    public let configuration: ModelServer.Configuration
    private let process: ChildProcess
    private let connection: HTTPConnection

    /// Rows sent per request.
    public static let chunk = 2_000

    /// Starts the server and waits until its ready path answers 200.
    /// - Throws: ``ExternalModelError`` `.start` or `.notReady` with the tail of its log.
    public init(_ configuration: ModelServer.Configuration) throws {
        self.configuration = configuration
        let (command, environment, port, _) = try configuration.launchPlan()
        let process = try ChildProcess.start(command, in: configuration.folder, environment: environment, log: configuration.log)
        let deadline = Date().addingTimeInterval(configuration.readyTimeout)
        while true {
            if let status = process.exitStatus() {
                process.stopNow(grace: 0)
                throw ModelServer.exited(configuration, command, process, status)
            }
            if let ready = try? HTTPConnection(port: port, timeout: 2),
                (try? ready.send("GET", configuration.server.ready))?.status == 200
            {
                break
            }
            if Date() > deadline {
                process.stopNow(grace: 2)
                throw ModelServer.late(configuration, process)
            }
            usleep(50_000)
        }
        do {
            connection = try HTTPConnection(port: port, timeout: 300)
        } catch {
            process.stopNow(grace: 2)
            throw ExternalModelError(.notReady, "cannot connect to the server of \(configuration.model)", cause: error)
        }
        self.process = process
    }

    /// The server's predictions for `rows` (the model's feature columns), asked for `chunk` rows at a time.
    public func predict(_ rows: Dataset, classes: [String]?, task: LearningTask) throws -> Predictions {
        let classifier = classes != nil
        var all = Predictions(labels: classifier ? [] : nil, probabilities: classifier ? [] : nil, values: classifier ? nil : [])
        var start = 0
        while start < rows.rowCount {
            let indices = Array(start..<min(start + Self.chunk, rows.rowCount))
            let part = indices.count == rows.rowCount ? rows : rows.rows(indices)
            let body = Data(ServerProtocol.request(part, task: task))
            let response: HTTPConnection.Response
            do {
                response = try connection.send(
                    "POST", "/v2/models/\(configuration.model)/infer", body: body, headers: ["Content-Type": "application/json"])
            } catch {
                throw ExternalModelError(
                    .badAnswer, "the server of \(configuration.model) did not answer; its log ends:\n\(process.tail())", cause: error)
            }
            guard response.status == 200 else {
                throw ExternalModelError(
                    .badAnswer, "the server of \(configuration.model) answered \(response.status): \(response.text.prefix(400))")
            }
            let predictions = try ServerProtocol.predictions(response.body, rows: indices.count, classes: classes)
            all.labels? += predictions.labels ?? []
            all.probabilities? += predictions.probabilities ?? []
            all.values? += predictions.values ?? []
            start += indices.count
        }
        return all
    }

    /// Stops the server's process group.
    public func stop() { process.stopNow() }

    deinit { process.stopNow(grace: 1) }
}
