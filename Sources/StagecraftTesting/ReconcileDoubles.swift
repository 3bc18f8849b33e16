public import Foundation
public import GitStore
public import Manifests
public import Reconciler
public import Registry

// In-memory implementations of the reconcile engine's seams, for unit tests of the planner and the executor. They are
// test doubles of the project's own protocols; the real implementations (libgit2, SQLite, the server process) are
// exercised by the end-to-end tests.

/// A 64-hex-digit id made from `seed`, stable across runs (for commits and digests in tests).
public func testDigest(_ seed: String) -> String {
    var text = ""
    for salt in 0..<4 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 &+ UInt64(salt)
        for byte in seed.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        text += String(hash, radix: 16).leftPadded(to: 16)
    }
    return text
}

extension String {
    fileprivate func leftPadded(to length: Int) -> String { String(repeating: "0", count: max(0, length - count)) + self }
}

/// A git repository in memory: commits of whole trees on branches, notes, first-parent history.
public final class InMemoryGit: GitSource, @unchecked Sendable {
    private struct Stored {
        var tree: [String: Data]
        var commit: Commit
    }

    private let lock = NSLock()
    private var commits: [ObjectID: Stored] = [:]
    private var branches: [String: ObjectID] = [:]
    private var notes: [ObjectID: String] = [:]
    private var counter = 0
    /// The branch `HEAD` names.
    public let head: String

    public init(head: String = "main") { self.head = head }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// Commits `files` (path → text; nil deletes) on `branch` on top of its tip.
    @discardableResult
    public func commit(_ files: [String: String?], message: String = "change", on branch: String? = nil) -> ObjectID {
        let branch = branch ?? head
        return locked {
            var tree = branches[branch].flatMap { commits[$0]?.tree } ?? [:]
            for (path, text) in files { tree[path] = text.map { Data($0.utf8) } }
            return store(tree, message: message, branch: branch)
        }
    }

    private func store(_ tree: [String: Data], message: String, branch: String) -> ObjectID {
        counter += 1
        let id = ObjectID(hex: String(testDigest("commit \(counter)").prefix(40)))!
        let who = Signature(name: "test", email: "test@localhost")
        let parents = branches[branch].map { [$0] } ?? []
        commits[id] = Stored(tree: tree, commit: Commit(id: id, parents: parents, author: who, committer: who, message: message))
        branches[branch] = id
        return id
    }

    /// The text of a file at the tip of `branch`.
    public func text(_ path: String, on branch: String? = nil) -> String? {
        locked {
            branches[branch ?? head].flatMap { commits[$0]?.tree[path] }.map { String(decoding: $0, as: UTF8.self) }
        }
    }

    /// Every note line, in no particular order of commits.
    public var noteLines: [String] {
        locked { notes.values.flatMap { $0.split(separator: "\n").map(String.init) } }
    }

    public func resolve(_ revision: String) throws(GitError) -> ObjectID {
        let found: ObjectID? = locked {
            if revision == "HEAD" { return branches[head] }
            if let tip = branches[revision] { return tip }
            return commits.keys.first { $0.hex.hasPrefix(revision.lowercased()) && revision.count >= 7 }
        }
        guard let found else { throw GitError(.notFound, "no revision '\(revision)'", ref: revision) }
        return found
    }

    private func tree(_ commit: ObjectID) throws(GitError) -> [String: Data] {
        guard let tree = locked({ commits[commit]?.tree }) else { throw GitError(.notFound, "no commit \(commit.short)") }
        return tree
    }

    public func fileIfPresent(at path: String, in commit: ObjectID) throws(GitError) -> Data? { try tree(commit)[path] }

    public func fileExists(at path: String, in commit: ObjectID) throws(GitError) -> Bool { try tree(commit)[path] != nil }

    public func directory(at path: String, in commit: ObjectID) throws(GitError) -> [TreeEntry]? {
        let prefix = path.isEmpty ? "" : path + "/"
        var entries: [String: TreeEntry.Kind] = [:]
        for file in try tree(commit).keys where file.hasPrefix(prefix) {
            let rest = file.dropFirst(prefix.count)
            let name = String(rest.prefix { $0 != "/" })
            entries[name] = rest.contains("/") ? .directory : .file
        }
        guard !entries.isEmpty else { return nil }
        let zero = ObjectID(hex: String(repeating: "0", count: 40))!
        return entries.sorted { $0.key < $1.key }.map { TreeEntry(name: $0.key, kind: $0.value, id: zero) }
    }

