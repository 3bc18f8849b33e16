import Foundation
import Yams

/// The optional `stagecraft.yaml` at the repository root, kind `Project`.
public struct ProjectSettings: Hashable, Sendable {
    /// The branch that promotions commit to and `track` environments follow.
    public var branch: String = "main"
    /// Where artifacts are stored: a folder relative to the repository root, or `s3://bucket/prefix` for a store
    /// shared by several machines (then cached under ``artifactCache``).
    public var artifacts: String = ".stagecraft/artifacts"
    /// The S3-compatible service of `s3://` locations (`spec.s3`): AWS when it names no endpoint.
    public var s3 = S3Service()
    /// The state store: a SQLite path relative to the repository root, or a PostgreSQL URL
    /// (`postgres://user@host:5432/database?sslmode=require`) for a store shared by several hosts.
    public var stateStore: String = ".stagecraft/state.db"

    /// True when ``artifacts`` is an `s3://` location.
    public var artifactsAreRemote: Bool { artifacts.hasPrefix("s3://") }

    /// The local cache of a remote artifact store, relative to the repository root.
    public static let artifactCache = ".stagecraft/cache/artifacts"

    /// `spec.s3`: where an S3-compatible server is. Credentials are never here (the file is committed): they come from
    /// the environment or the AWS profile files.
    public struct S3Service: Hashable, Sendable {
        /// `http(s)://host[:port]` of a server other than AWS (MinIO, Ceph, moto).
        public var endpoint: String?
        public var region: String?
        /// Path-style addresses (`host/bucket/key`), which most servers other than AWS want.
        public var pathStyle: Bool = false
        public init() {}
    }

    /// True when ``stateStore`` is a PostgreSQL URL.
    public var stateStoreIsPostgres: Bool { Self.isPostgresURL(stateStore) }

    static func isPostgresURL(_ text: String) -> Bool { text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") }

    public init() {}

    public static let file = "stagecraft.yaml"

    /// Decodes `stagecraft.yaml`; every key is optional.
    public static func decode(_ text: String, file: String = ProjectSettings.file) -> (ProjectSettings?, [Diagnostic]) {
        let reader = YAMLReader(file: file)
        var settings = ProjectSettings()
        if let node = reader.parse(text), let root = reader.mapping(node, "", allowed: ["apiVersion", "kind", "metadata", "spec"]) {
            if let version = reader.required(root, "apiVersion", "expected 'stagecraft/v1'"),
                let text = reader.string(version, "apiVersion"), text != "stagecraft/v1"
            {
                reader.report(version, "unsupported apiVersion '\(text)' (expected 'stagecraft/v1')")
            }
            if let kind = reader.required(root, "kind", "expected 'Project'"), let text = reader.string(kind, "kind"), text != "Project" {
                reader.report(kind, "kind '\(text)' does not belong here (expected 'Project')")
            }
            if let specNode = root["spec"],
                let spec = reader.mapping(specNode, "spec", allowed: ["branch", "artifacts", "stateStore", "s3"])
            {
                if let node = spec["branch"], let value = reader.string(node, "spec.branch") { settings.branch = value }
                if let node = spec["artifacts"], let value = reader.string(node, "spec.artifacts") {
                    settings.artifacts = value
                    if value.hasPrefix("s3://") {
                        let bucket = value.dropFirst(5).prefix { $0 != "/" }
                        if bucket.count < 3 || bucket.contains(where: { !($0.isLowercase || $0.isNumber || $0 == "-" || $0 == ".") }) {
                            reader.report(
                                node,
                                "spec.artifacts: expected s3://bucket/prefix with a bucket name of 3 or more "
                                    + "lower-case letters, digits, '-' or '.'")
                        }
                    } else if value.contains("://") {
                        reader.report(node, "spec.artifacts: expected a folder of the repository or s3://bucket/prefix")
                    }
                }
                if let node = spec["s3"], let s3 = reader.mapping(node, "spec.s3", allowed: ["endpoint", "region", "pathStyle"]) {
                    if let node = s3["endpoint"], let value = reader.string(node, "spec.s3.endpoint") {
                        let parts = URLComponents(string: value)
                        if parts?.user != nil || parts?.password != nil {
                            reader.report(
                                node,
                                "spec.s3.endpoint: the URL holds credentials, which would be committed; give them in "
                                    + "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an AWS profile instead")
                        } else if !["http", "https"].contains(parts?.scheme ?? "") || (parts?.host ?? "").isEmpty {
                            reader.report(node, "spec.s3.endpoint: expected http(s)://host[:port]")
                        } else {
                            settings.s3.endpoint = value
                        }
                    }
                    if let node = s3["region"], let value = reader.string(node, "spec.s3.region") { settings.s3.region = value }
                    if let node = s3["pathStyle"], let value = reader.bool(node, "spec.s3.pathStyle") { settings.s3.pathStyle = value }
                }
                if let node = spec["stateStore"], let value = reader.string(node, "spec.stateStore") {
                    settings.stateStore = value
                    if isPostgresURL(value) {
                        let parts = URLComponents(string: value)
                        if parts?.password != nil {
                            // The file is committed: a password there would be in git for good.
                            reader.report(
                                node,
                                "spec.stateStore: the URL holds a password, which would be committed; give it in PGPASSWORD "
                                    + "or ~/.pgpass instead")
                        } else if parts?.host?.isEmpty ?? true || (parts?.path ?? "").count < 2 {
                            reader.report(node, "spec.stateStore: expected postgres://user@host:5432/database")
                        }
                    }
                }
            }
        }
        return (reader.diagnostics.isEmpty ? settings : nil, reader.diagnostics)
    }
}
