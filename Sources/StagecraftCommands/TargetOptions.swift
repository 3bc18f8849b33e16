import ArgumentParser
import Foundation
import GitStore
import KServe
import Manifests
import Reconciler
import Registry

/// `--target` and the KServe target's settings, for the commands that act on what serves an environment.
struct TargetOptions: ParsableArguments {
    enum Kind: String, ExpressibleByArgument, CaseIterable {
        case local, kserve
    }

    @Option(name: .long, help: "What serves the environment: local (its own server process) or kserve (InferenceServices).")
    var target: Kind = .local

    @Option(name: .long, help: ArgumentHelp("kserve: the namespace (default stagecraft-<env>).", valueName: "namespace"))
    var namespace: String?

    @Option(name: .long, help: ArgumentHelp("kserve: the serving image, built from the repository's Dockerfile.", valueName: "image"))
    var image: String = "stagecraft:\(Stagecraft.version)"

    @Option(
        name: .long,
        help: ArgumentHelp("kserve: s3://bucket/prefix holding the versions (default: stagecraft.yaml's artifacts).", valueName: "uri"))
    var storageUri: String?

    @Option(
        name: .long,
        help: ArgumentHelp("kserve: the service account whose secret gives KServe's storage initializer S3 access.", valueName: "name"))
    var serviceAccount: String?

    func validate() throws {
        guard target == .kserve else {
            if namespace != nil || storageUri != nil || serviceAccount != nil {
                throw ValidationError("--namespace, --storage-uri and --service-account go with --target kserve")
            }
            return
        }
        for (flag, value) in [("--namespace", namespace), ("--service-account", serviceAccount)] {
            if let value, !KServeObjects.isValidLabel(value) {
                throw ValidationError(
                    "\(flag) '\(value.prefix(80))' is not a Kubernetes name: 1 to 63 of a-z, 0-9 and '-', starting and ending "
                        + "with a letter or digit")
            }
        }
        if let storageUri, !Self.isS3(storageUri) {
            throw ValidationError("--storage-uri '\(storageUri.prefix(80))' is not s3://bucket/prefix")
        }
        if image.isEmpty || image.contains(where: { $0 == " " || $0.isNewline }) {
            throw ValidationError("--image '\(image.prefix(80))' is not an image reference")
        }
    }

    /// The options as given, to repeat in a suggested command; none for the local target.
    var arguments: [String] {
        guard target == .kserve else { return [] }
        var out = ["--target", "kserve"]
        if let namespace { out += ["--namespace", namespace] }
        if image != "stagecraft:\(Stagecraft.version)" { out += ["--image", image] }
        if let storageUri { out += ["--storage-uri", storageUri] }
        if let serviceAccount { out += ["--service-account", serviceAccount] }
        return out
    }

    private static func isS3(_ text: String) -> Bool {
        guard text.hasPrefix("s3://") else { return false }
        let bucket = text.dropFirst(5).prefix { $0 != "/" }
        return bucket.count >= 3
    }

    /// The KServe settings of `environment`.
    func settings(environment: String, project: ProjectSettings) throws -> KServeSettings {
        guard let prefix = storageUri ?? (project.artifactsAreRemote ? project.artifacts : nil) else {
            throw CommandFailure(
                .failure,
                "stagecraft.yaml keeps artifacts in a folder (\(project.artifacts)); KServe's storage initializer reads a version from "
                    + "object storage: set `artifacts: s3://bucket/prefix` in stagecraft.yaml, or pass --storage-uri where the versions "
                    + "are copied")
        }
        return KServeSettings(
            environment: environment, namespace: namespace ?? KServeSettings.defaultNamespace(environment), image: image,
            storagePrefix: prefix, serviceAccount: serviceAccount)
    }

    /// The serving target of `environment` in `workspace`: its local server (started by `launch`), or KServe.
    func servingTarget(
        workspace: Workspace, environment: EnvironmentManifest, commit: ObjectID,
        launch: @escaping (EnvironmentManifest, ObjectID) throws -> Void
    ) throws -> any ServingTarget {
        switch target {
        case .local:
            let client = try workspace.serverClient(for: environment)
            client.launch = launch
            return client
        case .kserve:
            let store = workspace.artifacts
            return KServeTarget(
                cluster: Kubectl(), settings: try settings(environment: environment.name, project: workspace.settings),
                environmentCommit: commit.hex,
                build: store.build(pinned:))
        }
    }

    /// Refuses, before anything is built or applied, an environment KServe cannot serve as its file asks (the checks
    /// `render` makes; versions not built yet are left to the reconcile to build).
    func checkExpressible(_ environment: EnvironmentManifest, workspace: Workspace, state: any StateStore) throws {
        guard target == .kserve else { return }
        let settings = try settings(environment: environment.name, project: workspace.settings)
        let store = workspace.artifacts
        let served = try state.served(environment: environment.name).mapValues(\.version)
        for entry in environment.models where entry.version != nil {
            var single = environment
            single.models = [entry]
            do {
                _ = try KServeRender.render(
                    single, environmentCommit: "", settings: settings,
                    build: store.build(pinned:), rolledOut: served)
            } catch let error as KServeError where error.code != .notBuilt {
                throw CommandFailure(.failure, error.message)
            }
        }
    }
}
