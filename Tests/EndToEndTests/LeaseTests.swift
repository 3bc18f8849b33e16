import Foundation
import PostgresState
import Reconciler
import Registry
import StagecraftTesting
import Testing

/// Environment leases in the shared PostgreSQL store, with fencing: one holder at a time, a higher epoch for each new
/// holder, and the writes of a holder that lost its lease refused.
@Suite(.serialized) struct LeaseTests {
    @Test func oneHolderAtATimeAndEachTakeoverIsANewerEpoch() throws {
        let postgres = try PostgresServer()
        let store = try PostgresStateStore(url: postgres.url + "?sslmode=disable")
        let first = try #require(try store.acquireLease(environment: "qa", holder: "a", host: "host-a", pid: 1, seconds: 0.6))
        #expect(first.epoch == 1 && first.holder == "a")
        #expect(try store.acquireLease(environment: "qa", holder: "b", host: "host-b", pid: 2, seconds: 5) == nil, "two holders at once")
        #expect(try store.lease(environment: "qa")?.holder == "a")
        #expect(try store.renewLease(first, seconds: 0.6))
        #expect(try store.acquireLease(environment: "qa", holder: "a", host: "host-a", pid: 1, seconds: 0.6)?.epoch == 1, "a renewal is no new epoch")
        #expect(try store.acquireLease(environment: "prod", holder: "b", host: "host-b", pid: 2, seconds: 5)?.epoch == 1, "leases are per environment")

        // The first holder stops renewing (paused, cut off): once its lease ran out, another takes it with a newer epoch.
        Thread.sleep(forTimeInterval: 0.8)
        let second = try #require(try store.acquireLease(environment: "qa", holder: "b", host: "host-b", pid: 2, seconds: 5))
        #expect(second.epoch == 2)
        #expect(try !store.renewLease(first, seconds: 5), "a lost lease was renewed")
        #expect(try !store.isCurrent(first) && store.isCurrent(second))
        // As psql sees it.
        #expect(try postgres.psql("SELECT holder, host, pid, epoch FROM environment_lease WHERE environment = 'qa'") == "b|host-b|2|2")
        // Given up: the next holder gets a newer epoch still, at once.
        try store.releaseLease(second)
        #expect(try store.acquireLease(environment: "qa", holder: "a", host: "host-a", pid: 1, seconds: 5)?.epoch == 3)
    }

