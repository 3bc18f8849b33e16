import Foundation
import Yams

/// A version's share of a model's traffic.
public struct TrafficSplit: Hashable, Sendable, Codable {
    public var version: String
    /// The commit the version is built from, when it differs from the model's `source`.
    public var source: String?
    /// Percent of requests, 0 to 100.
    public var weight: Int

    public init(version: String, source: String? = nil, weight: Int) {
        self.version = version
        self.source = source
        self.weight = weight
    }
}

/// One model as an environment runs it.
public struct ModelDeployment: Hashable, Sendable {
    public var model: String
    /// The pinned digest (at least 12 hex digits), or nil when nothing has been promoted here yet.
    public var version: String?
    /// The commit the version is built from.
    public var source: String?
    /// Gates for this model, overriding the environment's gates of the same metric.
    public var gates: [Gate]
    /// A canary or A/B split; nil means all traffic to `version`.
    public var traffic: [TrafficSplit]?
    /// A version that receives a copy of every request; its answers are only recorded (captured).
    public var shadow: TrafficSplit?
    /// Where the model's entry is written.
    public var location: SourceLocation
    /// Where the `version` and `source` values are written (a promotion rewrites exactly these bytes).
    public var versionLocation: SourceLocation?
    public var sourceLocation: SourceLocation?
}

/// `environments/<name>.yaml`, kind `Environment`: which versions run where, and what they must prove.
/// `spec.approval`: a version reaches the environment only after `count` of `approvers` (git identities, by email)
/// other than the one who promoted it approved it.
public struct ApprovalPolicy: Hashable, Sendable {
    public var required: Bool
    /// Emails, lowercased.
    public var approvers: [String]
    public var count: Int

    public init(required: Bool, approvers: [String], count: Int) {
        self.required = required
        self.approvers = approvers.map { $0.lowercased() }
        self.count = count
    }

    /// Whether `email` may approve.
    public func allows(_ email: String) -> Bool { approvers.contains(email.lowercased()) }
}

public struct EnvironmentManifest: Hashable, Sendable {
    public var name: String
    public var file: String
    /// The environment versions are promoted from; nil for the first one.
    public var upstream: String?
    public var upstreamLocation: SourceLocation?
    /// When true, reconcile builds each manifest at the branch head and promotes it here by commit.
    public var track: Bool
    public var host: String
    public var port: Int
    public var portLocation: SourceLocation
    /// The port of the Open Inference Protocol's gRPC service, when the server offers it (`server.grpcPort`).
    public var grpcPort: Int?
    public var grpcPortLocation: SourceLocation?
    /// Gates for every model here.
    public var gates: [Gate]
    /// The models, in the order written.
    public var models: [ModelDeployment]
    /// What served models must keep showing (drift, live metrics) and when to retrain; nil when not monitored.
    public var monitor: MonitorSpec?
    /// Who must approve a promotion here; nil (or not required): a promotion commits on the project branch at once.
    public var approval: ApprovalPolicy?

    /// The approvals a promotion here needs; nil when none.
    public var requiredApproval: ApprovalPolicy? { approval?.required == true ? approval : nil }

    /// The gates that apply to `model`: the environment's, with the model's own replacing those of the same metric.
    public func gates(for model: String) -> [Gate] {
        let own = models.first { $0.model == model }?.gates ?? []
        let overridden = Set(own.map(\.metric))
        return gates.filter { !overridden.contains($0.metric) } + own
    }

    public func deployment(_ model: String) -> ModelDeployment? { models.first { $0.model == model } }

    /// Decodes and checks one environment file; returns the environment when it is usable, and every problem found.
    public static func decode(_ text: String, file: String) -> (EnvironmentManifest?, [Diagnostic]) {
        YAMLReader.decode(text, file: file) { node, reader in decode(node, reader: reader) }
    }

