import Learning
public import Reconciler
import Registry

/// Where and how an environment is served on KServe.
public struct KServeSettings: Sendable, Equatable {
    /// The environment these objects serve.
    public var environment: String
    /// The namespace of its InferenceServices.
    public var namespace: String
    /// The serving image (built from the repository's `Dockerfile`).
    public var image: String
    /// `s3://bucket/prefix`: where the versions are, each under `<prefix>/<digest>/` (the artifact store's layout).
    public var storagePrefix: String
    /// The service account whose secret holds the S3 credentials of KServe's storage initializer, if any.
    public var serviceAccount: String?

    public init(environment: String, namespace: String, image: String, storagePrefix: String, serviceAccount: String? = nil) {
        self.environment = environment
        self.namespace = namespace
        self.image = image
        self.storagePrefix = storagePrefix.hasSuffix("/") ? String(storagePrefix.dropLast()) : storagePrefix
        self.serviceAccount = serviceAccount
    }

    /// The namespace an environment gets when none is given.
    public static func defaultNamespace(_ environment: String) -> String { "stagecraft-\(environment)" }
}

/// A version as an InferenceService names it.
public struct KServeVersion: Sendable, Equatable {
    /// The full digest.
    public var digest: String
    /// The commit it was built from.
    public var source: String

    public init(digest: String, source: String) {
        self.digest = digest
        self.source = source
    }
}

/// What one model's InferenceService says, in KServe's canary terms: the predictor's spec runs `latest`; with
/// `canaryPercent`, `rolledOut` (the revision that had all traffic before) keeps the rest.
public struct KServeDeployment: Sendable, Equatable {
    public var model: String
    /// The version of the predictor's spec (KServe's latest revision).
    public var latest: KServeVersion
    /// The version of the revision rolled out before `latest`; equal to `latest` once it has all traffic.
    public var rolledOut: KServeVersion
    /// The route the reconcile engine asked for (kept in an annotation: KServe knows no default version and no order).
    public var route: ServerState.Route
    /// The versions the reconcile engine counts as loaded (verified or serving).
    public var loaded: [String]
    /// The environment-file commit this was applied from.
    public var environmentCommit: String

    public init(
        model: String, latest: KServeVersion, rolledOut: KServeVersion, route: ServerState.Route, loaded: [String],
        environmentCommit: String
    ) {
        self.model = model
        self.latest = latest
        self.rolledOut = rolledOut
        self.route = route
        self.loaded = loaded
        self.environmentCommit = environmentCommit
    }

    /// A deployment with one version taking all traffic.
    public static func single(model: String, _ version: KServeVersion, environmentCommit: String) -> KServeDeployment {
        KServeDeployment(
            model: model, latest: version, rolledOut: version,
            route: ServerState.Route(defaultVersion: version.digest, traffic: nil, shadow: nil), loaded: [version.digest],
            environmentCommit: environmentCommit)
    }

    /// `canaryTrafficPercent`: nil gives `latest` all traffic, 0 keeps it all on `rolledOut` (KServe's rollback),
    /// else the latest revision's share of a split.
    public var canaryPercent: Int? {
        if let traffic = route.traffic { return traffic.first { $0.version == latest.digest }?.weight ?? 0 }
        return route.defaultVersion == latest.digest ? nil : 0
    }
}

/// The Kubernetes objects of KServe that serve Stagecraft versions.
public enum KServeObjects {
    /// The name of the ClusterServingRuntime and of the model format it serves.
    public static let runtimeName = "stagecraft"
    /// The label and annotation prefix.
    public static let prefix = "stagecraft.dev/"
    public static let inferenceServiceAPI = "serving.kserve.io/v1beta1"
    public static let runtimeAPI = "serving.kserve.io/v1alpha1"

    /// The ClusterServingRuntime: the image serving a version's folder (`/mnt/models`, where KServe's storage
    /// initializer puts the `storageUri`) over the Open Inference Protocol on port 8080.
    public static func runtime(_ settings: KServeSettings) -> Document {
        .map([
            ("apiVersion", .string(runtimeAPI)),
            ("kind", .string("ClusterServingRuntime")),
            (
                "metadata",
                .map([("name", .string(runtimeName)), ("labels", .map([("app.kubernetes.io/managed-by", .string("stagecraft"))]))])
            ),
            (
                "spec",
                .map([
                    (
                        "supportedModelFormats",
                        .list([
                            .map([
                                ("name", .string(runtimeName)), ("version", .string(String(ModelFile.currentFormatVersion))),
                                ("autoSelect", .bool(true)),
                            ])
                        ])
                    ),
                    ("protocolVersions", .list([.string("v2")])),
                    (
                        "containers",
                        .list([
                            .map([
                                ("name", .string("kserve-container")),
                                ("image", .string(settings.image)),
                                (
                                    "args",
                                    .list(
                                        ["serve", "--model-dir", "/mnt/models", "--host", "0.0.0.0", "--port", "8080"].map {
                                            .string($0)
                                        })
                                ),
                                ("ports", .list([.map([("containerPort", .int(8080)), ("protocol", .string("TCP"))])])),
                                (
                                    "readinessProbe",
                                    .map([("httpGet", .map([("path", .string("/v2/health/ready")), ("port", .int(8080))]))])
                                ),
                            ])
                        ])
                    ),
                ])
            ),
        ])
    }

