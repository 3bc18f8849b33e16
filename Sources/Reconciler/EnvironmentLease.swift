public import Foundation
public import GitStore
public import InferenceGRPC
public import Manifests
public import Registry
import Synchronization

/// An environment's lease in a shared state store, held while one reconcile runs: taken (waiting while another
/// holder's runs, unless `wait` is false), renewed every third of its term on a thread of its own, given up at the
/// end; a lease whose holder ran on this host and is gone is taken at once. Once it is lost (taken over after it ran
/// out, or not renewed in time), ``check()`` refuses every write.
public final class LeaseKeeper: Sendable {
    /// A lease's term: `STAGECRAFT_LEASE_SECONDS`, else 30 s.
    public static var seconds: Double {
        ProcessInfo.processInfo.environment["STAGECRAFT_LEASE_SECONDS"].flatMap(Double.init).map { max(0.5, $0) } ?? 30
    }

    private let store: any LeaseStore
    /// The lease as taken.
    public let lease: Lease
    private let term: Double
    private struct State {
        var lost = false
        var stopped = false
        /// When the lease was last taken or renewed, by this host's clock.
        var renewed = Date()
    }
    private let state = Mutex(State())
    private let stop = DispatchSemaphore(value: 0)

    /// Takes `environment`'s lease in `store` for `seconds` at a time.
    /// - Throws: ``ReconcileError`` (`locked`) when another holds it and `wait` is false.
    public init(
        store: any LeaseStore, environment: String, wait: Bool, seconds: Double = LeaseKeeper.seconds, waiting: (String) -> Void = { _ in }
    ) throws {
        self.store = store
        term = seconds
        let host = ProcessInfo.processInfo.hostName
        let holder = "\(host):\(getpid()):\(UInt32.random(in: 0...UInt32.max))"
        var told = false
        while true {
            if let lease = try store.acquireLease(environment: environment, holder: holder, host: host, pid: Int(getpid()), seconds: term) {
                self.lease = lease
                break
            }
            let current = try store.lease(environment: environment)
            // Its holder ran on this host and is gone (killed, crashed): no need to wait for the lease to run out.
            if let current, current.host == host, current.pid != Int(getpid()), kill(pid_t(current.pid), 0) != 0, errno == ESRCH,
                let lease = try store.takeOverLease(current, holder: holder, host: host, pid: Int(getpid()), seconds: term)
            {
                self.lease = lease
                break
            }
            let who = Self.describe(current)
            guard wait else { throw ReconcileError(.locked, "another reconcile of '\(environment)' is running (\(who))") }
            if !told { waiting("waiting for another reconcile of '\(environment)' to finish (\(who))") }
            told = true
            Thread.sleep(forTimeInterval: min(1, term / 4))
        }
        let thread = Thread { [self] in renewUntilStopped() }
        thread.start()
    }

    /// `lease held by <host> pid <pid> (epoch N), for 12 s more unless renewed`.
    public static func describe(_ lease: Lease?) -> String {
        guard let lease else { return "lease held" }
        let left = Int(lease.expiresAt.timeIntervalSinceNow.rounded(.up))
        return "lease held by \(lease.holderDescription), " + (left > 0 ? "for \(left) s more unless renewed" : "run out")
    }

    private func renewUntilStopped() {
        while stop.wait(timeout: .now() + term / 3) == .timedOut {
            let renewed: Bool?
            do { renewed = try store.renewLease(lease, seconds: term) } catch { renewed = nil }
            let keepGoing = state.withLock { state -> Bool in
                switch renewed {
                case true?: state.renewed = Date()
                case false?: state.lost = true
                case nil:
                    // The store cannot be reached: past the term, another may hold the lease now.
                    if Date().timeIntervalSince(state.renewed) >= term { state.lost = true }
                }
                return !state.lost && !state.stopped
            }
            if !keepGoing { return }
        }
    }