    public func history(of path: String, from start: ObjectID, limit: Int?) throws(GitError) -> [ObjectID] {
        func content(_ tree: [String: Data]) -> [String: Data] {
            tree.filter { $0.key == path || $0.key.hasPrefix(path + "/") || path.isEmpty }
        }
        var found: [ObjectID] = []
        var current: ObjectID? = start
        while let id = current, found.count < (limit ?? .max) {
            guard let stored = locked({ commits[id] }) else { break }
            let parent = stored.commit.parents.first
            let before = try parent.map { (parent) throws(GitError) in content(try tree(parent)) } ?? [:]
            if content(stored.tree) != before { found.append(id) }
            current = parent
        }
        return found
    }

    public func commit(_ id: ObjectID) throws(GitError) -> Commit {
        guard let commit = locked({ commits[id]?.commit }) else { throw GitError(.notFound, "no commit \(id.short)") }
        return commit
    }

    public func branchTip(_ branch: String) throws(GitError) -> ObjectID? { locked { branches[branch] } }

    public func note(for commit: ObjectID, notesRef: String) throws(GitError) -> String? { locked { notes[commit] } }

    public func appendNoteLine(_ line: String, to commit: ObjectID, author: Signature, notesRef: String) throws(GitError) {
        locked { notes[commit, default: ""] += line + "\n" }
    }

    public func allNotes(notesRef: String) throws(GitError) -> [ObjectID: String] { locked { notes } }

    public func commitChanges(
        _ changes: [FileChange], onBranch branch: String, message: String, author: Signature, parent: ObjectID?
    ) throws(GitError) -> ObjectID {
        let result: Result<ObjectID, GitError> = locked {
            if let parent, branches[branch] != parent {
                return .failure(GitError(.conflict, "branch '\(branch)' moved", ref: branch))
            }
            var tree = branches[branch].flatMap { commits[$0]?.tree } ?? [:]
            for change in changes {
                switch change {
                case .write(let path, let contents): tree[path] = contents
                case .delete(let path): tree[path] = nil
                }
            }
            return .success(store(tree, message: message, branch: branch))
        }
        return try result.get()
    }
}

/// A state store in memory.
public final class InMemoryStateStore: StateStore, @unchecked Sendable {
    private let lock = NSLock()
    private var recordList: [DeploymentRecord] = []
    private var noted: Set<String> = []
    private var deployments: [String: [String: ServedModel]] = [:]
    private var synced: [String: String] = [:]
    /// Builds recorded, by digest.
    public private(set) var builds: [String: BuildInfo] = [:]

    public init() {}

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    public func served(environment: String) throws(StateStoreError) -> [String: ServedModel] {
        locked { deployments[environment] ?? [:] }
    }

    public func records(environment: String?, model: String?) throws(StateStoreError) -> [DeploymentRecord] {
        locked {
            recordList.filter { (environment == nil || $0.environment == environment) && (model == nil || $0.model == model) }
        }
    }

    public func begin(_ record: DeploymentRecord) throws(StateStoreError) { locked { upsert(record) } }

    private func upsert(_ record: DeploymentRecord) {
        if let index = recordList.firstIndex(where: { $0.id == record.id }) {
            recordList[index] = record
        } else {
            recordList.append(record)
        }
    }

    public func finish(_ record: DeploymentRecord, served: ServedModel?, removed: String?) throws(StateStoreError) {
        locked {
            upsert(record)
            if let served { deployments[served.environment, default: [:]][served.model] = served }
            if let removed { deployments[record.environment]?[removed] = nil }
        }
    }

    public func unnoted() throws(StateStoreError) -> [DeploymentRecord] {
        locked { recordList.filter { !noted.contains($0.id) && $0.outcome != .inProgress } }
    }

    public func markNoted(_ ids: [String]) throws(StateStoreError) { locked { noted.formUnion(ids) } }

    public func importRecords(_ records: [DeploymentRecord]) throws(StateStoreError) {
        locked {
            for record in records where !recordList.contains(where: { $0.id == record.id }) {
                recordList.append(record)
                noted.insert(record.id)
            }
        }
    }

    public func syncedCommit(environment: String) throws(StateStoreError) -> String? { locked { synced[environment] } }

