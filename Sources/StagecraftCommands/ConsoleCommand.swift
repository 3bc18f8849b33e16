import ArgumentParser
import Foundation
import GitStore
import Logging
import NIOCore
import Reconciler
import ServiceLifecycle
import UnixSignals
import WebConsole

struct ConsoleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "The web console: the pipeline at a glance, every version's story, promotion at a click.",
        discussion: """
            Serves a board of environments (columns, in pipeline order) by models
            (rows), a page per model (its whole timeline, any two versions compared)
            and per environment (the plan, traffic from its server's /metrics, live
            feedback metrics, drift), each also as JSON under /api. Open pages update
            by themselves when a commit lands or a record is written.
            Anyone who can reach it reads. To act (promote, approve, reject, roll back,
            reconcile now), sign in: --login prints a one-time link (15 minutes) for
            a git identity, --add-token a token to type on /login. Actions are
            committed as that identity, after a confirmation that shows the diff.
            Secrets are kept hashed in .stagecraft/console-token and
            .stagecraft/console-logins (mode 0600).

            Examples:
              stagecraft console
              stagecraft console --login
              stagecraft console --login --as "Bob Approver <bob@example.com>"
              stagecraft console --listen 0.0.0.0:8100 --repo ~/models
            """
    )

    @Option(name: .long, help: ArgumentHelp("Where to listen.", valueName: "host:port"))
    var listen: String = "127.0.0.1:8100"

    @Flag(name: .long, help: "Print a one-time login link for --as (default: your git identity) and exit.")
    var login = false

    @Flag(name: .long, help: "Print a new sign-in token for --as (kept hashed) and exit.")
    var addToken = false

    @Option(name: .customLong("as"), help: ArgumentHelp("Who --login or --add-token signs in.", valueName: "Name <email>"))
    var identity: String?

    @OptionGroup var repository: RepositoryOptions

    func validate() throws {
        guard ReconcileCommand.listenAddress(listen) != nil else {
            throw ValidationError("--listen: '\(listen.prefix(80))' is not host:port, such as 127.0.0.1:8100")
        }
        if let identity, ConsoleUser.parse(identity) == nil {
            throw ValidationError("--as: '\(identity.prefix(80))' is not a git identity such as \"Ada Lovelace <ada@example.com>\"")
        }
        if identity != nil && !login && !addToken { throw ValidationError("--as goes with --login or --add-token") }
        if login && addToken { throw ValidationError("--login or --add-token, not both") }
    }

    func run() async throws {
        let console = Console.current
        let repo = try repository.openOrFetch()
        let workspace = try Workspace(repository: repo, toolVersion: Stagecraft.version, ref: repository.ref)
        let access = ConsoleAccess(root: workspace.root.appendingPathComponent(".stagecraft"))
        if login || addToken {
            let user = identity.flatMap(ConsoleUser.parse) ?? ConsoleUser(name: workspace.actor.name, email: workspace.actor.email)
            if login {
                let code = try access.issueLogin(for: user)
                console.print("http://\(listen)/login/\(code)")
                console.print("  signs \(user) in once, within 15 minutes; open it in the browser that should act")
            } else {
                let token = try access.issueToken(for: user)
                console.print(token)
                console.print("  a token for \(user): type it on http://\(listen)/login; it is shown only now")
            }
            return
        }
        let state = try workspace.openState(notice: console.warn)
        let site = ConsoleSite(workspace: workspace, state: state, ref: repository.ref)
        let options = repository
        let server = ConsoleServer(
            site: site, access: access, toolVersion: Stagecraft.version,
            repository: options.isURL ? options.repo : (repo.workingDirectory ?? repo.gitDirectory)
        ) { environment, user in
            // `stagecraft reconcile --env ENVIRONMENT`, in-process, with the signed-in user as the actor.
            let reconciler = try EnvironmentOptions.parse(["--env", environment, "--repo", options.repo, "--ref", options.ref]).reconciler()
            reconciler.actor = user.name
            let report = try reconciler.reconcile(wait: false)
            for problem in options.publish(promotionsOn: report.promotions.isEmpty ? nil : reconciler.branch) {
                console.printError(console.styled("warning: ", .yellow) + problem)
            }
            return report
        }
        let address = ReconcileCommand.listenAddress(listen)!
        var logger = Logger(label: "stagecraft.console")
        logger.logLevel = .critical
        let services = server.services(host: address.host, port: address.port) { url in
            console.printError("console: \(url) (sign in with: stagecraft console --login)")
        }
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw CommandFailure(.failure, "cannot listen on \(listen): another process listens there; choose another --listen")
        }
    }
}