    /// Refuses a write once the lease is lost: taken over by a newer epoch, or not renewed within its term.
    /// - Throws: ``StateStoreError`` (`fenced`) saying who holds the environment now.
    public func check() throws(StateStoreError) {
        var lost = state.withLock { $0.lost }
        if !lost, try !store.isCurrent(lease) {
            lost = true
            state.withLock { $0.lost = true }
        }
        guard lost else { return }
        let now = (try? store.lease(environment: lease.environment)).flatMap { $0 }
        let by = now.map { $0.epoch > lease.epoch ? "taken over by \($0.holderDescription)" : "not renewed in time" } ?? "lost"
        throw StateStoreError(
            .fenced,
            "the lease of '\(lease.environment)' was \(by): this reconciler (epoch \(lease.epoch)) stands down and writes nothing more")
    }

    /// Stops renewing and gives the lease up (when it is still held).
    public func release() {
        let lost = state.withLock { state -> Bool in
            state.stopped = true
            return state.lost
        }
        stop.signal()
        if !lost { try? store.releaseLease(lease) }
    }
}

/// A state store whose writes go ahead only while a lease is held: each is refused (`fenced`) once a newer epoch took
/// the environment. Reads pass through. `unnoted()` is checked too, since what it returns is written to the notes.
struct FencedStateStore: StateStore {
    let base: any StateStore
    let keeper: LeaseKeeper

    func served(environment: String) throws(StateStoreError) -> [String: ServedModel] { try base.served(environment: environment) }
    func records(environment: String?, model: String?) throws(StateStoreError) -> [DeploymentRecord] {
        try base.records(environment: environment, model: model)
    }
    func syncedCommit(environment: String) throws(StateStoreError) -> String? { try base.syncedCommit(environment: environment) }

    func begin(_ record: DeploymentRecord) throws(StateStoreError) {
        try keeper.check()
        try base.begin(record)
    }
    func finish(_ record: DeploymentRecord, served: ServedModel?, removed: String?) throws(StateStoreError) {
        try keeper.check()
        try base.finish(record, served: served, removed: removed)
    }
    func unnoted() throws(StateStoreError) -> [DeploymentRecord] {
        try keeper.check()
        return try base.unnoted()
    }
    func markNoted(_ ids: [String]) throws(StateStoreError) {
        try keeper.check()
        try base.markNoted(ids)
    }
    func importRecords(_ records: [DeploymentRecord]) throws(StateStoreError) {
        try keeper.check()
        try base.importRecords(records)
    }
    func setSyncedCommit(_ commit: String?, environment: String) throws(StateStoreError) {
        try keeper.check()
        try base.setSyncedCommit(commit, environment: environment)
    }
    func recordBuild(_ info: BuildInfo) throws(StateStoreError) {
        try keeper.check()
        try base.recordBuild(info)
    }
}

/// A serving target that changes what serves only while a lease is held: starting, loading, routing and unloading
/// are refused (`fenced`) once a newer epoch took the environment.
final class FencedTarget: ServingTarget {
    let base: any ServingTarget
    let keeper: LeaseKeeper

    init(base: any ServingTarget, keeper: LeaseKeeper) {
        self.base = base
        self.keeper = keeper
    }

    var address: String { base.address }
    var recordedName: String? { base.recordedName }
    var servesGRPC: Bool { base.servesGRPC }
    func isLive() -> Bool { base.isLive() }
    func state() throws -> ServerState { try base.state() }
    func infer(model: String, version: String, body: Data) throws -> (status: Int, json: [String: Any], seconds: Double) {
        try base.infer(model: model, version: version, body: body)
    }
    func inferOverGRPC(_ request: Inference_ModelInferRequest) throws -> Inference_ModelInferResponse { try base.inferOverGRPC(request) }

    func start(_ environment: EnvironmentManifest, commit: ObjectID) throws {
        try keeper.check()
        try base.start(environment, commit: commit)
    }
    func load(model: String, version: String) throws {
        try keeper.check()
        try base.load(model: model, version: version)
    }
    func route(model: String, to route: ServerState.Route) throws {
        try keeper.check()
        try base.route(model: model, to: route)
    }
    func unload(model: String, version: String?) throws {
        try keeper.check()
        try base.unload(model: model, version: version)
    }
}

extension ReconcileSeams {
    /// The same seams, with the state store's writes and the target's changes refused once `keeper`'s lease is lost.
    func fenced(by keeper: LeaseKeeper) -> ReconcileSeams {
        var seams = self
        seams.state = FencedStateStore(base: state, keeper: keeper)
        seams.target = FencedTarget(base: target, keeper: keeper)
        return seams
    }
}
