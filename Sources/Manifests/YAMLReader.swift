import Yams

/// Reads a YAML document node by node, reporting every problem with its position instead of stopping at the first.
final class YAMLReader {
    let file: String
    private(set) var diagnostics: [Diagnostic] = []

    init(file: String) { self.file = file }

    /// Parses `text`; a syntax error is reported and gives nil.
    func parse(_ text: String) -> Node? {
        do {
            guard let node = try Yams.compose(yaml: text) else {
                report(
                    SourceLocation(file: file, line: 1, column: 1),
                    "the file is empty (expected a YAML mapping with apiVersion, "
                        + "kind, metadata and spec)")
                return nil
            }
            return node
        } catch let error as YamlError {
            switch error {
            case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
                .composer(let context, let problem, let mark, _):
                let detail = context.map { "\(problem) \($0.text) that starts at \($0.mark.line):\($0.mark.column)" } ?? problem
                report(SourceLocation(file: file, line: mark.line, column: mark.column), "invalid YAML: \(detail)")
            case .duplicatedKeysInMapping(let duplicates, let context):
                reportDuplicates(duplicates, mappingAt: context.mark, in: text)
            default:
                report(SourceLocation(file: file, line: 1, column: 1), "invalid YAML: \(error)")
            }
            return nil
        } catch {
            report(SourceLocation(file: file, line: 1, column: 1), "invalid YAML: \(error)")
            return nil
        }
    }

