import Foundation
import LoopbackHTTP
import StagecraftTesting
import Testing

/// Promotions pushed to a shared remote, plan against a URL, and reconcile --watch.
@Suite(.serialized)
struct RemoteWorkflowTests {
    /// A bare "origin" holding the example, and two clones of it.
    static func originAndClones() throws -> (origin: ScratchRepository, first: ScratchRepository, second: ScratchRepository) {
        let example = try ScratchRepository.example()
        let origin = try ScratchRepository(bare: true, label: "origin")
        try example.git(["push", "-q", origin.path, "main"])
        func clone(_ label: String) throws -> ScratchRepository {
            let clone = try ScratchRepository(label: label)
            try clone.git(["remote", "add", "origin", origin.path])
            try clone.git(["fetch", "-q", "origin"])
            try clone.git(["checkout", "-q", "-B", "main", "origin/main"])
            return clone
        }
        return (origin, try clone("first"), try clone("second"))
    }

    @Test func aPushThatLosesTheRaceIsReappliedOnTopOfTheRemote() throws {
        let (origin, first, second) = try Self.originAndClones()
        for clone in [first, second] {
            #expect(try clone.stagecraft(["build"]).status == 0)
        }
        let penguins = try #require(try JSONSerialization.jsonObject(with: Data(first.stagecraft(["builds", "penguins", "--output", "json"]).stdout.utf8)) as? [[String: Any]])
        let breast = try #require(try JSONSerialization.jsonObject(with: Data(second.stagecraft(["builds", "breast-cancer", "--output", "json"]).stdout.utf8)) as? [[String: Any]])
        let penguinsVersion = try #require(penguins.first?["digest"] as? String)
        let breastVersion = try #require(breast.first?["digest"] as? String)

        // The first clone promotes and pushes; the second, not knowing, does the same for another model.
        let one = try first.stagecraft(["promote", "penguins", "--to", "qa", "--version", String(penguinsVersion.prefix(12)), "--force", "--push"])
        #expect(one.status == 0, "\(one.stderr)")
        let two = try second.stagecraft(["promote", "breast-cancer", "--to", "qa", "--version", String(breastVersion.prefix(12)), "--force", "--push"])
        #expect(two.status == 0, "\(two.stderr)")

        // The remote has both promotions, one after the other, and qa pins both versions.
        let log = try origin.gitLine(["log", "--format=%s", "main"]).split(separator: "\n").map(String.init)
        #expect(log.prefix(2) == ["Promote breast-cancer \(breastVersion.prefix(12)) from dev to qa", "Promote penguins \(penguinsVersion.prefix(12)) from dev to qa"])
        let qa = try origin.git(["show", "main:environments/qa.yaml"])
        #expect(qa.contains("version: \(penguinsVersion.prefix(12))") && qa.contains("version: \(breastVersion.prefix(12))"))
        #expect(try origin.gitLine(["rev-list", "--count", "--merges", "main"]) == "0")
        // The losing clone's working tree follows its branch.
        #expect(try second.gitLine(["status", "--porcelain"]) == "")
        #expect(try second.directory.read("environments/qa.yaml") == qa)
    }

    @Test func planReadsARemoteByURLWithoutAWorkingTree() throws {
        let (origin, first, _) = try Self.originAndClones()
        let workdir = try ScratchDirectory("plan-url")
        let plan = try ProcessRunner.run(Fixtures.stagecraftBinary, ["plan", "--env", "qa", "--repo", "file://" + origin.path, "--output", "json"], in: workdir.path)
        #expect(plan.status == 0, "\(plan.stderr)")  // qa pins nothing yet: no server to start, nothing to do
        let before = ((try JSONSerialization.jsonObject(with: Data(plan.stdout.utf8)) as? [String: Any])?["plan"] as? [String: Any])?["actions"] as? [[String: Any]]
        #expect(before?.compactMap { $0["kind"] as? String } == [])
        #expect(FileManager.default.fileExists(atPath: workdir.appending(".stagecraft/repos/\((origin.path as NSString).lastPathComponent).git/HEAD")))
        // A promotion pushed to the remote shows up in the next plan.
        #expect(try first.stagecraft(["build", "penguins"]).status == 0)
        let digest = try #require((try JSONSerialization.jsonObject(with: Data(first.stagecraft(["builds", "penguins", "--output", "json"]).stdout.utf8)) as? [[String: Any]])?.first?["digest"] as? String)
        #expect(try first.stagecraft(["promote", "penguins", "--to", "qa", "--version", String(digest.prefix(12)), "--force", "--push"]).status == 0)
        let changed = try ProcessRunner.run(Fixtures.stagecraftBinary, ["plan", "--env", "qa", "--repo", "file://" + origin.path, "--output", "json"], in: workdir.path)
        #expect(changed.status == 2, "\(changed.stderr)")
        let actions = ((try JSONSerialization.jsonObject(with: Data(changed.stdout.utf8)) as? [String: Any])?["plan"] as? [String: Any])?["actions"] as? [[String: Any]]
        #expect(actions?.compactMap { $0["kind"] as? String } == ["start-server", "build", "verify", "switch"])
    }

    @Test func watchReconcilesNewCommitsAndRestartsADeadServer() throws {
        let scratch = try ScratchRepository.example()
        let ports = try scratch.useFreePorts()
        defer { scratch.stopServers() }
        let watcher = try BackgroundProcess(Fixtures.stagecraftBinary, ["reconcile", "--env", "dev", "--watch", "--interval", "200ms"], in: scratch.path)
        defer { watcher.stop() }
        func servedVersion() -> String? {
            (try? HTTPConnection(port: ports["dev"]!, timeout: 2).send("GET", "/v2/models/penguins"))?.json["versions"].flatMap { ($0 as? [String])?.first }
        }
        func waitFor(_ condition: () -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline { if condition() { return true }; usleep(100_000) }
            return false
        }
        #expect(waitFor { servedVersion() != nil }, "watch did not deploy: \(watcher.log)")
        let first = servedVersion()

        // A new commit on main: watch builds, promotes and serves it.
        let manifest = try scratch.directory.read("manifests/penguins.yaml")
        try scratch.commit(["manifests/penguins.yaml": manifest.replacingOccurrences(of: "learningRate: 0.1", with: "learningRate: 0.2")], message: "penguins: learning rate 0.2")
        #expect(waitFor { servedVersion().map { $0 != first } ?? false }, "watch did not pick up the commit: \(watcher.log)")
        let second = servedVersion()

        // The server dies: watch starts it again, serving what it served.
        let pid = try #require(Int32(scratch.directory.read(".stagecraft/run/dev.pid").trimmingCharacters(in: .whitespacesAndNewlines)))
        kill(pid, SIGKILL)
        #expect(waitFor { servedVersion() == second && (try? scratch.directory.read(".stagecraft/run/dev.pid")).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) } != pid },
                "watch did not restart the server: \(watcher.log)")
    }
}