    public func setSyncedCommit(_ commit: String?, environment: String) throws(StateStoreError) {
        locked { synced[environment] = commit }
    }

    public func recordBuild(_ info: BuildInfo) throws(StateStoreError) {
        locked { if builds[info.digest] == nil { builds[info.digest] = info } }
    }
}

/// An environment's server in memory: what it loads and routes, which calls fail, and every call made.
public final class InMemoryServingTarget: ServingTarget {
    /// A call that can be made to fail.
    public enum Call: String, Sendable { case start, state, load, route, unload, infer }

    public var running: Bool
    public var server: ServerState
    /// Calls that throw (a server error) instead of acting.
    public var failing: Set<Call> = []
    /// Every call that acted, in order (`load m v`, `route m v`, `unload m v`, `start`).
    public private(set) var calls: [String] = []
    /// What a start loads: what the state store records as deployed.
    private let deployed: () -> [String: ServedModel]
    public let address: String

    public init(running: Bool = true, address: String = "127.0.0.1:8101", deployed: @escaping () -> [String: ServedModel] = { [:] }) {
        self.running = running
        self.server = ServerState(versions: [:], sources: [:], routes: [:])
        self.address = address
        self.deployed = deployed
    }

    private func check(_ call: Call) throws {
        if failing.contains(call) { throw ReconcileError(.server, "the server refused \(call.rawValue) (test)") }
        if call != .start && !running { throw ReconcileError(.server, "no answer from the server at \(address)") }
    }

    public func isLive() -> Bool { running }

    public func start(_ environment: EnvironmentManifest, commit: ObjectID) throws {
        try check(.start)
        server = Planner.expectedAfterStart(deployed())
        running = true
        calls.append("start")
    }

    public func state() throws -> ServerState {
        try check(.state)
        return server
    }

    public func load(model: String, version: String) throws {
        try check(.load)
        server.versions[model, default: []].insert(version)
        calls.append("load \(model) \(VersionDigest.short(version))")
    }

    public func route(model: String, to route: ServerState.Route) throws {
        try check(.route)
        guard Planner.versions(of: route).isSubset(of: server.versions[model] ?? []) else {
            throw ReconcileError(.server, "route of \(model) names a version that is not loaded")
        }
        server.routes[model] = route
        calls.append("route \(model) \(VersionDigest.short(route.defaultVersion))")
    }

    public func unload(model: String, version: String?) throws {
        try check(.unload)
        if let version {
            server.versions[model]?.remove(version)
            calls.append("unload \(model) \(VersionDigest.short(version))")
        } else {
            server.versions[model] = nil
            server.routes[model] = nil
            calls.append("unload \(model)")
        }
    }

    public func infer(model: String, version: String, body: Data) throws -> (status: Int, json: [String: Any], seconds: Double) {
        try check(.infer)
        return (200, [:], 0.001)
    }
}

/// Builds in memory: which digest each model builds to at each commit, which builds fail, and what is built.
public final class InMemoryBuilds: VersionBuilding {
    /// What is built, by full digest.
    public private(set) var built: [String: BuildInfo] = [:]
    /// Models whose build throws.
    public var failing: Set<String> = []
    /// The digest a model builds to at a commit, when a test sets one (`model@commit`); else ``digest(model:at:)``.
    public var outcomes: [String: String] = [:]
    /// Every build run, as `model@commit-prefix`.
    public private(set) var builds: [String] = []

    public init() {}

    /// Where manifests and data are read: a digest depends on their content, not on the commit.
    public var git: InMemoryGit?