    private static func decode(_ node: Node, reader: YAMLReader) -> EnvironmentManifest? {
        guard
            let (header, spec) = reader.document(
                node, kind: "Environment",
                spec: "a mapping with server and "
                    + "models", specKeys: ["upstream", "track", "server", "gates", "models", "monitor", "approval"])
        else { return nil }
        let upstreamNode = spec["upstream"].flatMap { YAMLReader.isNull($0) ? nil : $0 }
        let upstream = upstreamNode.flatMap { reader.string($0, "spec.upstream") }
        let track = spec["track"].map { reader.bool($0, "spec.track") } ?? false
        var host = "127.0.0.1"
        var port: (Int, SourceLocation)?
        var grpc: (Int, SourceLocation)?
        if let serverNode = reader.required(spec, "server", "a mapping with port, and optionally host"),
            let server = reader.mapping(serverNode, "spec.server", allowed: ["host", "port", "grpcPort"])
        {
            if let hostNode = server["host"], let text = reader.string(hostNode, "spec.server.host") { host = text }
            if let portNode = reader.required(server, "port", "a TCP port, 1 to 65535"),
                let value = reader.int(portNode, "spec.server.port", range: 1...65535)
            {
                port = (value, reader.location(portNode))
            }
            if let grpcNode = server["grpcPort"], !YAMLReader.isNull(grpcNode),
                let value = reader.int(grpcNode, "spec.server.grpcPort", range: 1...65535)
            {
                grpc = (value, reader.location(grpcNode))
                if let port, port.0 == value {
                    reader.report(
                        grpcNode,
                        "grpcPort \(value) is the HTTP port too; give gRPC a port of its "
                            + "own")
                }
            }
        }
        let gates = spec["gates"].map { reader.gates($0, "spec.gates") } ?? []
        var models: [ModelDeployment] = []
        if let modelsNode = spec["models"], !YAMLReader.isNull(modelsNode),
            let mapping = reader.mapping(modelsNode, "spec.models", allowed: nil)
        {
            for (name, keyNode, value) in mapping.entries {
                if let deployment = decodeDeployment(name, keyNode, value, reader: reader) { models.append(deployment) }
            }
        }
        let monitor = spec["monitor"].flatMap { reader.monitor($0, "spec.monitor") }
        let approval = spec["approval"].flatMap { decodeApproval($0, track: track ?? false, reader: reader) }
        guard let header, let track, let port else { return nil }
        return EnvironmentManifest(
            name: header.name, file: reader.file, upstream: upstream, upstreamLocation: upstreamNode.map(reader.location),
            track: track, host: host, port: port.0, portLocation: port.1, grpcPort: grpc?.0, grpcPortLocation: grpc?.1, gates: gates,
            models: models, monitor: monitor, approval: approval)
    }

    private static func decodeApproval(_ node: Node, track: Bool, reader: YAMLReader) -> ApprovalPolicy? {
        guard let mapping = reader.mapping(node, "spec.approval", allowed: ["required", "approvers", "count"]) else { return nil }
        let required = mapping["required"].map { reader.bool($0, "spec.approval.required") } ?? true
        var approvers: [String] = []
        if let listNode = reader.required(mapping, "approvers", "a list of approvers' git emails"),
            let items = reader.list(listNode, "spec.approval.approvers")
        {
            for (index, item) in items.enumerated() {
                guard let email = reader.string(item, "spec.approval.approvers[\(index)]") else { continue }
                if !email.contains("@") || email.contains(" ") {
                    reader.report(item, "'\(email)' is not an email: approvers are named by their git identity's email")
                } else if approvers.contains(email.lowercased()) {
                    reader.report(item, "approver '\(email)' appears twice")
                } else {
                    approvers.append(email.lowercased())
                }
            }
            if items.isEmpty { reader.report(listNode, "'spec.approval.approvers' is empty: name at least one approver") }
        }
        let count = mapping["count"].flatMap { reader.int($0, "spec.approval.count", range: 1...100) } ?? 1
        if let countNode = mapping["count"], !approvers.isEmpty, count > approvers.count {
            reader.report(countNode, "'spec.approval.count' is \(count) but only \(approvers.count) approver(s) are named")
        }
        if track, required == true {
            reader.report(node, "a track environment promotes by itself; approval needs an environment promoted into (remove track)")
        }
        guard let required else { return nil }
        return ApprovalPolicy(required: required, approvers: approvers, count: count)
    }

