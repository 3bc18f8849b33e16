public import Foundation

/// An environment's lease: who may reconcile it now, until when, and under which epoch. Each new holder gets a higher
/// epoch than every holder before it, so a write made under an old epoch can be told apart and refused (fencing).
public struct Lease: Sendable, Equatable, Codable {
    public var environment: String
    /// The holding reconciler, unique per process (`host:pid:random`).
    public var holder: String
    public var host: String
    public var pid: Int
    public var epoch: Int
    /// When it runs out unless renewed, by the store's clock.
    public var expiresAt: Date

    public init(environment: String, holder: String, host: String, pid: Int, epoch: Int, expiresAt: Date) {
        self.environment = environment
        self.holder = holder
        self.host = host
        self.pid = pid
        self.epoch = epoch
        self.expiresAt = expiresAt
    }

    /// `host pid N (epoch E)`, for messages.
    public var holderDescription: String { "\(host) pid \(pid) (epoch \(epoch))" }
}

/// A state store that keeps leases, for reconcilers of one environment on several hosts (the shared PostgreSQL store).
/// Taking, renewing and checking a lease are each one statement, so they work through a transaction-pooling proxy (no
/// session locks). A store without leases (SQLite, on one host) is locked with `flock` instead.
public protocol LeaseStore: Sendable {
    /// Takes `environment`'s lease for `holder` for `seconds` when nobody holds it or its holder's ran out (with the
    /// next epoch), or extends it when `holder` holds it already; nil when another holder's lease is running.
    func acquireLease(environment: String, holder: String, host: String, pid: Int, seconds: Double) throws(StateStoreError) -> Lease?
    /// Takes `environment`'s lease from `stale`, a holder known to be gone (its process no longer runs on the host it
    /// named), with the next epoch, before it ran out; nil when the lease changed meanwhile.
    func takeOverLease(_ stale: Lease, holder: String, host: String, pid: Int, seconds: Double) throws(StateStoreError) -> Lease?
    /// Extends `lease` by `seconds` from now; false when it is no longer held (it ran out and another took it).
    func renewLease(_ lease: Lease, seconds: Double) throws(StateStoreError) -> Bool
    /// True while `lease` is still the newest of its environment: writes made under it may go ahead.
    func isCurrent(_ lease: Lease) throws(StateStoreError) -> Bool
    /// Gives `lease` up at once (its epoch stays, so the next holder's is higher).
    func releaseLease(_ lease: Lease) throws(StateStoreError)
    /// The lease of `environment` as the store has it (running or run out), nil when none was ever taken.
    func lease(environment: String) throws(StateStoreError) -> Lease?
}
