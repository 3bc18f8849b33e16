import Foundation
import StagecraftTesting
import Testing

/// A version reaches an environment with an upstream only once the upstream verified it, or when the commit that
/// pinned it says it was forced.
@Suite struct UpstreamGateTests {
    @Test func prodWaitsForQAsVerificationOfAPinEditedByHand() throws {
        let scratch = try ScratchRepository.example()
        try scratch.useFreePorts()
        defer { scratch.stopServers() }
        #expect(try scratch.stagecraft(["reconcile", "--env", "dev"]).status == 0)
        // dev's penguins, pinned in prod by hand (no promotion, not forced): qa never verified it.
        /// dev's pin of `model`: the words after `version:` and `source:` (a comment may follow).
        func devPin(_ model: String) throws -> (version: String, source: String) {
            let lines = try scratch.directory.read("environments/dev.yaml").components(separatedBy: "    \(model):\n")[1].split(separator: "\n")
            return (String(lines[0].split(separator: " ")[1]), String(lines[1].split(separator: " ")[1]))
        }
        let (version, source) = try devPin("penguins")
        try scratch.setPin("penguins", version: version, source: source, in: "prod", forced: false)
        let refused = try scratch.stagecraft(["reconcile", "--env", "prod", "--output", "json"])
        #expect(refused.status == 1)
        let report = try JSONSerialization.jsonObject(with: Data(refused.stdout.utf8)) as? [String: Any]
        #expect(report?["failure"] as? String == "waiting", "\(refused.stdout)")
        #expect(refused.stdout.contains("penguins \(version.prefix(12)) has not passed verification in 'qa', prod's upstream: waiting until it does"),
                "\(refused.stdout)")
        #expect((report?["records"] as? [Any])?.isEmpty == true, "a record was begun while waiting: \(refused.stdout)")
        // Once qa verified it, the same pin is deployed.
        #expect(try scratch.stagecraft(["promote", "penguins", "--to", "qa"]).status == 0)
        #expect(try scratch.stagecraft(["reconcile", "--env", "qa"]).status == 0)
        let accepted = try scratch.stagecraft(["reconcile", "--env", "prod"])
        #expect(accepted.status == 0, "\(accepted.stdout)\(accepted.stderr)")
        #expect(accepted.stdout.contains("penguins \(version.prefix(12)) succeeded in prod"), "\(accepted.stdout)")
        // A forced pin (as `promote --force` writes) is deployed without it: breast-cancer, never in qa.
        let breast = try devPin("breast-cancer")
        try scratch.setPin("breast-cancer", version: breast.version, source: breast.source, in: "prod", forced: true)
        let forced = try scratch.stagecraft(["reconcile", "--env", "prod"])
        #expect(forced.status == 0, "\(forced.stdout)\(forced.stderr)")
    }
}
