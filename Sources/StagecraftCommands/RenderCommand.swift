import ArgumentParser
import Foundation
import GitStore
import KServe
import Manifests
import Reconciler
import Registry

struct RenderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Print the Kubernetes objects that serve an environment on KServe.",
        discussion: """
            Reads environments/<env>.yaml at --ref and prints a ClusterServingRuntime
            named stagecraft (the image running 'serve --model-dir /mnt/models') and
            one InferenceService per pinned model: protocol v2, storageUri the
            version's folder in object storage, canaryTrafficPercent from a
            two-version traffic split (the newer build is the canary; the older must
            be what serves now, as the state store records it). What KServe cannot
            express (a split over three versions, a shadow) is refused.
            'reconcile --target kserve' applies the same objects.

            Examples:
              stagecraft render --env prod --target kserve
              stagecraft render --env qa --target kserve --namespace ml-qa --image registry.example.com/stagecraft:1
              stagecraft render --env qa --target kserve --output json | kubectl apply --server-side -f -
            """
    )

    @Option(name: .long, help: "The environment (environments/<env>.yaml).", transform: Name.environment)
    var env: String

    @OptionGroup var repository: RepositoryOptions
    @OptionGroup(title: "Serving target") var serving: TargetOptions

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case yaml, json
    }

    @Option(name: .long, help: "yaml (documents separated by ---) or json (one List, as kubectl apply -f - reads it).")
    var output: Format = .yaml

    func validate() throws {
        guard serving.target == .kserve else {
            throw ValidationError("render writes objects for a platform: pass --target kserve (the local target needs none)")
        }
    }

    func run() async throws {
        let console = Console.current
        let repo = try repository.openOrFetch()
        let workspace = try Workspace(repository: repo, toolVersion: Stagecraft.version, ref: repository.ref)
        let commit = try repo.resolve(repository.ref)
        let manifest = try workspace.environment(env, at: commit)
        let settings = try serving.settings(environment: env, project: workspace.settings)
        let environmentCommit = try repo.history(of: manifest.file, from: commit, limit: 1).first ?? commit
        let state = try workspace.openState(notice: console.warn)
        let rolledOut = try state.served(environment: env).mapValues(\.version)
        let store = workspace.artifacts
        let rendered: KServeRender.Output
        do {
            rendered = try KServeRender.render(
                manifest, environmentCommit: environmentCommit.hex, settings: settings,
                build: store.build(pinned:), rolledOut: rolledOut)
        } catch let error as KServeError {
            throw CommandFailure(.failure, error.message)
        }
        switch output {
        case .json: console.print(KServeObjects.list(rendered.objects).json)
        case .yaml: console.write(rendered.objects.map(\.yaml).joined(separator: "---\n"), error: false)
        }
        for model in rendered.unpinned {
            console.printError("note: '\(model)' pins no version in \(manifest.file): no InferenceService for it")
        }
    }
}