    /// The digest `model` builds to at `commit`: made from its manifest's and data's content there.
    public func digest(model: String, at commit: String) -> String {
        if let outcome = outcomes["\(model)@\(commit)"] { return outcome }
        guard let git, let id = try? git.resolve(commit) else { return testDigest("\(model) built at \(commit)") }
        let inputs = ["manifests/\(model).yaml", "data/\(model)/train.csv", "data/\(model)/test.csv"].map { path in
            (try? git.fileIfPresent(at: path, in: id)).flatMap { $0 }.map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
        return testDigest(model + inputs.joined(separator: "\u{0}"))
    }

    /// Marks `digest` of `model` as built.
    public func add(_ digest: String, model: String, source: String = String(repeating: "a", count: 40)) {
        built[digest] = Self.info(digest, model: model, source: source)
    }

    static func info(_ digest: String, model: String, source: String) -> BuildInfo {
        BuildInfo(
            digest: digest, model: model, algorithm: "test", task: "binary-classification", source: source, ref: source,
            data: [:], parameters: [:], metrics: ["auc": 0.99], timings: [:], tool: "test", createdAt: Date())
    }

    public func resolve(_ pin: String) -> String? {
        let matches = built.keys.filter { $0.hasPrefix(pin) }
        return matches.count == 1 ? matches[0] : nil
    }

    public func digests(models: [String], at commit: String) throws -> [String] {
        models.map { digest(model: $0, at: commit) }
    }

    public func build(model: String, at commit: String) throws -> BuildInfo {
        builds.append("\(model)@\(commit.prefix(12))")
        if failing.contains(model) { throw ReconcileError(.build, "the trainer of \(model) failed (test)") }
        let digest = digest(model: model, at: commit)
        let info = Self.info(digest, model: model, source: commit)
        built[digest] = info
        return info
    }
}

/// Gate results in memory: every gate passes except for the versions a test marks as failing.
public final class ScriptedGates: GateChecking {
    /// Versions whose gates fail.
    public var failingVersions: Set<String> = []
    /// Versions whose probe cannot reach the server (an error, not a failed gate).
    public var unreachableVersions: Set<String> = []
    /// Every version verified, in order.
    public private(set) var verified: [String] = []

    public init() {}

    public func verify(model: String, version: String, gates: [Gate], on target: any ServingTarget) throws -> [GateResult] {
        verified.append(version)
        if unreachableVersions.contains(version) { throw ReconcileError(.server, "the probe of \(model) got no answer (test)") }
        _ = try target.infer(model: model, version: version, body: Data())
        let passed = !failingVersions.contains(version)
        return [GateResult(gate: "predictions match the build's", metric: "predictionMismatches", value: 0, passed: true, stage: "online")]
            + gates.map { gate in
                GateResult(
                    gate: gate.description, metric: gate.metric.rawValue, value: passed ? 0.99 : 0.5, passed: passed,
                    stage: "offline")
            }
    }
}

/// A project in an ``InMemoryGit`` with the seams around it: one binary classifier per model name, environments
/// written by the test.
public struct InMemoryProject {
    public let git = InMemoryGit()
    public let state = InMemoryStateStore()
    public let builds = InMemoryBuilds()
    public let gates = ScriptedGates()
    public let target: InMemoryServingTarget

    public init(models: [String] = ["churn"], running: Bool = true) {
        let state = self.state
        target = InMemoryServingTarget(running: running) { (try? state.served(environment: "qa")) ?? [:] }
        var files: [String: String?] = ["stagecraft.yaml": "apiVersion: stagecraft/v1\nkind: Project\nspec:\n  branch: main\n"]
        for model in models {
            files["manifests/\(model).yaml"] = """
                apiVersion: stagecraft/v1
                kind: Model
                metadata:
                  name: \(model)
                spec:
                  task: binary-classification
                  data: {train: data/\(model)/train.csv, test: data/\(model)/test.csv, target: y}
                  trainer: {algorithm: logistic-regression}

                """
            files["data/\(model)/train.csv"] = "x,y\n1,0\n2,1\n3,0\n4,1\n"
            files["data/\(model)/test.csv"] = "x,y\n1,0\n2,1\n"
        }
        git.commit(files, message: "project")
        builds.git = git
    }

    public var seams: ReconcileSeams { ReconcileSeams(git: git, state: state, target: target, builds: builds, gates: gates) }

    /// Writes `environments/qa.yaml` with `models` (YAML lines under `models:`) and commits it.
    @discardableResult
    public func environment(_ models: String, track: Bool = false, gates: String = "auc: \">= 0.9\"") -> ObjectID {
        let text =
            "apiVersion: stagecraft/v1\nkind: Environment\nmetadata:\n  name: qa\nspec:\n"
            + (track ? "  track: true\n" : "") + "  server: {host: 127.0.0.1, port: 8101}\n  gates: {\(gates)}\n"
            + "  models:\n" + models
        return git.commit(["environments/qa.yaml": text], message: "qa")
    }

    /// A reconciler of `qa` over the seams.
    public func reconciler() -> EnvironmentReconciler {
        EnvironmentReconciler(seams: seams, environment: "qa", ref: "HEAD", branch: "main", actor: "test")
    }
}
