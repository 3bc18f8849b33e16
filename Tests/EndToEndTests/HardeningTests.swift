import Foundation
import StagecraftTesting
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The gaps a hostile campaign found, each kept closed: the real binary, real git, real processes.
@Suite(.serialized)
struct HardeningTests {
    let binary = Fixtures.stagecraftBinary

    /// The example with free ports and dev reconciled (both models built, promoted, verified and served).
    func reconciledExample() throws -> ScratchRepository {
        let scratch = try ScratchRepository.example()
        try scratch.useFreePorts()
        let reconciled = try scratch.stagecraft(["reconcile", "--env", "dev"])
        #expect(reconciled.status == 0, "\(reconciled.stderr)")
        return scratch
    }

    /// Whether `pid` is a running process (a zombie, exited and not yet reaped, is not).
    func isAlive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return !stat[close...].hasPrefix(") Z")
    }

    func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    @Test func buildWithNoModelNamedFailsOnAnyBrokenManifestAndListsEveryProblem() throws {
        let scratch = try ScratchRepository.example()
        let manifest = try scratch.directory.read("manifests/breast-cancer.yaml")
        try scratch.commit(["manifests/penguins.yaml": "garbage: [\n",
                            "manifests/breast-cancer.yaml": manifest.replacingOccurrences(of: "binary-classification", with: "clasification")])
        let build = try scratch.stagecraft(["build"])
        #expect(build.status == 1)
        #expect(build.stderr.contains("manifests/penguins.yaml:"), "\(build.stderr)")
        #expect(build.stderr.contains("manifests/breast-cancer.yaml:6:9: unknown task 'clasification'"), "\(build.stderr)")
        #expect(!build.stdout.contains("built"))
        #expect(!FileManager.default.fileExists(atPath: scratch.directory.appending(".stagecraft/artifacts")))
        // A track environment builds the models it lists: every problem of each, and nothing promoted.
        try scratch.useFreePorts()
        let reconcile = try scratch.stagecraft(["reconcile", "--env", "dev"])
        #expect(reconcile.status == 1)
        #expect(reconcile.stderr.contains("manifests/penguins.yaml:2:1: invalid YAML"), "\(reconcile.stderr)")
        #expect(reconcile.stderr.contains("manifests/breast-cancer.yaml:6:9: unknown task 'clasification'"), "\(reconcile.stderr)")
        scratch.stopServers()
    }

    @Test func namesAreCheckedBeforeAnyPathIsBuiltFromThem() throws {
        let scratch = try ScratchRepository.example()
        for arguments in [["reconcile", "--env", "../../evil", "--no-wait"], ["plan", "--env", "../../evil"], ["stop", "--env", "../../evil"],
                          ["serve", "--env", "../../evil", "--detach"], ["status", "--env", "../../evil"],
                          ["promote", "penguins", "--to", "../../evil"], ["build", "../../evil"]] {
            let result = try scratch.stagecraft(arguments)
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("'../../evil' is not a valid"), "\(arguments): \(result.stderr)")
        }
        let parent = URL(fileURLWithPath: scratch.path).deletingLastPathComponent().path
        for folder in [scratch.path, parent, scratch.directory.appending(".stagecraft")] {
            #expect(!FileManager.default.fileExists(atPath: folder + "/evil.lock"))
            #expect(!FileManager.default.fileExists(atPath: folder + "/evil.pid"))
            #expect(!FileManager.default.fileExists(atPath: folder + "/evil.log"))
        }
    }

    @Test func stopSignalsOnlyAServerThatHoldsItsPidFile() throws {
        let scratch = try ScratchRepository.example()
        try scratch.useFreePorts()
        // A stale pid file (a crash, a reboot) naming a live, unrelated process.
        let victim = Process()
        victim.executableURL = URL(fileURLWithPath: "/bin/sleep")
        victim.arguments = ["60"]
        try victim.run()
        defer { victim.terminate() }
        try scratch.directory.write("\(victim.processIdentifier)\n", to: ".stagecraft/run/qa.pid")
        try scratch.directory.write("\(victim.processIdentifier)\n", to: "victim.pid")
        let stale = try scratch.stagecraft(["stop", "--env", "qa"])
        #expect(stale.status == 0)
        #expect(stale.stdout == "no server is running for 'qa'\n")
        let aimed = try scratch.stagecraft(["stop", "--env", "../../victim"])
        #expect(aimed.status == 64)
        usleep(200_000)
        #expect(victim.isRunning, "stop signalled a process that is not a server of this repository")

        // A real server, started under umask 000: its files are private all the same, and stop stops it.
        let reconciled = try ProcessRunner.run("sh", ["-c", "umask 000 && exec \"$0\" \"$@\"", binary, "reconcile", "--env", "dev"], in: scratch.path)
        #expect(reconciled.status == 0, "\(reconciled.stderr)")
        let run = scratch.directory.appending(".stagecraft/run")
        #expect(try mode(run) == 0o700)
        for file in ["dev.pid", "dev.log", "dev.lock"] { #expect(try mode(run + "/" + file) == 0o600, "\(file)") }
        #expect(try mode(scratch.directory.appending(".stagecraft/admin-token")) == 0o600)
        #expect(try mode(scratch.directory.appending(".stagecraft/state.db")) == 0o644)
        let artifacts = scratch.directory.appending(".stagecraft/artifacts")
        for digest in try FileManager.default.contentsOfDirectory(atPath: artifacts) {
            #expect(try mode(artifacts + "/" + digest) == 0o755)
            #expect(try mode(artifacts + "/" + digest + "/model.json") == 0o644)
        }
        // The pid file's text is not what stop trusts: pointed at the victim, it still stops the real server only.
        let server = try #require(Int32(try scratch.directory.read(".stagecraft/run/dev.pid").trimmingCharacters(in: .whitespacesAndNewlines)))
        let stopped = try scratch.stagecraft(["stop", "--env", "dev"])
        #expect(stopped.status == 0, "\(stopped.stderr)")
        #expect(stopped.stdout == "✓ stopped dev (pid \(server))\n")
        #expect(!isAlive(server))
        #expect(victim.isRunning)
    }

    @Test func anEmptyStateStoreIsRebuiltFromTheNotesAndADamagedOneHasAWayForward() throws {
        let scratch = try reconciledExample()
        defer { scratch.stopServers() }
        let state = scratch.directory.appending(".stagecraft/state.db")
        func recordCount() throws -> Int {
            let history = try scratch.stagecraft(["history", "--env", "dev", "--output", "json"])
            #expect(history.status == 0, "\(history.stderr)")
            let entries = try JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [[String: Any]] ?? []
            return entries.flatMap { $0["records"] as? [[String: Any]] ?? [] }.count
        }
        #expect(try recordCount() == 2)
        scratch.stopServers()
        // 0 bytes: taken as missing, rebuilt from refs/notes/stagecraft, and said.
        for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: state + suffix) }
        #expect(truncate(state, 0) == 0)
        let history = try scratch.stagecraft(["history", "--env", "dev", "--output", "json"])
        #expect(history.stderr.contains("warning: the state store \(state) was empty: rebuilt 2 deployment record(s) from refs/notes/stagecraft"),
                "\(history.stderr)")
        #expect(try recordCount() == 2)
        // Garbage: a clear error naming the way forward, then `state rebuild` moves it aside and rebuilds.
        for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: state + suffix) }
        try Data(repeating: 0x41, count: 8192).write(to: URL(fileURLWithPath: state))
        let damaged = try scratch.stagecraft(["history", "--env", "dev"])
        #expect(damaged.status == 1)
        #expect(damaged.stderr.contains("`stagecraft state rebuild` moves it aside and rebuilds the records from refs/notes/stagecraft"),
                "\(damaged.stderr)")
        let rebuilt = try scratch.stagecraft(["state", "rebuild"])
        #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
        #expect(rebuilt.stdout.hasPrefix("moved the old state store to \(state).damaged-"))
        #expect(rebuilt.stdout.hasSuffix("✓ rebuilt \(state) with 2 deployment record(s) from refs/notes/stagecraft\n"))
        let moved = try FileManager.default.contentsOfDirectory(atPath: scratch.directory.appending(".stagecraft")).filter { $0.hasPrefix("state.db.damaged-") }
        #expect(moved.count == 1)
        #expect(try recordCount() == 2)
    }

    @Test func gitLockFilesLeftBehindAreClearedWhenOursAndNamedOtherwise() throws {
        let scratch = try ScratchRepository.example()
        try scratch.useFreePorts()
        defer { scratch.stopServers() }
        let lock = scratch.directory.appending(".git/index.lock")
        // Left by a process that died, not by Stagecraft: named, with the command that clears it.
        FileManager.default.createFile(atPath: lock, contents: Data())
        let refused = try scratch.stagecraft(["reconcile", "--env", "dev"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("\(lock) was left behind by a git process that died (no process has it open); remove it and try again: rm '\(lock)'"),
                "\(refused.stderr)")
        // Held by a running process: named by pid.
        let holder = try BackgroundProcess("sh", ["-c", "exec 3<\"$0\"; exec sleep 30", lock])
        usleep(300_000)
        let held = try scratch.stagecraft(["reconcile", "--env", "dev"])
        holder.stop()
        #expect(held.status == 1)
        #expect(held.stderr.contains("\(lock) is held by a running process (pid "), "\(held.stderr)")
        // Left by a Stagecraft process killed while it held the repository's write lock: removed, and the commit goes on.
        try "index.lock\n".write(toFile: scratch.directory.appending(".git/stagecraft.lock"), atomically: false, encoding: .utf8)
        let reconciled = try scratch.stagecraft(["reconcile", "--env", "dev"])
        #expect(reconciled.status == 0, "\(reconciled.stderr)")
        #expect(!FileManager.default.fileExists(atPath: lock))
        #expect(try scratch.git(["status", "--porcelain"]) == "")
        try scratch.git(["add", "-A"])  // the index is usable again
    }

    @Test func concurrentPromotesAreAppliedInTurnAndAPinnedVersionIsNotCommittedAgain() throws {
        let scratch = try reconciledExample()
        defer { scratch.stopServers() }
        func promoteBoth(to environment: String) throws -> [ProcessOutput] {
            let outputs = Mutex<[ProcessOutput]>([])
            let threads = ["breast-cancer", "penguins", "penguins"].map { model in
                Thread { [binary] in
                    let output = try? ProcessRunner.run(binary, ["promote", model, "--to", environment], in: scratch.path)
                    if let output { outputs.withLock { $0.append(output) } }
                }
            }
            threads.forEach { $0.start() }
            while threads.contains(where: { !$0.isFinished }) { usleep(10_000) }
            return outputs.withLock { $0 }
        }
        for round in 0..<3 {
            let environment = round == 0 ? "qa" : "prod"
            let before = try scratch.gitLine(["rev-list", "--count", "HEAD"])
            let outputs = try promoteBoth(to: environment)
            #expect(outputs.count == 3)
            for output in outputs { #expect(output.status == 0, "round \(round): \(output.stderr)") }
            let commits = Int(try scratch.gitLine(["rev-list", "--count", "HEAD"]))! - Int(before)!
            // Two models promoted, the second promote of penguins finds it already pinned; a third round commits nothing.
            #expect(commits == (round == 2 ? 0 : 2), "round \(round)")
            #expect(outputs.filter { $0.stdout.contains("is already pinned in \(environment)") }.count == (round == 2 ? 3 : 1), "round \(round)")
            #expect(try scratch.git(["status", "--porcelain"]) == "")
            let file = try scratch.directory.read("environments/\(environment).yaml")
            #expect(!file.contains("version: ~"), "\(file)")
            if round == 0 {
                let qa = try scratch.stagecraft(["reconcile", "--env", "qa"])
                #expect(qa.status == 0, "\(qa.stderr)")
            }
        }
        #expect(try ProcessRunner.run("git", ["-C", scratch.path, "fsck", "--strict"]).status == 0)
    }

    @Test func dataPathsAreNormalizedAndSymbolicLinksRefusedWithAPosition() throws {
        let scratch = try ScratchRepository.example()
        let manifest = try scratch.directory.read("manifests/breast-cancer.yaml")
        try scratch.commit(["manifests/breast-cancer.yaml": manifest.replacingOccurrences(of: "test: data/breast-cancer/test.csv",
                                                                                         with: "test: ./data/breast-cancer/../breast-cancer/test.csv")])
        let valid = try scratch.stagecraft(["validate"])
        #expect(valid.status == 0, "\(valid.stdout)\(valid.stderr)")
        #expect(try scratch.stagecraft(["build", "breast-cancer"]).status == 0)

        let line = manifest.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("train: ") }! + 1
        try scratch.commit(["manifests/breast-cancer.yaml": manifest.replacingOccurrences(of: "train: data/breast-cancer/train.csv",
                                                                                         with: "train: data/../../outside.csv")])
        let climbing = try scratch.stagecraft(["validate"])
        #expect(climbing.status == 1)
        #expect(climbing.stdout.contains("manifests/breast-cancer.yaml:\(line):12: data path 'data/../../outside.csv' must stay inside the repository"),
                "\(climbing.stdout)")

        try FileManager.default.createSymbolicLink(atPath: scratch.directory.appending("data/breast-cancer/linked.csv"), withDestinationPath: "/etc/passwd")
        try scratch.commit(["manifests/breast-cancer.yaml": manifest.replacingOccurrences(of: "train: data/breast-cancer/train.csv",
                                                                                         with: "train: data/breast-cancer/linked.csv")])
        let linked = try scratch.stagecraft(["validate"])
        #expect(linked.status == 1)
        #expect(linked.stdout.contains("manifests/breast-cancer.yaml:\(line):12: data file 'data/breast-cancer/linked.csv' is a symbolic link"),
                "\(linked.stdout)")
        let build = try scratch.stagecraft(["build", "breast-cancer"])
        #expect(build.status == 1)
        #expect(!build.stderr.contains("root:"), "the link's target was read: \(build.stderr)")
    }
}
