public import Foundation
public import GitStore
public import Manifests
import PostgresState
public import Registry

/// One repository as Stagecraft works on it: the git objects, the project settings, the artifact store, the
/// state store and the local folder (`.stagecraft/`) that holds them.
public struct Workspace: Sendable {
    public let repository: Repository
    public let builder: Builder
    public let settings: ProjectSettings
    public let artifacts: ArtifactStore
    /// Who acts: the git identity of the user running the command.
    public let actor: Signature
    /// The folder that holds `.stagecraft/`.
    public var root: URL { builder.localRoot }

    /// Opens the workspace of `repository`, reading `stagecraft.yaml` at `ref` (defaults when absent).
    public init(repository: Repository, toolVersion: String, ref: String = "HEAD") throws {
        self.repository = repository
        builder = Builder(repository: repository, toolVersion: toolVersion)
        let commit = try repository.resolve(ref)
        if let data = try repository.fileIfPresent(at: ProjectSettings.file, in: commit) {
            let (settings, diagnostics) = ProjectSettings.decode(String(decoding: data, as: UTF8.self))
            guard let settings else { throw InvalidProject(diagnostics) }
            self.settings = settings
        } else {
            settings = ProjectSettings()
        }
        artifacts = builder.store(for: settings)
        actor = repository.defaultSignature()
    }

    /// The state store file (when the store is SQLite).
    public var statePath: String { root.appendingPathComponent(settings.stateStore).path }

    /// Opens the state store; when its file is missing (deleted, or a new clone) or empty (0 bytes: nothing was ever
    /// written to it, or it was truncated), its deployment records are rebuilt from the git notes first, so that nothing
    /// recorded is lost.
    /// - Parameter notice: told, in a sentence for the user, when the store is rebuilt.
    /// - Throws: ``StateStoreError`` naming `stagecraft state rebuild` when the file is not a state store.
    public func openState(notice: (String) -> Void = { _ in }) throws -> any StateStore {
        if settings.stateStoreIsPostgres {
            // A shared store: a new database (no record yet) takes the records of the notes, as a new SQLite file does.
            let store = try PostgresStateStore(url: settings.stateStore)
            if try store.isEmpty() {
                let records = try notedRecords()
                try store.importRecords(records)
                if !records.isEmpty {
                    notice(
                        "the state store \(store.location) was empty: imported \(records.count) deployment record(s) "
                            + "from refs/notes/stagecraft")
                }
            }
            return store
        }
        func size(_ path: String) -> Int? { (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil }
        // Empty: no byte in the file nor in its write-ahead log (where a store just made by another process keeps its
        // first pages). SQLite takes an empty file as a new database; nothing is deleted (another process may have it open).
        let empty = size(statePath) == 0 && (size(statePath + "-wal") ?? 0) == 0
        let missing = size(statePath) == nil
        let store: SQLiteStateStore
        do {
            store = try SQLiteStateStore(path: statePath)
        } catch {
            throw StateStoreError(
                .damaged,
                "\(error.description)\nThe file is damaged or not a state store: `stagecraft state rebuild` moves it "
                    + "aside and rebuilds the records from refs/notes/stagecraft")
        }
        if missing || empty {
            // Importing is idempotent (records keep their ids), so two processes that both found it empty agree.
            let records = try notedRecords()
            try store.importRecords(records)
            if !records.isEmpty {
                notice(
                    "the state store \(statePath) was \(empty ? "empty" : "missing"): rebuilt \(records.count) deployment record(s) "
                        + "from refs/notes/stagecraft")
            }
        }
        return store
    }

    /// Moves the state store aside (to `<file>.damaged-<time>`, with its WAL files) and makes a new one from the
    /// records in `refs/notes/stagecraft`: the way forward from a damaged store. Returns where the old file went (nil
    /// when there was none) and how many records the new one holds.
    public func rebuildState() throws -> (movedTo: String?, records: Int) {
        if settings.stateStoreIsPostgres {
            // A shared database is not moved aside: what the notes hold is added, what it holds is kept.
            let records = try notedRecords()
            try PostgresStateStore(url: settings.stateStore).importRecords(records)
            return (nil, records.count)
        }
        var movedTo: String?
        if FileManager.default.fileExists(atPath: statePath) {
            let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
            var target = "\(statePath).damaged-\(stamp)"
            var attempt = 1
            while FileManager.default.fileExists(atPath: target) {  // two rebuilds within a second keep both files
                attempt += 1
                target = "\(statePath).damaged-\(stamp)-\(attempt)"
            }
            for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: statePath + suffix) {
                try FileManager.default.moveItem(atPath: statePath + suffix, toPath: target + suffix)
            }
            movedTo = target
        }
        let records = try notedRecords()
        let store = try SQLiteStateStore(path: statePath)
        try store.importRecords(records)
        return (movedTo, records.count)
    }

    /// Every deployment record in `refs/notes/stagecraft`, oldest first.
    public func notedRecords() throws -> [DeploymentRecord] {
        try repository.allNotes().values.flatMap(DeploymentRecord.parseNote).sorted { ($0.startedAt, $0.id) < ($1.startedAt, $1.id) }
    }

    /// Fetches the deployment records other hosts pushed to `url` (its `refs/notes/stagecraft`), merges them into this
    /// repository's notes, and adds to `state` those it lacks: the upstream evidence a promotion checks, when hosts
    /// share no state store. Returns how many records `state` gained.
    public func importRemoteRecords(from url: String, into state: any StateStore) throws -> Int {
        try repository.takeNotes(from: url)
        let known = Set(try state.records(environment: nil, model: nil).map(\.id))
        let new = try notedRecords().filter { !known.contains($0.id) }
        try state.importRecords(new)
        return new.count
    }

    /// Writes every finished record not yet in the git notes onto its environment-file commit.
    public func writeNotes(_ state: any StateStore) throws { try EnvironmentFiles.writeNotes(state, to: repository) }

    /// The environment file of `environment` at `commit`, decoded and checked on its own.
    public func environment(_ environment: String, at commit: ObjectID) throws -> EnvironmentManifest {
        try EnvironmentFiles.read(environment, at: commit, in: repository)
    }

    /// The environment file of `environment` at `commit`, checked as `validate` checks it (see
    /// ``EnvironmentFiles/validated(_:at:in:)``): what reconcile and plan deploy is what validate accepts.
    public func validatedEnvironment(_ environment: String, at commit: ObjectID) throws -> EnvironmentManifest {
        try EnvironmentFiles.validated(environment, at: commit, in: repository)
    }

    public static func environmentFile(_ environment: String) -> String { "\(Project.environmentsFolder)/\(environment).yaml" }

    /// The environments at `commit`: the names of `environments/*.yaml`, sorted.
    public func environmentNames(at commit: ObjectID) throws -> [String] { try EnvironmentFiles.names(at: commit, in: repository) }

    /// A client for `environment`'s server, with the admin token of this workspace.
    public func serverClient(for environment: EnvironmentManifest) throws -> ServerClient {
        let client = ServerClient(
            host: environment.host, port: environment.port, token: try AdminToken.loadOrCreate(root: root), repositoryPath: root.path)
        client.grpcPort = environment.grpcPort
        return client
    }

    /// The route a deployment asks for (default, split, shadow), with full digests; nil when it pins no version or
    /// a pinned version is not in the artifact store.
    public func route(_ deployment: ModelDeployment) -> ServerState.Route? {
        Planner.pinnedRoute(deployment).flatMap { Planner.resolved($0, digest) }
    }

    /// The full digest of a pinned version when it is in the artifact store.
    public func digest(_ pin: String) -> String? { artifacts.resolve(pin) }
}
