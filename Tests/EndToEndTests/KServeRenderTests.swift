import Foundation
import StagecraftTesting
import Testing

/// `render --target kserve` on the example's three environments: every object loads into the kserve SDK's own models
/// and serializes back to the same document; the YAML and JSON forms hold the same objects.
@Suite struct KServeRenderTests {
    @Test func exampleEnvironmentsLoadIntoTheKServeSDK() throws {
        guard let python = Fixtures.clientsPython else {
            Issue.record(Comment(rawValue: Fixtures.clientsMissing))
            return
        }
        let scratch = try ScratchRepository.example()
        try scratch.useFreePorts()
        defer { scratch.stopServers() }
        let first = try scratch.gitLine(["rev-parse", "HEAD"])
        var pins: [String: String] = [:]
        for model in ["breast-cancer", "penguins"] {
            pins[model] = try digest(of: scratch.stagecraft(["build", model, "--output", "json"]))
            for environment in ["dev", "qa", "prod"] { try scratch.setPin(model, version: pins[model]!, source: first, in: environment) }
        }
        // qa serves the pins (the state store records what is rolled out), then splits breast-cancer 90/10 with a newer build.
        let reconciled = try scratch.stagecraft(["reconcile", "--env", "qa"])
        #expect(reconciled.status == 0, "\(reconciled.stdout)\(reconciled.stderr)")
        scratch.stopServers()
        let manifest = try scratch.directory.read("manifests/breast-cancer.yaml")
        try scratch.commit(["manifests/breast-cancer.yaml": manifest.replacingOccurrences(of: "seed: 42", with: "seed: 7")], message: "reseed")
        let second = try scratch.gitLine(["rev-parse", "HEAD"])
        let canary = try digest(of: scratch.stagecraft(["build", "breast-cancer", "--output", "json"]))
        #expect(canary != pins["breast-cancer"])
        let qa = try scratch.directory.read("environments/qa.yaml")
        let source = "      source: \(first.prefix(12))\n      gates: {auc: \">= 0.97\"}\n"
        #expect(qa.contains(source))
        try scratch.commit(["environments/qa.yaml": qa.replacingOccurrences(of: source, with: source + """
                  traffic:
                    - {version: \(pins["breast-cancer"]!.prefix(12)), weight: 90}
                    - {version: \(canary.prefix(12)), source: \(second.prefix(12)), weight: 10}

            """)], message: "canary breast-cancer in qa")

        var files: [String] = []
        var rendered: [String: [String: Any]] = [:]
        for environment in ["dev", "qa", "prod"] {
            let common = ["render", "--env", environment, "--target", "kserve", "--storage-uri", "s3://models/stagecraft"]
            let json = try scratch.stagecraft(common + ["--output", "json"])
            let yaml = try scratch.stagecraft(common)
            #expect(json.status == 0 && yaml.status == 0, "\(json.stderr)\(yaml.stderr)")
            try scratch.directory.write(json.stdout, to: "rendered/\(environment).json")
            try scratch.directory.write(yaml.stdout, to: "rendered/\(environment).yaml")
            files += [scratch.directory.appending("rendered/\(environment).json"), scratch.directory.appending("rendered/\(environment).yaml")]
            rendered[environment] = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        }
        let sdk = try ProcessRunner.run(python, [Fixtures.packageRoot + "/Tests/Conformance/kserve_objects.py"] + files)
        #expect(sdk.status == 0, "\(sdk.stdout)\(sdk.stderr)")
        #expect(sdk.stdout.hasSuffix("9 objects round-trip through the kserve SDK\n"))
        #expect(sdk.stdout.components(separatedBy: "ok V1beta1InferenceService").count == 7)

        // qa's breast-cancer: the newer build is the canary at 10%, the one rolled out keeps the rest.
        let items = try #require(rendered["qa"]?["items"] as? [[String: Any]])
        let service = try #require(items.first { ($0["metadata"] as? [String: Any])?["name"] as? String == "breast-cancer" })
        let predictor = try #require((service["spec"] as? [String: Any])?["predictor"] as? [String: Any])
        #expect(predictor["canaryTrafficPercent"] as? Int == 10)
        #expect((predictor["model"] as? [String: Any])?["storageUri"] as? String == "s3://models/stagecraft/\(canary)")
        let annotations = try #require((service["metadata"] as? [String: Any])?["annotations"] as? [String: String])
        #expect(annotations["stagecraft.dev/rolled-out"] == pins["breast-cancer"])
        #expect(annotations["stagecraft.dev/source"] == second)
        // dev's have no canary, and every object of an environment carries its labels.
        let dev = try #require(rendered["dev"]?["items"] as? [[String: Any]])
        for object in dev.dropFirst() {
            #expect(((object["spec"] as? [String: Any])?["predictor"] as? [String: Any])?["canaryTrafficPercent"] == nil)
            #expect(((object["metadata"] as? [String: Any])?["labels"] as? [String: String])?["stagecraft.dev/environment"] == "dev")
        }
    }

    @Test func localArtifactsNeedAStorageURI() throws {
        let scratch = try ScratchRepository.example()
        let render = try scratch.stagecraft(["render", "--env", "dev", "--target", "kserve"])
        #expect(render.status == 1)
        #expect(render.stderr == "error: stagecraft.yaml keeps artifacts in a folder (.stagecraft/artifacts); KServe's storage initializer "
            + "reads a version from object storage: set `artifacts: s3://bucket/prefix` in stagecraft.yaml, or pass --storage-uri where the "
            + "versions are copied\n")
        let local = try scratch.stagecraft(["render", "--env", "dev"])
        #expect(local.status == 64)
        #expect(local.stderr.contains("render writes objects for a platform: pass --target kserve"))
        let unpinned = try scratch.stagecraft(["render", "--env", "dev", "--target", "kserve", "--storage-uri", "s3://models/x"])
        #expect(unpinned.status == 0)
        #expect(unpinned.stdout.hasPrefix("apiVersion: serving.kserve.io/v1alpha1\nkind: ClusterServingRuntime\n"))
        #expect(unpinned.stderr == "note: 'breast-cancer' pins no version in environments/dev.yaml: no InferenceService for it\n"
            + "note: 'penguins' pins no version in environments/dev.yaml: no InferenceService for it\n")
    }

    private func digest(of output: ProcessOutput) throws -> String {
        guard output.status == 0 else { throw ProcessFailure(command: "stagecraft build", output: output) }
        let json = try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any]
        return try #require(json?["digest"] as? String)
    }
}
