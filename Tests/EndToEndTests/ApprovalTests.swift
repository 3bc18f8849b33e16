import Foundation
import StagecraftTesting
import Testing

/// Four-eyes promotion to prod, with git identities set as users set them (`git config user.email`): the promoter
/// cannot approve, someone who is not an approver cannot either, an approver can; the approved pin carries both
/// names into history; a pin committed by hand without approval is refused by reconcile.
@Suite struct ApprovalTests {
    static func identity(_ scratch: ScratchRepository, _ name: String) throws {
        try scratch.git(["config", "user.name", name])
        try scratch.git(["config", "user.email", "\(name.lowercased())@example.com"])
    }

    @Test func promoterCannotApproveAnApproverCanAndReconcileRefusesAHandMadePin() throws {
        let scratch = try ScratchRepository.example()
        try scratch.useFreePorts()
        defer { scratch.stopServers() }
        let prod = try scratch.directory.read("environments/prod.yaml")
        try scratch.commit(["environments/prod.yaml": prod.replacingOccurrences(
            of: "  upstream: qa\n",
            with: "  upstream: qa\n  approval: {required: true, approvers: [ada@example.com, bob@example.com], count: 1}\n")],
            message: "prod needs an approval")
        #expect(try scratch.stagecraft(["validate"]).status == 0)
        for step in [["reconcile", "--env", "dev"], ["promote", "breast-cancer", "--to", "qa"], ["promote", "penguins", "--to", "qa"],
                     ["reconcile", "--env", "qa"]] {
            let run = try scratch.stagecraft(step)
            #expect(run.status == 0, "\(step): \(run.stdout)\(run.stderr)")
        }
        let pinned = try scratch.gitLine(["rev-parse", "main"])

        // Ada promotes: the commit waits on a branch of its own; main does not move.
        try Self.identity(scratch, "Ada")
        let promoted = try scratch.stagecraft(["promote", "breast-cancer", "--to", "prod"])
        #expect(promoted.status == 0, "\(promoted.stderr)")
        let branches = try scratch.gitLine(["branch", "--list", "stagecraft/promote/*", "--format=%(refname:short)"])
        #expect(branches.hasPrefix("stagecraft/promote/prod/breast-cancer/") && !branches.contains("\n"))
        #expect(promoted.stdout.contains("waiting for approval: commit "))
        #expect(promoted.stdout.contains(" on \(branches)\n"))
        #expect(promoted.stdout.hasSuffix("  next: an approver of prod runs: stagecraft approve breast-cancer --env prod\n"))
        #expect(try scratch.gitLine(["rev-parse", "main"]) == pinned)
        let version = String(branches.split(separator: "/").last!)

        let listed = try scratch.stagecraft(["approve", "--env", "prod"])
        #expect(listed.stdout == "breast-cancer \(version) promoted by Ada <ada@example.com>: 0 of 1 approval(s) on \(branches)\n")

        // The promoter cannot approve; nor can someone who is not an approver.
        let own = try scratch.stagecraft(["approve", "breast-cancer", "--env", "prod"])
        #expect(own.status == 1)
        #expect(own.stderr == "error: Ada <ada@example.com> promoted \(version) of 'breast-cancer' to 'prod'; another approver must "
            + "approve it (approvers: ada@example.com, bob@example.com)\n")
        try Self.identity(scratch, "Carol")
        let outsider = try scratch.stagecraft(["approve", "breast-cancer", "--env", "prod"])
        #expect(outsider.status == 1)
        #expect(outsider.stderr == "error: Carol <carol@example.com> is not an approver of 'prod' (approvers: ada@example.com, "
            + "bob@example.com)\n")
        #expect(try scratch.gitLine(["rev-parse", "main"]) == pinned)

        // Bob approves: the pin lands on main with both names, the branch goes.
        try Self.identity(scratch, "Bob")
        let approved = try scratch.stagecraft(["approve", "breast-cancer", "--env", "prod"])
        #expect(approved.status == 0, "\(approved.stderr)")
        #expect(approved.stdout.contains("approved breast-cancer \(version) for prod as Bob <bob@example.com>: commit "))
        let trailers = try scratch.git(["log", "-1", "--format=%(trailers)", "main"])
        #expect(trailers.contains("Stagecraft-Promoted-By: Ada <ada@example.com>\n"))
        #expect(trailers.contains("Stagecraft-Approved-By: Bob <bob@example.com>\n"))
        #expect(trailers.contains("Stagecraft-Evidence: "))
        #expect(try scratch.gitLine(["log", "-1", "--format=%an", "main"]) == "Bob")
        #expect(try scratch.gitLine(["branch", "--list", "stagecraft/promote/*"]).isEmpty)
        #expect(try scratch.directory.read("environments/prod.yaml").contains("    breast-cancer:\n      version: \(version)\n"))

        let reconciled = try scratch.stagecraft(["reconcile", "--env", "prod"])
        #expect(reconciled.status == 0, "\(reconciled.stdout)\(reconciled.stderr)")
        let history = try scratch.stagecraft(["history", "--env", "prod"])
        #expect(history.stdout.contains("    Stagecraft-Promoted-By: Ada <ada@example.com>\n"))
        #expect(history.stdout.contains("    Stagecraft-Approved-By: Bob <bob@example.com>\n"))
        #expect(history.stdout.contains("    → succeeded breast-cancer \(version) by "))

        // A pin of penguins committed by hand, skipping approval: refused, nothing of it serves, the record says why.
        let qa = try scratch.directory.read("environments/qa.yaml")
        let entry = try #require(qa.range(of: "    penguins:\n      version: ")).upperBound
        let qaVersion = String(qa[entry...].prefix(12))
        let source = try #require(qa.range(of: "      source: ", range: entry..<qa.endIndex)).upperBound
        try scratch.setPin("penguins", version: qaVersion, source: String(qa[source...].prefix(12)), in: "prod")
        let refused = try scratch.stagecraft(["reconcile", "--env", "prod"])
        #expect(refused.status == 1)
        #expect(refused.stdout.contains("not approved: the pin of penguins in environments/prod.yaml comes from a commit without the "
            + "approvals prod asks: commit "), "\(refused.stdout)\(refused.stderr)")
        #expect(refused.stdout.contains("has 0 of the 1 approval(s) required (approvers: ada@example.com, bob@example.com)"))
        let status = try scratch.stagecraft(["status", "--env", "prod", "--output", "json"])
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [[String: Any]])
        let penguins = try #require(rows.first { $0["model"] as? String == "penguins" })
        #expect((penguins["serving"] as? [Any])?.isEmpty == true)
        #expect(penguins["lastOutcome"] as? String == "failed")
        let breastCancer = try #require(rows.first { $0["model"] as? String == "breast-cancer" })
        #expect(breastCancer["health"] as? String == "Healthy")
    }

    @Test func rejectClosesAPromotionWithItsReason() throws {
        let scratch = try ScratchRepository.example()
        try scratch.useFreePorts()
        defer { scratch.stopServers() }
        let qa = try scratch.directory.read("environments/qa.yaml")
        try scratch.commit(["environments/qa.yaml": qa.replacingOccurrences(
            of: "  upstream: dev\n", with: "  upstream: dev\n  approval: {approvers: [bob@example.com]}\n")], message: "qa needs approval")
        #expect(try scratch.stagecraft(["reconcile", "--env", "dev"]).status == 0)
        try Self.identity(scratch, "Ada")
        #expect(try scratch.stagecraft(["promote", "penguins", "--to", "qa"]).status == 0)
        try Self.identity(scratch, "Bob")
        let rejected = try scratch.stagecraft(["reject", "penguins", "--env", "qa", "--reason", "recall dropped on the March cohort"])
        #expect(rejected.status == 0, "\(rejected.stderr)")
        #expect(rejected.stdout.hasSuffix("(promoted by Ada <ada@example.com>): recall dropped on the March cohort\n"))
        #expect(try scratch.gitLine(["branch", "--list", "stagecraft/promote/*"]).isEmpty)
        let kept = try scratch.gitLine(["for-each-ref", "--format=%(refname)", "refs/stagecraft/rejected/"])
        #expect(kept.hasPrefix("refs/stagecraft/rejected/qa/penguins/"))
        #expect(try scratch.git(["log", "-1", "--format=%(trailers)", kept]).contains("Stagecraft-Reason: recall dropped on the March cohort"))
        let none = try scratch.stagecraft(["approve", "penguins", "--env", "qa"])
        #expect(none.status == 1)
        #expect(none.stderr == "error: no promotion of 'penguins' to 'qa' waits for approval; promote it first: stagecraft promote "
            + "penguins --to qa\n")
    }
}
