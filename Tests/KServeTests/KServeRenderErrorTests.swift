import Foundation
import KServe
import Manifests
import Reconciler
import Registry
import StagecraftTesting
import Testing

/// Every environment KServe cannot serve as its file asks, refused with an exact message.
@Suite struct KServeRenderErrorTests {
    static let a = testDigest("a")
    static let b = testDigest("b")
    static let c = testDigest("c")

    /// Builds of a, b and c, made in that order.
    static func build(_ pin: String) -> BuildInfo? {
        let order = [a, b, c]
        guard let index = order.firstIndex(where: { $0.hasPrefix(pin) }) else { return nil }
        return BuildInfo(
            digest: order[index], model: "churn", algorithm: "test", task: "binary-classification", source: String(repeating: "1", count: 40),
            ref: "main", data: [:], parameters: [:], metrics: [:], timings: [:], tool: "test",
            createdAt: Date(timeIntervalSince1970: 1_000_000 + Double(index) * 60))
    }

    static func environment(_ lines: String, model: String = "churn") throws -> EnvironmentManifest {
        let text = """
            apiVersion: stagecraft/v1
            kind: Environment
            metadata:
              name: qa
            spec:
              server: {host: 127.0.0.1, port: 8102}
              models:
                \(model):
            \(lines)
            """
        let (manifest, diagnostics) = EnvironmentManifest.decode(text, file: "environments/qa.yaml")
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        return try #require(manifest)
    }

    static let settings = KServeSettings(environment: "qa", namespace: "stagecraft-qa", image: "stagecraft:1", storagePrefix: "s3://m/s/")

    static func render(_ environment: EnvironmentManifest, rolledOut: [String: String] = [:]) throws -> KServeRender.Output {
        try KServeRender.render(environment, environmentCommit: "e1", settings: settings, build: build, rolledOut: rolledOut)
    }

    static func message(_ environment: EnvironmentManifest, rolledOut: [String: String] = [:]) -> String? {
        do {
            _ = try render(environment, rolledOut: rolledOut)
            return nil
        } catch let error as KServeError {
            return "\(error.code): \(error.message)"
        } catch {
            return "\(error)"
        }
    }

    static func pin(_ version: String) -> String {
        "      version: \(version.prefix(12))\n      source: 111111111111\n"
    }

    static func split(_ shares: [(String, Int)]) -> String {
        "      traffic:\n" + shares.map { "        - {version: \($0.0.prefix(12)), source: 111111111111, weight: \($0.1)}\n" }.joined()
    }

    @Test func splitOverThreeVersions() throws {
        let environment = try Self.environment(Self.pin(Self.a) + Self.split([(Self.a, 80), (Self.b, 10), (Self.c, 10)]))
        #expect(
            Self.message(environment, rolledOut: ["churn": Self.a])
                == "inexpressible: environments/qa.yaml: 'churn' splits traffic over 3 versions (\(Self.a.prefix(12)) 80%, "
                + "\(Self.b.prefix(12)) 10%, \(Self.c.prefix(12)) 10%); KServe splits between two revisions only, the rolled-out one "
                + "and a canary")
    }

    @Test func shadow() throws {
        let environment = try Self.environment(
            Self.pin(Self.a) + "      shadow: {version: \(Self.b.prefix(12)), source: 111111111111}\n")
        #expect(
            Self.message(environment, rolledOut: ["churn": Self.a])
                == "inexpressible: environments/qa.yaml: 'churn' mirrors traffic to a shadow (\(Self.b.prefix(12))); KServe has no "
                + "shadow traffic: remove the shadow or serve qa with the local target")
    }

    @Test func splitWhoseOlderVersionIsNotRolledOut() throws {
        let environment = try Self.environment(Self.pin(Self.b) + Self.split([(Self.b, 90), (Self.c, 10)]))
        #expect(
            Self.message(environment, rolledOut: ["churn": Self.a])
                == "inexpressible: environments/qa.yaml: 'churn' splits traffic between \(Self.b.prefix(12)) (90%) and "
                + "\(Self.c.prefix(12)) (10%), but KServe splits between the revision rolled out now (\(Self.a.prefix(12))) and a "
                + "canary, and the split's older version \(Self.b.prefix(12)) is not that one: pin \(Self.b.prefix(12)) alone first, "
                + "or split from \(Self.a.prefix(12))")
    }

    @Test func splitWithNothingRolledOut() throws {
        let environment = try Self.environment(Self.pin(Self.a) + Self.split([(Self.a, 90), (Self.b, 10)]))
        #expect(
            Self.message(environment)
                == "inexpressible: environments/qa.yaml: 'churn' splits traffic between \(Self.a.prefix(12)) (90%) and "
                + "\(Self.b.prefix(12)) (10%), but nothing is rolled out for it yet; KServe gives a new InferenceService's first "
                + "revision all traffic: pin \(Self.a.prefix(12)) alone, reconcile, then split")
    }

    @Test func nameKServeRefuses() throws {
        let environment = try Self.environment(Self.pin(Self.a), model: "7churn")
        #expect(
            Self.message(environment)
                == "invalid: environments/qa.yaml: '7churn' cannot name an InferenceService (a DNS-1035 label: a lowercase letter "
                + "first, then a-z, 0-9 or '-')")
    }

    @Test func versionNotBuilt() throws {
        let environment = try Self.environment(Self.pin(testDigest("unbuilt")))
        #expect(
            Self.message(environment)
                == "not-built: version \(testDigest("unbuilt").prefix(12)) of 'churn' is not in the artifact store; build it: "
                + "stagecraft build churn --ref 111111111111")
    }

    @Test func expressibleSplitsListedEitherWay() throws {
        // The newer build is the canary whichever order the file lists the two in, and whichever the file pins.
        for (pin, shares) in [(Self.a, [(Self.a, 75), (Self.b, 25)]), (Self.b, [(Self.b, 25), (Self.a, 75)])] {
            let output = try Self.render(try Self.environment(Self.pin(pin) + Self.split(shares)), rolledOut: ["churn": Self.a])
            let deployment = try #require(output.deployments.first)
            #expect(deployment.latest.digest == Self.b && deployment.rolledOut.digest == Self.a)
            #expect(deployment.canaryPercent == 25)
            #expect(deployment.route.defaultVersion == pin)
            let predictor = output.objects[1]["spec"]?["predictor"]
            #expect(predictor?["canaryTrafficPercent"] == .int(25))
            #expect(predictor?["model"]?["storageUri"] == .string("s3://m/s/\(Self.b)"))
        }
        let unpinned = try Self.render(try Self.environment("      version: ~\n      source: ~\n"))
        #expect(unpinned.unpinned == ["churn"] && unpinned.objects.count == 1)
    }
}
