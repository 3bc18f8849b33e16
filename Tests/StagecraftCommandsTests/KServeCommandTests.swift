import Foundation
import StagecraftCommands
import StagecraftTesting
import Testing

/// `--target kserve` on plan, reconcile and status, in-process: where no cluster answers, what can be said without one.
@Suite struct KServeCommandTests {
    static let storage = ["--target", "kserve", "--storage-uri", "s3://models/stagecraft"]

    @Test func planSaysWhereItWouldServeAndHowToApply() async throws {
        let scratch = try ScratchRepository.example()
        let digest = try await builtDigest("breast-cancer", in: scratch)
        try scratch.pin("breast-cancer", version: digest, in: "prod")
        let plan = await Stagecraft.execute(["plan", "--env", "prod", "--repo", scratch.path] + Self.storage)
        #expect(plan.exitCode == 2, "\(plan.errorOutput)")
        let lines = plan.output.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("Plan for prod at ") == true && lines.first?.contains("(server kserve:stagecraft-prod (") == true)
        #expect(lines.count == 5, "\(plan.output)")
        #expect(lines.dropFirst().first?.hasPrefix("  + start-server: kserve:stagecraft-prod (") == true)
        #expect(lines.dropFirst(2).first?.hasPrefix("  ~ verify breast-cancer \(digest.prefix(12)): gates: ") == true)
        #expect(lines.last == "3 actions; apply with: stagecraft reconcile --env prod --target kserve --storage-uri s3://models/stagecraft")
    }

    @Test func reconcileRefusesWhatKServeCannotExpressBeforeActing() async throws {
        let scratch = try ScratchRepository.example()
        let (a, b, c) = ("aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc")
        let qa = try scratch.directory.read("environments/qa.yaml")
        let entry = "    penguins:\n      version: ~\n      source: ~\n"
        #expect(qa.contains(entry))
        try scratch.commit(["environments/qa.yaml": qa.replacingOccurrences(of: entry, with: """
                penguins:
                  version: \(a)
                  source: 111111111111
                  traffic:
                    - {version: \(a), weight: 80}
                    - {version: \(b), source: 111111111111, weight: 10}
                    - {version: \(c), source: 111111111111, weight: 10}

            """)], message: "three-way split")
        let reconcile = await Stagecraft.execute(["reconcile", "--env", "qa", "--repo", scratch.path] + Self.storage)
        #expect(reconcile.exitCode == 1)
        #expect(
            reconcile.errorOutput
                == "error: environments/qa.yaml: 'penguins' splits traffic over 3 versions (\(a) 80%, \(b) 10%, \(c) 10%); KServe splits "
                + "between two revisions only, the rolled-out one and a canary\n")
        #expect(!FileManager.default.fileExists(atPath: scratch.directory.appending(".stagecraft/artifacts")), "it built something")
    }

    @Test func targetOptionsAreChecked() async throws {
        let scratch = try ScratchRepository.example()
        let namespace = await Stagecraft.execute(["plan", "--env", "dev", "--repo", scratch.path, "--namespace", "Ml_QA"] + Self.storage)
        #expect(namespace.exitCode == 64)
        #expect(namespace.errorOutput.hasPrefix(
            "Error: --namespace 'Ml_QA' is not a Kubernetes name: 1 to 63 of a-z, 0-9 and '-', starting and ending with a letter or digit\n"))
        let local = await Stagecraft.execute(["plan", "--env", "dev", "--repo", scratch.path, "--namespace", "ml-qa"])
        #expect(local.exitCode == 64)
        #expect(local.errorOutput.hasPrefix("Error: --namespace, --storage-uri and --service-account go with --target kserve\n"))
        let storage = await Stagecraft.execute(["render", "--env", "dev", "--repo", scratch.path, "--target", "kserve", "--storage-uri", "gs://x/y"])
        #expect(storage.exitCode == 64)
        #expect(storage.errorOutput.hasPrefix("Error: --storage-uri 'gs://x/y' is not s3://bucket/prefix\n"))
    }
}
