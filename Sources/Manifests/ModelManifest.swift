import Foundation
import Yams

/// How a model is trained.
public enum Algorithm: String, Sendable, Hashable, CaseIterable, Codable {
    case logisticRegression = "logistic-regression"
    case linearRegression = "linear-regression"
    case gradientBoosting = "gradient-boosting"

    /// The names `trainer.params` and `trainer.search.grid` accept for this algorithm.
    public var parameterNames: [String] {
        switch self {
        case .logisticRegression: return ["l2", "maxIterations", "tolerance"]
        case .linearRegression: return ["l2"]
        case .gradientBoosting:
            return [
                "learningRate", "trees", "maxDepth", "maxLeaves", "minSamplesLeaf", "l2", "maxBins",
                "earlyStopping", "validationFraction", "patience",
            ]
        }
    }

    /// The tasks this algorithm can learn.
    public var tasks: [Task] {
        switch self {
        case .logisticRegression: return [.binaryClassification, .multiclassClassification]
        case .linearRegression: return [.regression]
        case .gradientBoosting: return Task.allCases
        }
    }
}

/// How a feature's values are read.
public enum FeatureType: String, Sendable, Hashable, CaseIterable, Codable {
    case numeric, categorical
}

/// What replaces a missing value.
public enum MissingPolicy: String, Sendable, Hashable, CaseIterable, Codable {
    case mean, median, zero
    case mostFrequent = "most-frequent"
    /// A missing value is an error.
    case error
}

/// One input column of a model.
public struct FeatureSpec: Hashable, Sendable, Codable {
    public var name: String
    /// Inferred from the data when nil.
    public var type: FeatureType?
    /// The default for the type when nil (mean for numeric, most-frequent for categorical).
    public var missing: MissingPolicy?

    public init(name: String, type: FeatureType?, missing: MissingPolicy?) {
        self.name = name
        self.type = type
        self.missing = missing
    }
}

/// Where a model's data is, relative to the repository root.
public struct DataSpec: Hashable, Sendable, Codable {
    public var train: String
    /// The holdout set that gates are computed on.
    public var test: String
    /// The column to predict.
    public var target: String

    /// True when `path` names an object in S3 (`s3://bucket/key`) rather than a file in the repository.
    public static func isObjectStore(_ path: String) -> Bool { path.hasPrefix("s3://") }

    public init(train: String, test: String, target: String) {
        self.train = train
        self.test = test
        self.target = target
    }
}

/// A grid search with k-fold cross-validation on the training set.
public struct SearchSpec: Hashable, Sendable, Codable {
    public var folds: Int
    public var metric: Metric
    /// Parameter name → candidate values, in the order written.
    public var grid: [String: [JSONValue]]

    public init(folds: Int, metric: Metric, grid: [String: [JSONValue]]) {
        self.folds = folds
        self.metric = metric
        self.grid = grid
    }
}

/// The `trainer` section: a built-in algorithm, or a team's own training command.
public struct TrainerSpec: Hashable, Sendable, Codable {
    /// The built-in algorithm; nil when `command` trains the model.
    public var algorithm: Algorithm?
    /// The team's own training code; nil for a built-in algorithm.
    public var command: TrainerCommand?
    public var params: [String: JSONValue]
    public var search: SearchSpec?
    public var seed: Int

    public init(
        algorithm: Algorithm?, command: TrainerCommand? = nil, params: [String: JSONValue] = [:], search: SearchSpec? = nil,
        seed: Int = 42
    ) {
        self.algorithm = algorithm
        self.command = command
        self.params = params
        self.search = search
        self.seed = seed
    }
}

