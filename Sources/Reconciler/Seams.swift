public import Foundation
public import GitStore
public import Manifests
public import Registry
public import InferenceGRPC

/// What serves an environment's models: the seam between the reconcile engine and a serving engine. The local
/// server process implements it (``ServerClient``); a Kubernetes or SageMaker target would too.
public protocol ServingTarget: AnyObject {
    /// Where it serves, for messages (`127.0.0.1:8101`).
    var address: String { get }
    /// What deployment records name as the target (`kserve:<namespace>`); nil for the environment's own server.
    var recordedName: String? { get }
    /// True when it is up and answers.
    func isLive() -> Bool
    /// Starts it for `environment` as read at `commit`, serving what the state store records as deployed; returns
    /// once it answers.
    func start(_ environment: EnvironmentManifest, commit: ObjectID) throws
    /// What it has loaded and how it routes each model.
    func state() throws -> ServerState
    /// Loads (and warms) a version in a slot that takes no traffic.
    func load(model: String, version: String) throws
    /// Sets, at once, which loaded versions of `model` answer: the default, a split and a shadow.
    func route(model: String, to route: ServerState.Route) throws
    /// Unloads one version of `model`, or the whole model when `version` is nil.
    func unload(model: String, version: String?) throws
    /// Sends one inference request (an Open Inference Protocol body) to a loaded version, as a verification probe.
    func infer(model: String, version: String, body: Data) throws -> (status: Int, json: [String: Any], seconds: Double)
    /// True when it also serves the Open Inference Protocol over gRPC.
    var servesGRPC: Bool { get }
    /// Sends one `ModelInfer` over gRPC, as a verification probe.
    func inferOverGRPC(_ request: Inference_ModelInferRequest) throws -> Inference_ModelInferResponse
}

extension ServingTarget {
    public var recordedName: String? { nil }

    public var servesGRPC: Bool { false }

    public func inferOverGRPC(_ request: Inference_ModelInferRequest) throws -> Inference_ModelInferResponse {
        throw ReconcileError(.server, "the server at \(address) does not serve gRPC")
    }
}

/// Builds versions and finds built ones: the reconcile engine's view of the builder and the artifact store.
public protocol VersionBuilding {
    /// The full digest of a pinned version (a prefix of at least 12 hex digits) when it is built, else nil.
    func resolve(_ pin: String) -> String?
    /// The digest each model would build to at `commit` (reading its manifest and data, not training).
    func digests(models: [String], at commit: String) throws -> [String]
    /// Builds `model` from the manifest and data at `commit` (or finds it built) and returns what was built.
    func build(model: String, at commit: String) throws -> BuildInfo
}

/// Checks a version, loaded in a slot of a serving target, against gates.
public protocol GateChecking {
    /// Every gate's result, plus the probe's own check that answers match the build's predictions.
    func verify(model: String, version: String, gates: [Gate], on target: any ServingTarget) throws -> [GateResult]
}

/// The parts a reconcile works through.
public struct ReconcileSeams {
    /// Files, history, notes and commits.
    public var git: any GitSource
    /// Records and what serves.
    public var state: any StateStore
    /// What serves the environment.
    public var target: any ServingTarget
    /// What is built, and building.
    public var builds: any VersionBuilding
    /// Verification against gates.
    public var gates: any GateChecking

    /// The seams of one reconcile.
    public init(
        git: any GitSource, state: any StateStore, target: any ServingTarget, builds: any VersionBuilding,
        gates: any GateChecking
    ) {
        self.git = git
        self.state = state
        self.target = target
        self.builds = builds
        self.gates = gates
    }
}

/// The builder and artifact store of a workspace, as the engine sees them.
public struct WorkspaceBuilds: VersionBuilding {
    /// The workspace whose builder and artifact store are used.
    public let workspace: Workspace

    /// The builds of `workspace`.
    public init(workspace: Workspace) { self.workspace = workspace }

    public func resolve(_ pin: String) -> String? { workspace.digest(pin) }

    public func digests(models: [String], at commit: String) throws -> [String] {
        try workspace.builder.inputs(models: models, ref: commit).map(\.digest)
    }

    public func build(model: String, at commit: String) throws -> BuildInfo {
        try workspace.builder.build(model: model, ref: commit).info
    }
}

extension ServerClient: ServingTarget {
    /// `host:port`.
    public var address: String { "\(host):\(port)" }

    /// Starts the server through ``launch``.
    public func start(_ environment: EnvironmentManifest, commit: ObjectID) throws {
        guard let launch else {
            throw ReconcileError(.server, "the server at \(address) is not running and this client cannot start it")
        }
        try launch(environment, commit)
    }

    /// Sets `model`'s route in one call.
    public func route(model: String, to route: ServerState.Route) throws {
        try self.route(model: model, defaultVersion: route.defaultVersion, traffic: route.traffic, shadow: route.shadow)
    }
}
