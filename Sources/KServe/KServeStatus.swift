public import Reconciler
import Registry

/// What an InferenceService's status says, in the reconcile engine's terms: which versions answer and how, which are
/// loaded, whether it is ready, and why not.
///
/// Read from KServe's documented status fields: the `Ready` condition, and under `status.components.predictor`
/// `latestCreatedRevision`, `latestReadyRevision`, `latestRolledoutRevision` and `traffic[]` (`revisionName`,
/// `percent`). A revision is mapped to a version by Stagecraft's annotations: the latest created revision runs the
/// spec's version (`stagecraft.dev/version`), any other the one rolled out before it (`stagecraft.dev/rolled-out`).
public struct KServeObservation: Sendable, Equatable {
    /// What Stagecraft applied, read back from the annotations; nil for an InferenceService it did not write.
    public var applied: KServeDeployment?
    /// The versions answering, by share; nil when nothing answers yet.
    public var route: ServerState.Route?
    /// The versions loaded: what Stagecraft applied, less a latest revision that failed.
    public var loaded: Set<String>
    /// Progressing while KServe rolls a revision out; Degraded when the latest revision failed (traffic stays on the
    /// one before); Healthy when ready.
    public var health: ModelStatus.Health
    /// Why it is not Healthy, in KServe's words.
    public var message: String?
    /// Where the latest revision answers (tag routing's `latest` URL), and where the service does.
    public var latestURL: String?
    public var url: String?
    /// Where the revision rolled out before the latest answers (tag routing's `prev` URL).
    public var previousURL: String?

    /// Reads an InferenceService object (as `kubectl get -o json` gives it).
    public init(_ object: [String: Any]) {
        let metadata = object["metadata"] as? [String: Any] ?? [:]
        let annotations = metadata["annotations"] as? [String: String] ?? [:]
        let status = object["status"] as? [String: Any] ?? [:]
        let predictor = (status["components"] as? [String: Any])?["predictor"] as? [String: Any] ?? [:]
        let conditions = status["conditions"] as? [[String: Any]] ?? []
        let ready = conditions.first { $0["type"] as? String == "Ready" }
        let prefix = KServeObjects.prefix
        applied = Self.applied(name: metadata["name"] as? String ?? "", annotations)
        url = status["url"] as? String
        let traffic = predictor["traffic"] as? [[String: Any]] ?? []
        latestURL = traffic.first { $0["tag"] as? String == "latest" }?["url"] as? String
        previousURL = traffic.first { $0["tag"] as? String == "prev" }?["url"] as? String
        let created = predictor["latestCreatedRevision"] as? String
        let readyRevision = predictor["latestReadyRevision"] as? String
        let latest = annotations[prefix + "version"]
        let rolledOut = annotations[prefix + "rolled-out"]
        // Shares by version, in the order of the traffic list; a tag-only entry (0 or no percent) serves nothing.
        var shares: [VersionShare] = []
        for entry in traffic {
            let percent = (entry["percent"] as? Int) ?? Int((entry["percent"] as? Double) ?? 0)
            guard percent > 0, let revision = entry["revisionName"] as? String else { continue }
            guard let version = revision == created ? latest : rolledOut else { continue }
            if let index = shares.firstIndex(where: { $0.version == version }) {
                shares[index].weight += percent
            } else {
                shares.append(VersionShare(version: version, weight: percent))
            }
        }
        route = Self.answering(shares, annotated: applied?.route)
        let failure = Self.failure(conditions: conditions, status: status, created: created, ready: readyRevision)
        loaded = Set(applied?.loaded ?? [])
        if let failure, let latest, created != readyRevision, latest != rolledOut {
            loaded.remove(latest)
            health = .degraded
            message = "revision \(created ?? "?") (version \(latest.prefix(12))) failed: \(failure)"
        } else if ready?["status"] as? String == "True" && (created == nil || created == readyRevision) && !shares.isEmpty {
            health = .healthy
        } else if let failure, ready?["status"] as? String == "False" {
            health = .degraded
            message = failure
        } else {
            health = .progressing
            message = (ready?["message"] as? String) ?? "KServe has not reported the revision ready yet"
        }
    }

    /// The route answering: the annotated one when its shares are those KServe reports (KServe keeps no default
    /// version and no order), else the shares as KServe reports them.
    static func answering(_ shares: [VersionShare], annotated: ServerState.Route?) -> ServerState.Route? {
        guard !shares.isEmpty else { return nil }
        if let annotated {
            let wanted = annotated.traffic ?? [VersionShare(version: annotated.defaultVersion, weight: 100)]
            if Set(wanted.map { "\($0.version):\($0.weight)" }) == Set(shares.map { "\($0.version):\($0.weight)" }) { return annotated }
        }
        if shares.count == 1 { return ServerState.Route(defaultVersion: shares[0].version, traffic: nil, shadow: nil) }
        return ServerState.Route(defaultVersion: shares.max { $0.weight < $1.weight }!.version, traffic: shares, shadow: nil)
    }

    /// KServe's reason a revision is not ready: a `False` condition's message, or the model status's last failure.
    static func failure(conditions: [[String: Any]], status: [String: Any], created: String?, ready: String?) -> String? {
        let modelStatus = status["modelStatus"] as? [String: Any] ?? [:]
        if let info = modelStatus["lastFailureInfo"] as? [String: Any], let message = info["message"] as? String {
            return [info["reason"] as? String, message].compactMap { $0 }.joined(separator: ": ")
        }
        if modelStatus["transitionStatus"] as? String == "BlockedByFailedLoad"
            || modelStatus["transitionStatus"] as? String == "InvalidSpec"
        {
            return modelStatus["transitionStatus"] as? String
        }
        for type in ["LatestDeploymentReady", "PredictorReady", "Ready"] {
            guard let condition = conditions.first(where: { $0["type"] as? String == type }), condition["status"] as? String == "False"
            else { continue }
            let reason = condition["reason"] as? String
            // A revision still starting is not a failure.
            if reason == "RevisionMissing" || reason == "Deploying" || reason == "ContainerCreating" { continue }
            return [reason, condition["message"] as? String].compactMap { $0 }.joined(separator: ": ")
        }
        return nil
    }

    /// What Stagecraft applied, from its annotations.
    static func applied(name: String, _ annotations: [String: String]) -> KServeDeployment? {
        let prefix = KServeObjects.prefix
        guard let latest = annotations[prefix + "version"], let source = annotations[prefix + "source"],
            let rolledOut = annotations[prefix + "rolled-out"], let routeText = annotations[prefix + "route"],
            let route = KServeObjects.route(routeText)
        else { return nil }
        return KServeDeployment(
            model: name, latest: KServeVersion(digest: latest, source: source),
            rolledOut: KServeVersion(digest: rolledOut, source: annotations[prefix + "rolled-out-source"] ?? ""), route: route,
            loaded: (annotations[prefix + "loaded"] ?? "").split(separator: ",").map(String.init),
            environmentCommit: annotations[prefix + "environment-commit"] ?? "")
    }
}
