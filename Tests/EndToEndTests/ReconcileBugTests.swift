import Foundation
import StagecraftTesting
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Bugs a new user hit in reconcile and status, each kept fixed: the real binary, real servers.
@Suite(.serialized)
struct ReconcileBugTests {
    let binary = Fixtures.stagecraftBinary

    func example() throws -> (ScratchRepository, [String: Int]) {
        let scratch = try ScratchRepository.example()
        let ports = try scratch.useFreePorts()
        return (scratch, ports)
    }

    func statusRows(_ scratch: ScratchRepository, _ arguments: [String] = []) throws -> [[String: Any]] {
        let status = try scratch.stagecraft(["status", "--output", "json"] + arguments)
        #expect(status.status == 0, "\(status.stderr)")
        return try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [[String: Any]] ?? []
    }

    @Test func reconcileAndPlanRefuseAnEnvironmentFileThatValidateRejects() throws {
        let (scratch, _) = try example()
        defer { scratch.stopServers() }
        let qa = try scratch.directory.read("environments/qa.yaml")
        try scratch.commit(["environments/qa.yaml": qa.replacingOccurrences(of: "    latencyP99Ms:", with: "    rmse: \"<= 0.3\"\n    latencyP99Ms:")])
        let validate = try scratch.stagecraft(["validate"])
        #expect(validate.status == 1)
        let problem = try #require(validate.stdout.split(separator: "\n").first { $0.contains("gate 'rmse'") }).description
        #expect(problem.hasPrefix("environments/qa.yaml:11:5: gate 'rmse' does not apply to binary-classification model 'breast-cancer'"))
        for arguments in [["reconcile", "--env", "qa"], ["plan", "--env", "qa"]] {
            let result = try scratch.stagecraft(arguments)
            #expect(result.status == 1, "\(arguments)")
            #expect(result.stderr.contains(problem), "\(arguments): \(result.stderr)")
            #expect(!result.stdout.contains("in sync"))
        }
    }

    @Test func afterARollbackStatusIsHealthyOnceTheRolledBackVersionServes() throws {
        let (scratch, _) = try example()
        defer { scratch.stopServers() }
        #expect(try scratch.stagecraft(["reconcile", "--env", "dev"]).status == 0)
        #expect(try scratch.stagecraft(["promote", "penguins", "--to", "qa"]).status == 0)
        #expect(try scratch.stagecraft(["reconcile", "--env", "qa"]).status == 0)
        // A new penguins version reaches dev; qa then asks for a log loss no model has.
        let manifest = try scratch.directory.read("manifests/penguins.yaml")
        try scratch.commit(["manifests/penguins.yaml": manifest.replacingOccurrences(of: "learningRate: 0.1", with: "learningRate: 0.2")])
        #expect(try scratch.stagecraft(["reconcile", "--env", "dev"]).status == 0)
        let qa = try scratch.directory.read("environments/qa.yaml")
        try scratch.commit(["environments/qa.yaml": qa.replacingOccurrences(of: "    penguins:\n      version:", with: "    penguins:\n      gates: {logLoss: \"<= 0.0000001\"}\n      version:")])
        #expect(try scratch.stagecraft(["promote", "penguins", "--to", "qa"]).status == 0)
        let failed = try scratch.stagecraft(["reconcile", "--env", "qa"])
        #expect(failed.status == 1)
        func penguins() throws -> [String: Any]? { try statusRows(scratch, ["--env", "qa"]).first { $0["model"] as? String == "penguins" } }
        #expect(try penguins()?["health"] as? String == "Degraded")
        let rolledBack = try scratch.stagecraft(["rollback", "penguins", "--env", "qa"])
        #expect(rolledBack.status == 0, "\(rolledBack.stderr)")
        #expect(try scratch.stagecraft(["reconcile", "--env", "qa"]).status == 0)
        let row = try #require(try penguins())
        #expect(row["sync"] as? String == "Synced")
        #expect(row["health"] as? String == "Healthy", "\(row)")
    }