/// `trainer.command` and what goes with it: a training program run in a fresh work folder holding the source
/// commit's `code` and the data, which writes the model into `$STAGECRAFT_OUTPUT`.
public struct TrainerCommand: Hashable, Sendable, Codable {
    /// The program and its arguments; `{name}` is replaced by the value of param `name`.
    public var command: [String]
    /// Files and folders (repository paths) the command needs, materialised from the source commit.
    public var code: [String]
    /// A file whose content pins the runtime (a lock file); its sha256 is an input of the version.
    public var environment: String?
    /// Seconds the command may run before its process group is killed.
    public var timeout: Double
    /// Where each `code` path and the `environment` file are written, for errors found at a ref.
    public var locations: [String: SourceLocation]

    /// The default `timeout`: 30 minutes.
    public static let defaultTimeout: Double = 1800

    public init(command: [String], code: [String], environment: String?, timeout: Double, locations: [String: SourceLocation] = [:]) {
        self.command = command
        self.code = code
        self.environment = environment
        self.timeout = timeout
        self.locations = locations
    }

    /// The `{name}` placeholders of `text`, in order.
    public static func placeholders(in text: String) -> [String] {
        var names: [String] = []
        var rest = text[...]
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            names.append(String(rest[rest.index(after: open)..<close]))
            rest = rest[rest.index(after: close)...]
        }
        return names
    }

    /// `text` with each `{name}` replaced by `values[name]` (a placeholder without a value stays as written).
    public static func substitute(_ text: String, _ values: [String: String]) -> String {
        var out = text
        for name in placeholders(in: text) {
            if let value = values[name] { out = out.replacingOccurrences(of: "{\(name)}", with: value) }
        }
        return out
    }
}

/// The `server` section of a model trained by its own command: the model server that answers for each version.
public struct ServerSpec: Hashable, Sendable, Codable {
    /// The program and its arguments: `{model}` is the version's model folder, `{port}` and `{grpcPort}` the private
    /// loopback ports it must listen on, `{name}` the model's name.
    public var command: [String]
    /// Environment variables set for it (values take the same placeholders).
    public var environment: [String: String]
    /// The HTTP path that answers 200 once the server is ready.
    public var ready: String

    /// The placeholders `command` and `environment` may use.
    public static let placeholders = ["model", "port", "grpcPort", "name"]

    public init(command: [String], environment: [String: String] = [:], ready: String = "/v2/health/ready") {
        self.command = command
        self.environment = environment
        self.ready = ready
    }
}

/// `manifests/<name>.yaml`, kind `Model`: how a model is built.
public struct ModelManifest: Hashable, Sendable {
    public var name: String
    /// The repository-relative path of the file.
    public var file: String
    public var task: Task
    public var data: DataSpec
    /// The declared features; nil means every column but the target, with inferred types.
    public var features: [FeatureSpec]?
    public var trainer: TrainerSpec
    /// The model server of a model trained by its own command (required with `trainer.command`).
    public var server: ServerSpec?
    /// The `spec` section as JSON: its canonical form is an input of the version digest.
    public var spec: JSONValue
    /// Where the data paths are written, for errors found later (a file missing at a ref).
    public var dataLocations: [String: SourceLocation]