    /// One model's InferenceService.
    public static func inferenceService(_ deployment: KServeDeployment, _ settings: KServeSettings) -> Document {
        var predictor: [(String, Document)] = []
        if let percent = deployment.canaryPercent { predictor.append(("canaryTrafficPercent", .int(percent))) }
        if let account = settings.serviceAccount { predictor.append(("serviceAccountName", .string(account))) }
        predictor.append(
            (
                "model",
                .map([
                    // KServe names the predictor's container so; the SDK's model says "" when it is left out.
                    ("name", .string("kserve-container")),
                    ("modelFormat", .map([("name", .string(runtimeName)), ("version", .string(String(ModelFile.currentFormatVersion)))])),
                    ("protocolVersion", .string("v2")),
                    ("runtime", .string(runtimeName)),
                    ("storageUri", .string(settings.storagePrefix + "/" + deployment.latest.digest)),
                ])
            ))
        let route = deployment.route
        let labels: [(String, Document)] = [
            ("app.kubernetes.io/managed-by", .string("stagecraft")),
            (prefix + "environment", .string(settings.environment)),
            (prefix + "model", .string(deployment.model)),
            (prefix + "version", .string(VersionDigest.short(deployment.latest.digest))),
        ]
        let annotations: [(String, Document)] = [
            (prefix + "version", .string(deployment.latest.digest)),
            (prefix + "source", .string(deployment.latest.source)),
            (prefix + "rolled-out", .string(deployment.rolledOut.digest)),
            (prefix + "rolled-out-source", .string(deployment.rolledOut.source)),
            (prefix + "loaded", .string(deployment.loaded.joined(separator: ","))),
            (prefix + "route", .string(routeText(route))),
            (prefix + "environment-commit", .string(deployment.environmentCommit)),
            // The latest revision answers at its own `latest-` address, so that a candidate with no traffic can be
            // verified before it gets any.
            ("serving.kserve.io/enable-tag-routing", .string("true")),
        ]
        return .map([
            ("apiVersion", .string(inferenceServiceAPI)),
            ("kind", .string("InferenceService")),
            (
                "metadata",
                .map([
                    ("name", .string(deployment.model)), ("namespace", .string(settings.namespace)), ("labels", .map(labels)),
                    ("annotations", .map(annotations)),
                ])
            ),
            ("spec", .map([("predictor", .map(predictor))])),
        ])
    }

    /// `default` alone, or `default digest:weight,digest:weight` for a split.
    static func routeText(_ route: ServerState.Route) -> String {
        guard let traffic = route.traffic else { return route.defaultVersion }
        return route.defaultVersion + " " + traffic.map { "\($0.version):\($0.weight)" }.joined(separator: ",")
    }

    /// Reads a `route` annotation back.
    static func route(_ text: String) -> ServerState.Route? {
        let parts = text.split(separator: " ")
        guard parts.count == 1 || parts.count == 2 else { return nil }
        var traffic: [VersionShare]?
        if parts.count == 2 {
            traffic = []
            for share in parts[1].split(separator: ",") {
                let pair = share.split(separator: ":")
                guard pair.count == 2, let weight = Int(pair[1]) else { return nil }
                traffic?.append(VersionShare(version: String(pair[0]), weight: weight))
            }
        }
        return ServerState.Route(defaultVersion: String(parts[0]), traffic: traffic, shadow: nil)
    }

    /// A `List` of objects, as `kubectl apply -f -` reads it.
    public static func list(_ items: [Document]) -> Document {
        .map([("apiVersion", .string("v1")), ("kind", .string("List")), ("items", .list(items))])
    }

    /// Whether `name` is a DNS-1123 label (a namespace, a service account): 1 to 63 of a-z, 0-9 and '-', a letter or digit
    /// at both ends.
    public static func isValidLabel(_ name: String) -> Bool {
        guard !name.isEmpty, name.count <= 63, !name.hasPrefix("-"), !name.hasSuffix("-") else { return false }
        return name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
    }

    /// Whether `name` can name an InferenceService (a DNS-1035 label: a letter first, at most 63 characters).
    public static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, ("a"..."z").contains(first), name.count <= 63, !name.hasSuffix("-") else {
            return false
        }
        return name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
    }
}
