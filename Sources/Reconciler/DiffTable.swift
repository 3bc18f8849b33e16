public import Foundation
public import GitStore
import Manifests
public import Registry

/// Two things side by side, field by field, as `stagecraft diff` prints them and the console's model page shows them.
public struct DiffTable: Codable, Sendable {
    /// One field, its value on each side, and whether they differ.
    public struct Row: Codable, Sendable {
        public var field: String
        public var left: String
        public var right: String
        public var differs: Bool
    }

    public var left: String
    public var right: String
    public var rows: [Row]
    public var equal: Bool

    /// A table of `rows` comparing what `left` and `right` name.
    public init(left: String, right: String, rows: [Row], equal: Bool) {
        self.left = left
        self.right = right
        self.rows = rows
        self.equal = equal
    }

    /// Rows from `(field, left, right)`, each marked when its sides differ.
    public static func rows(_ fields: [(String, String, String)]) -> [Row] {
        fields.map { Row(field: $0.0, left: $0.1, right: $0.2, differs: $0.1 != $0.2) }
    }

    /// Two builds: spec, parameters, data hashes, holdout metrics, and the environments that run each (as recorded).
    public static func builds(_ a: BuildInfo, _ b: BuildInfo, workspace: Workspace, state: any StateStore, commit: ObjectID) throws
        -> DiffTable
    {
        let environments = try workspace.environmentNames(at: commit)
        func runs(_ build: BuildInfo) throws -> String {
            let names = try environments.filter { name in
                guard let served = try state.served(environment: name)[build.model] else { return false }
                return served.versions.contains(build.digest)
            }
            return names.isEmpty ? "-" : names.joined(separator: ", ")
        }
        func spec(_ build: BuildInfo) -> String {
            guard let source = ObjectID(hex: build.source),
                let data = try? workspace.repository.fileIfPresent(at: "\(Project.manifestsFolder)/\(build.model).yaml", in: source),
                let manifest = ModelManifest.decode(String(decoding: data, as: UTF8.self), file: "\(build.model).yaml").0
            else { return "-" }
            return String(VersionDigest.sha256(Data(manifest.spec.canonical.utf8)).prefix(12))
        }
        var fields: [(String, String, String)] = [
            ("model", a.model, b.model), ("algorithm", a.algorithm, b.algorithm), ("task", a.task, b.task),
            ("source", String(a.source.prefix(12)), String(b.source.prefix(12))), ("spec (sha256)", spec(a), spec(b)),
        ]
        for key in Set(a.parameters.keys).union(b.parameters.keys).sorted() {
            fields.append(("params." + key, a.parameters[key].map { "\($0)" } ?? "-", b.parameters[key].map { "\($0)" } ?? "-"))
        }
        for key in Set(a.data.keys).union(b.data.keys).sorted() {
            fields.append(
                ("data " + key, a.data[key].map { String($0.prefix(12)) } ?? "-", b.data[key].map { String($0.prefix(12)) } ?? "-"))
        }
        for key in Set(a.metrics.keys).union(b.metrics.keys).sorted() {
            fields.append(("holdout " + key, a.metrics[key].map(GateResult.format) ?? "-", b.metrics[key].map(GateResult.format) ?? "-"))
        }
        fields.append(("runs in", try runs(a), try runs(b)))
        fields.append(("built", Timestamp.string(a.createdAt), Timestamp.string(b.createdAt)))
        return DiffTable(
            left: "\(VersionDigest.short(a.digest)) (\(a.model))", right: "\(VersionDigest.short(b.digest)) (\(b.model))",
            rows: rows(fields), equal: a.digest == b.digest)
    }
}