    /// Whether `name` is a valid model or environment name: 1 to 63 of `a-z`, `0-9`, `-`.
    public static func isValidName(_ name: String) -> Bool {
        (1...63).contains(name.utf8.count) && name.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 }
    }

    /// Decodes and checks one manifest file; returns the manifest when it is usable, and every problem found.
    public static func decode(_ text: String, file: String) -> (ModelManifest?, [Diagnostic]) {
        YAMLReader.decode(text, file: file) { node, reader in decode(node, reader: reader) }
    }

    private static func decode(_ node: Node, reader: YAMLReader) -> ModelManifest? {
        guard
            let (header, spec) = reader.document(
                node, kind: "Model",
                spec: "a mapping with task, data and "
                    + "trainer", specKeys: ["task", "data", "features", "trainer", "server"])
        else { return nil }

        let task: Task? = reader.required(spec, "task", "one of: \(Task.allCases.map(\.rawValue).joined(separator: ", "))")
            .flatMap { reader.choice($0, "spec.task", "task") }
        let data = reader.required(spec, "data", "a mapping with train, test and target").flatMap { decodeData($0, reader: reader) }
        let features = spec["features"].flatMap { decodeFeatures($0, target: data?.data.target, reader: reader) }
        let trainerNode = reader.required(spec, "trainer", "a mapping with algorithm, or with command")
        let trainer = trainerNode.flatMap { decodeTrainer($0, task: task, reader: reader) }
        let server = spec["server"].flatMap { decodeServer($0, reader: reader) }
        if let trainer, trainer.command != nil, server == nil, spec["server"] == nil, let trainerNode {
            reader.report(
                trainerNode,
                "a model trained by its own command needs a 'server' section: the command that serves a version "
                    + "(such as [mlserver, start, \"{model}\"]) and its ready path")
        }
        if let trainer, trainer.command == nil, let node = spec["server"] {
            reader.report(
                node,
                "'spec.server' is for models trained by their own command (trainer.command); built-in algorithms are served "
                    + "by Stagecraft")
        }

        guard let header, let task, let data, let trainer else { return nil }
        return ModelManifest(
            name: header.name, file: reader.file, task: task, data: data.data, features: features,
            trainer: trainer, server: server, spec: JSONValue(spec.node), dataLocations: data.locations)
    }

    private static func decodeData(_ node: Node, reader: YAMLReader) -> (data: DataSpec, locations: [String: SourceLocation])? {
        guard let mapping = reader.mapping(node, "spec.data", allowed: ["train", "test", "target"]) else { return nil }
        var locations: [String: SourceLocation] = [:]
        func path(_ key: String) -> String? {
            guard let value = reader.required(mapping, key, "a CSV file path relative to the repository root, or s3://bucket/key"),
                let text = reader.string(value, "spec.data.\(key)")
            else { return nil }
            locations[key] = reader.location(value)
            if text.hasPrefix("s3://") {
                // An object in S3: its bytes are hashed into the version as a committed file's are.
                let rest = text.dropFirst(5)
                let bucket = rest.prefix { $0 != "/" }
                guard bucket.count >= 3, rest.count > bucket.count + 1 else {
                    reader.report(value, "data location '\(text)' must be s3://bucket/key")
                    return nil
                }
                return text
            }
            if text.contains("://") {
                reader.report(value, "data location '\(text)' must be a path in the repository or s3://bucket/key")
                return nil
            }
            return repositoryPath(text, value, what: "data path", notRoot: "not a CSV file", reader: reader)
        }
        let train = path("train")
        let test = path("test")
        let target = reader.required(
            mapping, "target",
            "the name of the column to "
                + "predict"
        ).flatMap { reader.string($0, "spec.data.target") }
        guard let train, let test, let target else { return nil }
        return (DataSpec(train: train, test: test, target: target), locations)
    }

    private static func decodeFeatures(_ node: Node, target: String?, reader: YAMLReader) -> [FeatureSpec]? {
        guard let items = reader.list(node, "spec.features") else { return nil }
        var features: [FeatureSpec] = []
        var seen: Set<String> = []
        for (index, item) in items.enumerated() {
            let path = "spec.features[\(index)]"
            guard let mapping = reader.mapping(item, path, allowed: ["name", "type", "missing"]),
                let nameNode = reader.required(mapping, "name", "the column's name"),
                let name = reader.string(nameNode, "\(path).name")
            else { continue }
            if !seen.insert(name).inserted { reader.report(nameNode, "feature '\(name)' is listed twice") }
            if name == target { reader.report(nameNode, "feature '\(name)' is the target column; it cannot also be an input") }
            let type: FeatureType? = mapping["type"].flatMap { reader.choice($0, "\(path).type", "feature type") }
            let missing: MissingPolicy? = mapping["missing"].flatMap { reader.choice($0, "\(path).missing", "missing-value policy") }
            if type == .categorical, let missing, [.mean, .median].contains(missing), let node = mapping["missing"] {
                reader.report(
                    node,
                    "missing-value policy '\(missing.rawValue)' needs a numeric feature; '\(name)' is categorical "
                        + "(expected most-frequent or error)")
            }
            features.append(FeatureSpec(name: name, type: type, missing: missing))
        }
        return features
    }

    private static func decodeTrainer(_ node: Node, task: Task?, reader: YAMLReader) -> TrainerSpec? {
        let keys = ["algorithm", "command", "code", "environment", "timeout", "params", "search", "seed"]
        guard let mapping = reader.mapping(node, "spec.trainer", allowed: keys) else { return nil }
        if mapping["algorithm"] != nil, let commandNode = mapping["command"] {
            reader.report(commandNode, "'spec.trainer' takes an algorithm or a command, not both")
            return nil
        }
        let commandKeys = ["code", "environment", "timeout"]
        if mapping["command"] != nil || mapping["algorithm"] == nil && commandKeys.contains(where: { mapping[$0] != nil }) {
            return decodeCommandTrainer(mapping, reader: reader)
        }
        for key in commandKeys {
            if let extra = mapping.keyNode(key) {
                reader.report(extra, "'spec.trainer.\(key)' goes with a trainer command, not an algorithm")
            }
        }
        let algorithmNode = reader.required(
            mapping, "algorithm", "one of: \(Algorithm.allCases.map(\.rawValue).joined(separator: ", ")) (or a command)")
        let algorithm: Algorithm? = algorithmNode.flatMap { reader.choice($0, "spec.trainer.algorithm", "algorithm") }
        if let algorithm, let task, !algorithm.tasks.contains(task), let algorithmNode {
            reader.report(
                algorithmNode,
                "algorithm '\(algorithm.rawValue)' cannot learn a \(task.rawValue) task (expected one of: "
                    + "\(Algorithm.allCases.filter { $0.tasks.contains(task) }.map(\.rawValue).joined(separator: ", ")))")
        }
        var params: [String: JSONValue] = [:]
        if let paramsNode = mapping["params"],
            let paramMapping = reader.mapping(paramsNode, "spec.trainer.params", allowed: algorithm?.parameterNames)
        {
            for (key, _, value) in paramMapping.entries {
                if let parsed = parameter(value, "spec.trainer.params.\(key)", reader: reader) { params[key] = parsed }
            }
        }
        let search = mapping["search"].flatMap { decodeSearch($0, algorithm: algorithm, task: task, reader: reader) }
        let seed = mapping["seed"].map { reader.int($0, "spec.trainer.seed", range: 0...Int(Int32.max)) } ?? 42
        guard let algorithm, let seed else { return nil }
        return TrainerSpec(algorithm: algorithm, params: params, search: search, seed: seed)
    }

    /// `trainer.command` with `code`, `environment`, `timeout`, `params` (numbers, booleans or strings) and `seed`.
    private static func decodeCommandTrainer(_ mapping: YAMLReader.Mapping, reader: YAMLReader) -> TrainerSpec? {
        var locations: [String: SourceLocation] = [:]
        var command: [String]?
        if let node = reader.required(mapping, "command", "the program and its arguments, as a list"),
            let items = reader.list(node, "spec.trainer.command")
        {
            let words = items.enumerated().compactMap { reader.string($1, "spec.trainer.command[\($0)]") }
            if items.isEmpty { reader.report(node, "'spec.trainer.command' needs at least the program to run") }
            if words.count == items.count, !words.isEmpty { command = words }
        }
        var code: [String] = []
        if let node = mapping["code"], let items = reader.list(node, "spec.trainer.code") {
            for (index, item) in items.enumerated() {
                guard let text = reader.string(item, "spec.trainer.code[\(index)]") else { continue }
                let notRoot = "not a file or folder of the command"
                guard let path = repositoryPath(text, item, what: "code path", notRoot: notRoot, reader: reader) else { continue }
                code.append(path)
                locations["code:\(path)"] = reader.location(item)
            }
        }
        var environment: String?
        if let node = mapping["environment"], let text = reader.string(node, "spec.trainer.environment") {
            environment = repositoryPath(text, node, what: "environment file", notRoot: "not a lock file", reader: reader)
            locations["environment"] = reader.location(node)
        }
        var timeout = TrainerCommand.defaultTimeout
        if let node = mapping["timeout"] {
            if let text = reader.string(node, "spec.trainer.timeout"), let seconds = DurationText.seconds(text) {
                timeout = seconds
            } else {
                reader.report(
                    node, "expected a duration for 'spec.trainer.timeout' such as 90s, 30m or 2h, found \(YAMLReader.describe(node))")
            }
        }
        var params: [String: JSONValue] = [:]
        if let paramsNode = mapping["params"], let paramMapping = reader.mapping(paramsNode, "spec.trainer.params", allowed: nil) {
            for (key, _, value) in paramMapping.entries {
                switch JSONValue(value) {
                case .number, .bool, .string: params[key] = JSONValue(value)
                default:
                    reader.report(
                        value,
                        "expected a number, true/false or a string for 'spec.trainer.params.\(key)', found \(YAMLReader.describe(value))")
                }
            }
        }
        if let node = mapping.keyNode("search") {
            reader.report(
                node,
                "'spec.trainer.search' is not run for a trainer command yet: search inside the training code, or give the "
                    + "chosen values in params")
        }
        if let command, let node = mapping["command"] {
            for name in command.flatMap(TrainerCommand.placeholders(in:)) where params[name] == nil {
                let known = params.keys.sorted()
                reader.report(
                    node,
                    "'{\(name)}' in spec.trainer.command is not a param (params: \(known.isEmpty ? "none" : known.joined(separator: ", ")))"
                        + Spelling.didYouMean(name, among: known))
            }
        }
        let seed = mapping["seed"].map { reader.int($0, "spec.trainer.seed", range: 0...Int(Int32.max)) } ?? 42
        guard let command, let seed else { return nil }
        return TrainerSpec(
            algorithm: nil,
            command: TrainerCommand(command: command, code: code, environment: environment, timeout: timeout, locations: locations),
            params: params, seed: seed)
    }

    /// `server`: the command that serves one version, its environment and its ready path.
    private static func decodeServer(_ node: Node, reader: YAMLReader) -> ServerSpec? {
        guard let mapping = reader.mapping(node, "spec.server", allowed: ["command", "environment", "ready"]) else { return nil }
        func checked(_ text: String, _ node: Node, _ path: String) {
            for name in TrainerCommand.placeholders(in: text) where !ServerSpec.placeholders.contains(name) {
                reader.report(
                    node,
                    "'{\(name)}' in \(path) is not known (expected one of: "
                        + "\(ServerSpec.placeholders.map { "{\($0)}" }.joined(separator: ", ")))")
            }
        }
        var command: [String]?
        if let node = reader.required(mapping, "command", "the program that serves a version, as a list"),
            let items = reader.list(node, "spec.server.command")
        {
            let words = items.enumerated().compactMap { index, item in
                reader.string(item, "spec.server.command[\(index)]").map { word in
                    checked(word, item, "spec.server.command")
                    return word
                }
            }
            if items.isEmpty { reader.report(node, "'spec.server.command' needs at least the program to run") }
            if words.count == items.count, !words.isEmpty { command = words }
        }
        var environment: [String: String] = [:]
        if let node = mapping["environment"], let variables = reader.mapping(node, "spec.server.environment", allowed: nil) {
            for (key, _, value) in variables.entries {
                guard let text = reader.string(value, "spec.server.environment.\(key)") else { continue }
                checked(text, value, "spec.server.environment.\(key)")
                environment[key] = text
            }
        }
        var ready = "/v2/health/ready"
        if let node = mapping["ready"], let text = reader.string(node, "spec.server.ready") {
            if text.hasPrefix("/"), !text.contains(where: { $0.isWhitespace }) {
                ready = text
            } else {
                reader.report(node, "'spec.server.ready' must be an HTTP path such as /v2/health/ready, found '\(text.prefix(80))'")
            }
        }
        guard let command else { return nil }
        return ServerSpec(command: command, environment: environment, ready: ready)
    }

    /// A repository-relative path, normalised (data, code and lock files alike); nil, reported, for a URL, an absolute
    /// path, one that climbs above the root, or the root itself.
    private static func repositoryPath(_ text: String, _ node: Node, what: String, notRoot: String, reader: YAMLReader) -> String? {
        if text.contains("://") {
            reader.report(node, "\(what) '\(text)' must be a path in the repository")
            return nil
        }
        if text.hasPrefix("/") {
            reader.report(node, "\(what) '\(text)' must be relative to the repository root, not absolute")
            return nil
        }
        // Normalized before it is checked: `./data/x.csv` is `data/x.csv`; a `..` that would leave the root is refused.
        var parts: [Substring] = []
        for part in text.split(separator: "/", omittingEmptySubsequences: true) where part != "." {
            if part != ".." {
                parts.append(part)
            } else if parts.popLast() == nil {
                reader.report(node, "\(what) '\(text)' must stay inside the repository: it must not climb above the root with '..'")
                return nil
            }
        }
        guard !parts.isEmpty else {
            reader.report(node, "\(what) '\(text)' names the repository root, \(notRoot)")
            return nil
        }
        return parts.joined(separator: "/")
    }

    /// A parameter value: a number or a boolean.
    private static func parameter(_ node: Node, _ path: String, reader: YAMLReader) -> JSONValue? {
        let value = JSONValue(node)
        switch value {
        case .number, .bool: return value
        default:
            reader.report(node, "expected a number or true/false for '\(path)', found \(YAMLReader.describe(node))")
            return nil
        }
    }

    private static func decodeSearch(_ node: Node, algorithm: Algorithm?, task: Task?, reader: YAMLReader) -> SearchSpec? {
        guard let mapping = reader.mapping(node, "spec.trainer.search", allowed: ["folds", "metric", "grid"]) else { return nil }
        let folds = mapping["folds"].map { reader.int($0, "spec.trainer.search.folds", range: 2...100) } ?? 5
        let metricNode = reader.required(mapping, "metric", "the metric that picks the best parameters")
        let metric: Metric? = metricNode.flatMap { reader.choice($0, "spec.trainer.search.metric", "metric") }
        if let metric, let metricNode, let task, !metric.isOffline || !Metric.applicable(to: task).contains(metric) {
            let choices = Metric.applicable(to: task).filter(\.isOffline).map(\.rawValue)
            reader.report(
                metricNode,
                "search metric '\(metric.rawValue)' does not apply to a \(task.rawValue) model (expected one of: "
                    + "\(choices.joined(separator: ", ")))")
        }
        var grid: [String: [JSONValue]] = [:]
        if let gridNode = reader.required(mapping, "grid", "parameter names with lists of values"),
            let gridMapping = reader.mapping(gridNode, "spec.trainer.search.grid", allowed: algorithm?.parameterNames)
        {
            for (key, _, value) in gridMapping.entries {
                let path = "spec.trainer.search.grid.\(key)"
                guard let items = reader.list(value, path) else { continue }
                if items.isEmpty { reader.report(value, "'\(path)' needs at least one value") }
                let values = items.enumerated().compactMap { parameter($1, "\(path)[\($0)]", reader: reader) }
                if values.count == items.count { grid[key] = values }
            }
        }
        guard let folds, let metric else { return nil }
        return SearchSpec(folds: folds, metric: metric, grid: grid)
    }
}
