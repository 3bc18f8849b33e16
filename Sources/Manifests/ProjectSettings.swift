import Foundation
import Yams

/// The optional `stagecraft.yaml` at the repository root, kind `Project`.
public struct ProjectSettings: Hashable, Sendable {
    /// The branch that promotions commit to and `track` environments follow.
    public var branch: String = "main"
    /// Where artifacts are stored, relative to the repository root.
    public var artifacts: String = ".stagecraft/artifacts"
    /// The state store: a SQLite path relative to the repository root, or a PostgreSQL URL
    /// (`postgres://user@host:5432/database?sslmode=require`) for a store shared by several hosts.
    public var stateStore: String = ".stagecraft/state.db"

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
            if let version = reader.required(root, "apiVersion", "expected "
                + "'stagecraft/v1'"), let text = reader.string(version, "apiVersion"),
               text != "stagecraft/v1" {
                reader.report(version, "unsupported apiVersion '\(text)' (expected 'stagecraft/v1')")
            }
            if let kind = reader.required(root, "kind", "expected 'Project'"), let text = reader.string(kind, "kind"), text != "Project" {
                reader.report(kind, "kind '\(text)' does not belong here (expected 'Project')")
            }
            if let specNode = root["spec"], let spec = reader.mapping(specNode, "spec", allowed: ["branch", "artifacts", "stateStore"]) {
                if let node = spec["branch"], let value = reader.string(node, "spec.branch") { settings.branch = value }
                if let node = spec["artifacts"], let value = reader.string(node, "spec.artifacts") { settings.artifacts = value }
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
