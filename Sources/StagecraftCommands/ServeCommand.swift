import ArgumentParser
import Foundation
import GitStore
import Learning
import Manifests
import Reconciler
import Registry
import Serving

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve an environment's models over the Open Inference Protocol (KServe V2).",
        discussion: """
            Reads environments/<env>.yaml at --ref, loads each pinned version from
            the artifact store by digest (build them first with 'stagecraft build'),
            and serves them on the environment's host and port until SIGTERM or
            SIGINT, which let in-flight requests finish.

            Examples:
              stagecraft serve --env dev
              stagecraft serve --env qa --port 9000
              curl -s localhost:8101/v2/models/penguins
            """
    )

    @Option(name: .long, help: "The environment to serve.")
    var env: String

    @OptionGroup var repository: RepositoryOptions

    @Option(name: .long, help: "Listen on this port instead of the environment's.")
    var port: Int?

    @Option(name: .long, help: "Percent of requests captured to .stagecraft/capture/<env>/<model>/ (0 to 100).")
    var capturePercent: Double = 100

    @Option(name: .long, help: "Start a new capture file past this many bytes.")
    var captureFileBytes: Int = 64 << 20

    func run() async throws {
        let repo = try repository.open()
        let source = try GitProjectSource(repository: repo, ref: repository.ref)
        let (project, diagnostics) = try Project.check(source)
        guard let environment = project.environments[env] else {
            let known = project.environmentOrder
            throw CommandFailure(.failure, "no environment '\(env)' at \(source.revision) (environments: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
        }
        let relevant = diagnostics.filter { $0.location.file == environment.file }
        guard relevant.isEmpty else { throw InvalidProject(relevant) }
        let store = Builder(repository: repo, toolVersion: Stagecraft.version).store(for: project)
        let models = ModelRepository()
        for deployment in environment.models {
            guard let pinned = deployment.version else { continue }
            let versions = [pinned] + (deployment.traffic ?? []).map(\.version).filter { $0 != pinned }
            for version in versions {
                guard let digest = store.resolve(version) else {
                    throw CommandFailure(.failure, "version \(version) of '\(deployment.model)' is not in the artifact store (\(store.root.path)); build it from its source commit: stagecraft build \(deployment.model) --ref \(deployment.source ?? "<source>")")
                }
                let info = try store.buildInfo(digest)
                models.load(LoadedVersion(model: deployment.model, version: digest, source: info.source, file: try store.model(digest)),
                            makeDefault: version == pinned)
            }
            if let traffic = deployment.traffic {
                do {
                    try models.setTraffic(model: deployment.model, traffic.map { ($0.version, $0.weight) })
                } catch {
                    throw CommandFailure(.failure, "traffic of '\(deployment.model)' in \(environment.file): \(error.message)")
                }
            }
        }
        var server = InferenceServer(environment: env, repository: models, host: environment.host, port: port ?? environment.port)
        let builder = Builder(repository: repo, toolVersion: Stagecraft.version)
        server.adminToken = try AdminToken.loadOrCreate(root: builder.localRoot)
        if capturePercent > 0 {
            server.capture = RequestCapture(directory: builder.localRoot.appendingPathComponent(".stagecraft/capture/\(env)"),
                                            samplePercent: min(capturePercent, 100), maxFileBytes: captureFileBytes)
        }
        server.loader = { model, version in
            guard let digest = store.resolve(version) else {
                throw RegistryError("version \(version) is not in the artifact store (\(store.root.path))")
            }
            let info = try store.buildInfo(digest)
            guard info.model == model else { throw RegistryError("version \(version) is a build of '\(info.model)', not '\(model)'") }
            return LoadedVersion(model: model, version: digest, source: info.source, file: try store.model(digest))
        }
        try await server.run(logger: JSONLogHandler.logger("stagecraft.serve"))
    }
}