    @Test func writesUnderALostLeaseAreRefusedAndSayWhoTookOver() throws {
        let postgres = try PostgresServer()
        let store = try PostgresStateStore(url: postgres.url + "?sslmode=disable")
        let keeper = try LeaseKeeper(store: store, environment: "qa", wait: false, seconds: 0.6)
        #expect(throws: Never.self) { try keeper.check() }
        // Another reconciler of qa meanwhile: refused while the lease is renewed, and says by whom.
        let refused = #expect(throws: ReconcileError.self) { try LeaseKeeper(store: store, environment: "qa", wait: false, seconds: 5) }
        #expect(refused?.code == .locked && refused?.message.contains("lease held by \(ProcessInfo.processInfo.hostName) pid \(getpid()) (epoch 1)") == true,
                "\(String(describing: refused))")
        // Renewed in the background: still held after several terms.
        Thread.sleep(forTimeInterval: 1.5)
        #expect(throws: Never.self) { try keeper.check() }
        // Taken over (as if this holder had been cut off past its term): the next write is refused, by epoch.
        _ = try postgres.psql("UPDATE environment_lease SET holder = 'other', host = 'host-b', pid = 77, epoch = epoch + 1 WHERE environment = 'qa'")
        let fenced = #expect(throws: StateStoreError.self) { try keeper.check() }
        #expect(fenced?.code == .fenced)
        #expect(fenced?.message == "the lease of 'qa' was taken over by host-b pid 77 (epoch 2): this reconciler (epoch 1) stands down and writes nothing more")
        keeper.release()
        #expect(try postgres.psql("SELECT holder FROM environment_lease WHERE environment = 'qa'") == "other", "a lost lease was given up over its new holder")
    }

    /// Two reconcilers of dev on one shared store: the first is stopped (SIGSTOP) in the middle of its apply, holding
    /// the lease; the second takes the lease once it ran out and converges; the first, continued, has every write
    /// refused and stands down; every record is settled exactly once.
    @Test func aReconcilerStoppedMidApplyIsFencedOutByTheOneThatTookOver() throws {
        let postgres = try PostgresServer()
        let scratch = try ScratchRepository.example()
        try scratch.useFreePorts()
        defer { scratch.stopServers() }
        try scratch.keepState(in: postgres)
        #expect(try scratch.stagecraft(["build"]).status == 0)
        let lease = ["STAGECRAFT_LEASE_SECONDS": "2"]
        let first = try BackgroundProcess(
            Fixtures.stagecraftBinary, ["reconcile", "--env", "dev"], in: scratch.path,
            environment: scratch.environment.merging(lease.merging(["STAGECRAFT_FAILPOINT": "after-begin:pause"]) { $1 }) { $1 })
        defer { first.stop() }
        let deadline = Date().addingTimeInterval(60)
        while !first.log.contains("failpoint after-begin: paused") && Date() < deadline { usleep(20_000) }
        #expect(first.log.contains("failpoint after-begin: paused"), "\(first.log)")
        kill(first.process.processIdentifier, SIGSTOP)
        #expect(try postgres.psql("SELECT count(*) FROM deployment_record WHERE outcome = 'in-progress'") == "1")

        // The second waits for the lease to run out, takes it (epoch 2), settles the first's record and converges.
        let second = try scratch.stagecraft(["reconcile", "--env", "dev"], environment: lease)
        #expect(second.status == 0, "\(second.stdout)\(second.stderr)")
        #expect(second.stderr.contains("waiting for another reconcile of 'dev' to finish (lease held by"), "\(second.stderr)")
        #expect(try postgres.psql("SELECT epoch FROM environment_lease WHERE environment = 'dev'") == "2")

        // The first goes on: its writes are refused by epoch; it says so and stands down.
        kill(first.process.processIdentifier, SIGCONT)
        first.process.waitUntilExit()
        #expect(first.process.terminationStatus == 1)
        #expect(first.log.contains("was taken over by") && first.log.contains("this reconciler (epoch 1) stands down"), "\(first.log)")
        #expect(try postgres.psql("SELECT count(*) = count(DISTINCT id) FROM deployment_record") == "t")
        #expect(try postgres.psql("SELECT count(*) FROM deployment_record WHERE outcome = 'in-progress'") == "0")
        let outcomes = try postgres.psql("SELECT model, outcome, reason FROM deployment_record")
        #expect(try postgres.psql("SELECT count(*) FROM deployment_record WHERE outcome = 'interrupted'") == "1", "\(outcomes)")
        // What serves is what the second left, and a third reconcile finds it in sync; status names the lease.
        let third = try scratch.stagecraft(["reconcile", "--env", "dev"], environment: lease)
        #expect(third.stdout.contains("dev is in sync"), "\(third.stdout)\(third.stderr)")
        let status = try scratch.stagecraft(["status", "--env", "dev"])
        #expect(status.stdout.contains("dev: lease free (last epoch 3)"), "\(status.stdout)")
    }

    /// A holder on this host that is gone (killed) does not make the next reconcile wait for its lease to run out.
    @Test func aLeaseWhoseHolderOnThisHostIsGoneIsTakenAtOnce() throws {
        let postgres = try PostgresServer()
        let store = try PostgresStateStore(url: postgres.url + "?sslmode=disable")
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: "/bin/true")
        try gone.run()
        gone.waitUntilExit()
        let host = ProcessInfo.processInfo.hostName
        _ = try #require(try store.acquireLease(environment: "qa", holder: "\(host):\(gone.processIdentifier):1", host: host,
                                                 pid: Int(gone.processIdentifier), seconds: 60))
        let keeper = try LeaseKeeper(store: store, environment: "qa", wait: false, seconds: 5)
        defer { keeper.release() }
        #expect(keeper.lease.epoch == 2 && keeper.lease.pid == Int(getpid()))
        // One running elsewhere (another host's) is waited for.
        _ = try postgres.psql("UPDATE environment_lease SET host = 'host-b', pid = 1, expires_at = now() + interval '1 minute'")
        #expect(throws: ReconcileError.self) { try LeaseKeeper(store: store, environment: "qa", wait: false, seconds: 5) }
    }
}