    private static func decodeDeployment(_ name: String, _ keyNode: Node, _ node: Node, reader: YAMLReader) -> ModelDeployment? {
        let path = "spec.models.\(name)"
        if !ModelManifest.isValidName(name) {
            reader.report(keyNode, "invalid model name '\(name)' (expected 1 to 63 lowercase letters, digits or '-')")
        }
        if YAMLReader.isNull(node) {
            return ModelDeployment(
                model: name, version: nil, source: nil, gates: [], traffic: nil, shadow: nil, location: reader.location(keyNode))
        }
        guard let mapping = reader.mapping(node, path, allowed: ["version", "source", "gates", "traffic", "shadow"]) else { return nil }
        let versionNode = mapping["version"]
        let sourceNode = mapping["source"]
        let version = versionNode.flatMap { YAMLReader.isNull($0) ? nil : digest($0, "\(path).version", reader: reader) }
        let source = sourceNode.flatMap { YAMLReader.isNull($0) ? nil : commitID($0, "\(path).source", reader: reader) }
        if version != nil && source == nil && (sourceNode.map(YAMLReader.isNull) ?? true) {
            reader.report(versionNode!, "'\(path).version' needs a 'source': the commit the version is built from")
        }
        let gates = mapping["gates"].map { reader.gates($0, "\(path).gates") } ?? []
        let traffic = mapping["traffic"].flatMap { decodeTraffic($0, "\(path).traffic", reader: reader) }
        var shadow: TrafficSplit?
        if let shadowNode = mapping["shadow"],
            let shadowMapping = reader.mapping(shadowNode, "\(path).shadow", allowed: ["version", "source"])
        {
            let shadowVersion = reader.required(shadowMapping, "version", "a version digest").flatMap {
                digest($0, "\(path).shadow.version", reader: reader)
            }
            let shadowSource = shadowMapping["source"].flatMap { commitID($0, "\(path).shadow.source", reader: reader) }
            if let shadowVersion {
                if shadowVersion == version {
                    reader.report(
                        shadowMapping["version"]!,
                        "'\(path).shadow.version' is the version that serves; a shadow must be "
                            + "another version")
                } else {
                    shadow = TrafficSplit(version: shadowVersion, source: shadowSource, weight: 0)
                }
            }
        }
        return ModelDeployment(
            model: name, version: version, source: source, gates: gates, traffic: traffic, shadow: shadow,
            location: reader.location(keyNode),
            versionLocation: versionNode.map(reader.location), sourceLocation: sourceNode.map(reader.location))
    }

    private static func decodeTraffic(_ node: Node, _ path: String, reader: YAMLReader) -> [TrafficSplit]? {
        guard let items = reader.list(node, path) else { return nil }
        var splits: [TrafficSplit] = []
        var complete = true
        for (index, item) in items.enumerated() {
            let itemPath = "\(path)[\(index)]"
            guard let mapping = reader.mapping(item, itemPath, allowed: ["version", "source", "weight"]) else {
                complete = false
                continue
            }
            let version = reader.required(mapping, "version", "a version digest").flatMap {
                digest($0, "\(itemPath).version", reader: reader)
            }
            let source = mapping["source"].flatMap { commitID($0, "\(itemPath).source", reader: reader) }
            let weight = reader.required(
                mapping, "weight",
                "a percentage, 0 to "
                    + "100"
            ).flatMap { reader.int($0, "\(itemPath).weight", range: 0...100) }
            guard let version, let weight else {
                complete = false
                continue
            }
            if splits.contains(where: { $0.version == version }) {
                reader.report(mapping["version"]!, "version \(version) appears twice in '\(path)'")
            }
            splits.append(TrafficSplit(version: version, source: source, weight: weight))
        }
        if complete, !splits.isEmpty {
            let total = splits.reduce(0) { $0 + $1.weight }
            if total != 100 { reader.report(node, "traffic weights in '\(path)' sum to \(total) (expected 100)") }
        }
        return complete ? splits : nil
    }

    private static func digest(_ node: Node, _ path: String, reader: YAMLReader) -> String? {
        hex(node, path, digits: 12...64, what: "a version digest", reader: reader)
    }

    private static func commitID(_ node: Node, _ path: String, reader: YAMLReader) -> String? {
        hex(node, path, digits: 7...40, what: "a commit hash", reader: reader)
    }

    private static func hex(_ node: Node, _ path: String, digits: ClosedRange<Int>, what: String, reader: YAMLReader) -> String? {
        guard let text = reader.string(node, path) else { return nil }
        guard digits.contains(text.count), text.allSatisfy(\.isHexDigit), text == text.lowercased() else {
            reader.report(
                node,
                "'\(path)' must be \(what) of \(digits.lowerBound) to \(digits.upperBound) lowercase hex digits, found "
                    + "'\(text)'")
            return nil
        }
        return text
    }
}