    @Test func aServerKilledWithSIGKILLNeverBlocksTheNextReconcile() throws {
        let (scratch, ports) = try example()
        defer { scratch.stopServers() }
        #expect(try scratch.stagecraft(["reconcile", "--env", "dev"]).status == 0)
        let pid = try #require(Int32(try scratch.directory.read(".stagecraft/run/dev.pid").trimmingCharacters(in: .whitespacesAndNewlines)))
        kill(pid, SIGKILL)
        let again = try scratch.stagecraft(["reconcile", "--env", "dev"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(!again.stderr.contains("already served"))
        #expect(try ProcessRunner.run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(ports["dev"]!)/v2/health/ready"]).stdout == "200")
    }

    @Test func aPortServedByAnotherRepositorysServerIsNamedAndStatusShowsTheOtherEnvironments() throws {
        let (first, ports) = try example()
        defer { first.stopServers() }
        #expect(try first.stagecraft(["reconcile", "--env", "dev"]).status == 0)
        // A second repository whose dev has the same port.
        let second = try ScratchRepository.example()
        defer { second.stopServers() }
        try second.useFreePorts()
        let dev = try second.directory.read("environments/dev.yaml")
        try second.commit(["environments/dev.yaml": dev.replacingOccurrences(of: #"port: \d+"#, with: "port: \(ports["dev"]!)", options: .regularExpression)])
        let reconcile = try second.stagecraft(["reconcile", "--env", "dev"])
        #expect(reconcile.status == 1)
        let message = "port \(ports["dev"]!) on 127.0.0.1 is served by another Stagecraft server (repository \(first.path), environment 'dev'); stop it (stagecraft stop --env dev --repo \(first.path)) or give this environment another port"
        #expect(reconcile.stderr.contains(message), "\(reconcile.stderr)")
        let status = try second.stagecraft(["status"])
        #expect(status.status == 0, "\(status.stderr)")
        let devRow = try #require(status.stdout.split(separator: "\n").first { $0.hasPrefix("dev ") }).description
        #expect(devRow.split(separator: " ") == ["dev", "-", "-", "-", "Unknown", "Unknown", "-", "-"], "\(status.stdout)")
        #expect(status.stdout.contains("dev: \(message)"))
        #expect(status.stdout.split(separator: "\n").contains { $0.hasPrefix("qa ") && $0.contains("breast-cancer") })
    }

    @Test func aServerThatCannotStartFailsTheReconcileAtOnceWithItsOwnError() throws {
        let (scratch, ports) = try example()
        defer { scratch.stopServers() }
        let port = ports["dev"]!
        // Listening, not HTTP: another process has the port.
        let listener = try BackgroundProcess("python3", ["-c", "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',\(port))); s.listen(); time.sleep(60)"])
        try Loopback.waitForListener(port: port)
        var start = Date()
        let taken = try scratch.stagecraft(["reconcile", "--env", "dev"])
        listener.stop()
        #expect(taken.status == 1)
        #expect(Date().timeIntervalSince(start) < 10)
        #expect(taken.stderr.contains("port \(port) on 127.0.0.1 is in use by another process, not a server of environment 'dev'"), "\(taken.stderr)")
        // Bound but not listening: the server's own bind error, at once, not after a 15 s wait.
        let binder = try BackgroundProcess("python3", ["-c", "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',\(port))); time.sleep(60)"])
        usleep(500_000)
        start = Date()
        let refused = try scratch.stagecraft(["reconcile", "--env", "dev"])
        binder.stop()
        #expect(refused.status == 1)
        #expect(Date().timeIntervalSince(start) < 10)
        #expect(refused.stderr.contains("the server for 'dev' exited at start (status 1)"), "\(refused.stderr)")
        #expect(refused.stderr.lowercased().contains("address already in use"), "\(refused.stderr)")
    }
}