    /// Yams names a repeated key and where its mapping starts; find each repeat in a block mapping by its indentation.
    private func reportDuplicates(_ keys: [String], mappingAt mark: Mark, in text: String) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let indent = String(repeating: " ", count: mark.column - 1)
        for key in keys {
            let lineNumbers = lines.indices.filter { index in
                index + 1 >= mark.line && lines[index].hasPrefix(indent + key + ":") && !lines[index].dropFirst(indent.count).hasPrefix(" ")
            }.map { $0 + 1 }
            guard let first = lineNumbers.first, lineNumbers.count > 1 else {
                report(SourceLocation(file: file, line: mark.line, column: mark.column), "duplicate key '\(key)' in this mapping")
                continue
            }
            for line in lineNumbers.dropFirst() {
                report(
                    SourceLocation(file: file, line: line, column: mark.column),
                    "duplicate key '\(key)' (first at "
                        + "\(first):\(mark.column))")
            }
        }
    }

    func report(_ location: SourceLocation, _ message: String) {
        diagnostics.append(Diagnostic(location, message))
    }

    func report(_ node: Node, _ message: String) {
        report(location(node), message)
    }

    func location(_ node: Node) -> SourceLocation {
        let mark = node.mark
        return SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    /// How a node looks, for "found …" in messages.
    static func describe(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            if scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string) { return "nothing" }
            return "'\(scalar.string)'"
        }
    }

    static func isNull(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node else { return false }
        return scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    // MARK: Mappings

    /// A mapping's entries in order, with their key nodes.
    struct Mapping {
        let node: Node
        /// Dotted path of this mapping in the document, such as `spec.data`.
        let path: String
        let entries: [(key: String, keyNode: Node, value: Node)]

        subscript(key: String) -> Node? { entries.first { $0.key == key }?.value }
        func keyNode(_ key: String) -> Node? { entries.first { $0.key == key }?.keyNode }
        func child(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
    }

    /// Reads `node` as a mapping whose keys must be among `allowed` (nil: any key).
    /// Unknown keys are reported (Yams refuses repeated ones while parsing); a non-mapping is reported and gives nil.
    func mapping(_ node: Node, _ path: String, allowed: [String]?) -> Mapping? {
        guard case .mapping(let mapping) = node else {
            report(node, "expected a mapping for '\(path.isEmpty ? "the document" : path)', found \(Self.describe(node))")
            return nil
        }
        var entries: [(key: String, keyNode: Node, value: Node)] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let keyScalar) = keyNode else {
                report(keyNode, "expected a name as key in '\(path)', found \(Self.describe(keyNode))")
                continue
            }
            let key = keyScalar.string
            if let allowed, !allowed.contains(key) {
                let scope = path.isEmpty ? "the document" : path
                report(
                    keyNode,
                    "unknown key '\(key)' in \(scope)\(Spelling.didYouMean(key, among: allowed)) (expected one of: "
                        + "\(allowed.joined(separator: ", ")))")
                continue
            }
            entries.append((key, keyNode, value))
        }
        return Mapping(node: node, path: path, entries: entries)
    }

    /// The value of a field that must be present (and not null); reports it missing otherwise.
    func required(_ mapping: Mapping, _ key: String, _ expected: String) -> Node? {
        guard let value = mapping[key], !Self.isNull(value) else {
            let at = mapping.keyNode(key) ?? mapping.node
            report(at, "missing required field '\(mapping.child(key))' (\(expected))")
            return nil
        }
        return value
    }

    // MARK: Scalars

    func string(_ node: Node, _ path: String) -> String? {
        guard case .scalar(let scalar) = node, !Self.isNull(node) else {
            report(node, "expected a string for '\(path)', found \(Self.describe(node))")
            return nil
        }
        return scalar.string
    }

    func int(_ node: Node, _ path: String, range: ClosedRange<Int>? = nil) -> Int? {
        guard case .scalar(let scalar) = node, let value = Int(scalar.string) else {
            report(node, "expected a whole number for '\(path)', found \(Self.describe(node))")
            return nil
        }
        if let range, !range.contains(value) {
            report(node, "'\(path)' must be between \(range.lowerBound) and \(range.upperBound), found \(value)")
            return nil
        }
        return value
    }

    func double(_ node: Node, _ path: String) -> Double? {
        guard case .scalar(let scalar) = node, scalar.style == .plain, let value = Double(scalar.string), value.isFinite else {
            report(node, "expected a number for '\(path)', found \(Self.describe(node))")
            return nil
        }
        return value
    }

    func bool(_ node: Node, _ path: String) -> Bool? {
        guard case .scalar(let scalar) = node, scalar.style == .plain else {
            report(node, "expected true or false for '\(path)', found \(Self.describe(node))")
            return nil
        }
        switch scalar.string {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default:
            report(node, "expected true or false for '\(path)', found \(Self.describe(node))")
            return nil
        }
    }

    /// A string that must be one of an enumeration's raw values; reports the choices and a likely spelling.
    func choice<E: RawRepresentable & CaseIterable>(_ node: Node, _ path: String, _ what: String) -> E? where E.RawValue == String {
        guard let text = string(node, path) else { return nil }
        if let value = E(rawValue: text) { return value }
        let names = E.allCases.map(\.rawValue)
        report(
            node,
            "unknown \(what) '\(text)'\(Spelling.didYouMean(text, among: names)) (expected one of: "
                + "\(names.joined(separator: ", ")))")
        return nil
    }

    func list(_ node: Node, _ path: String) -> [Node]? {
        guard case .sequence(let sequence) = node else {
            report(node, "expected a list for '\(path)', found \(Self.describe(node))")
            return nil
        }
        return Array(sequence)
    }

    /// Decodes `text` with `body`; the value is kept only when no problem was reported.
    static func decode<T>(_ text: String, file: String, _ body: (Node, YAMLReader) -> T?) -> (T?, [Diagnostic]) {
        let reader = YAMLReader(file: file)
        let value = reader.parse(text).flatMap { body($0, reader) }
        return (reader.diagnostics.isEmpty ? value : nil, reader.diagnostics)
    }

    /// The top of a Model or Environment document: `apiVersion`, `kind`, a checked `metadata.name`, and the
    /// `spec` mapping with its allowed keys. The header is nil when the name is missing.
    func document(_ node: Node, kind: String, spec expected: String, specKeys: [String]) -> (
        header: (name: String, node: Node)?, spec: Mapping
    )? {
        guard let root = mapping(node, "", allowed: ["apiVersion", "kind", "metadata", "spec"]) else { return nil }
        let header = self.header(root, kind: kind)
        if let header { checkName(header.name, header.node, what: kind.lowercased()) }
        guard let specNode = required(root, "spec", expected), let spec = mapping(specNode, "spec", allowed: specKeys) else { return nil }
        return (header, spec)
    }

    /// Checks a model or environment name: 1 to 63 of a-z, 0-9, '-', and equal to the file name.
    func checkName(_ name: String, _ node: Node, what: String) {
        if !ModelManifest.isValidName(name) {
            report(node, "invalid \(what) name '\(name)' (expected 1 to 63 lowercase letters, digits or '-')")
        } else if let stem = file.split(separator: "/").last?.split(separator: ".").first, String(stem) != name {
            report(node, "metadata.name '\(name)' does not match the file name (expected '\(stem)')")
        }
    }

    /// Checks `apiVersion` and `kind`, and reads `metadata.name`.
    func header(_ root: Mapping, kind: String) -> (name: String, node: Node)? {
        if let version = required(root, "apiVersion", "expected 'stagecraft/v1'"), let text = string(version, "apiVersion"),
            text != "stagecraft/v1"
        {
            report(version, "unsupported apiVersion '\(text)' (expected 'stagecraft/v1')")
        }
        if let kindNode = required(root, "kind", "expected '\(kind)'"), let text = string(kindNode, "kind"), text != kind {
            report(kindNode, "kind '\(text)' does not belong here (expected '\(kind)')")
        }
        guard let metadataNode = required(root, "metadata", "a mapping with 'name'"),
            let metadata = mapping(metadataNode, "metadata", allowed: ["name", "labels", "annotations"]),
            let nameNode = required(metadata, "name", "the \(kind.lowercased())'s name"),
            let name = string(nameNode, "metadata.name")
        else { return nil }
        return (name, nameNode)
    }
}
