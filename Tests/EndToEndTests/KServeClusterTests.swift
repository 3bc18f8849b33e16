import Foundation
import StagecraftTesting
import Testing

/// `reconcile --target kserve` against a real cluster: only where `KUBECONFIG` names one that answers. Everywhere else
/// (as on the machines CI runs on: no cluster, no container engine) it is skipped, and says so.
@Suite struct KServeClusterTests {
    /// Whether `KUBECONFIG` names a cluster whose API server answers `kubectl get --raw /readyz`.
    static let reachable: Bool = {
        guard let config = ProcessInfo.processInfo.environment["KUBECONFIG"], !config.isEmpty else { return false }
        return (try? ProcessRunner.run("kubectl", ["get", "--raw", "/readyz", "--request-timeout=5s"]))?.status == 0
    }()

    @Test(
        .enabled(
            if: reachable,
            "KUBECONFIG names no reachable cluster: the KServe apply path (kubectl apply, status read back, probes) is not exercised here"))
    func reconcileAppliesAndReadsBack() throws {
        let variables = ProcessInfo.processInfo.environment
        guard let image = variables["STAGECRAFT_KSERVE_IMAGE"], let storage = variables["STAGECRAFT_KSERVE_STORAGE_URI"] else {
            let missing = "a cluster answers, but STAGECRAFT_KSERVE_IMAGE (the image built from the Dockerfile) and "
                + "STAGECRAFT_KSERVE_STORAGE_URI (s3://… holding the example's versions, readable by the cluster) are not set"
            Issue.record(Comment(rawValue: missing))
            return
        }
        let namespace = variables["STAGECRAFT_KSERVE_NAMESPACE"] ?? "stagecraft-dev"
        let scratch = try ScratchRepository.example()
        let target = ["--target", "kserve", "--image", image, "--storage-uri", storage, "--namespace", namespace]
        let reconciled = try scratch.stagecraft(["reconcile", "--env", "dev"] + target)
        #expect(reconciled.status == 0, "\(reconciled.stdout)\(reconciled.stderr)")
        let services = try ProcessRunner.run(
            "kubectl", ["get", "inferenceservices", "--namespace", namespace, "--selector", "stagecraft.dev/environment=dev", "-o", "json"])
        #expect(services.status == 0)
        #expect(services.stdout.contains("\"stagecraft.dev/model\": \"breast-cancer\""))
        let status = try scratch.stagecraft(["status", "--env", "dev"] + target)
        #expect(status.stdout.contains("Healthy"), "\(status.stdout)")
        let plan = try scratch.stagecraft(["plan", "--env", "dev"] + target)
        #expect(plan.status == 0, "\(plan.stdout)")
    }
}
