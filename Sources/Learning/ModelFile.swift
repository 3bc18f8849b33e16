public import Foundation

/// A trainer parameter value.
public enum ParameterValue: Sendable, Codable, Equatable, Hashable, CustomStringConvertible {
    case number(Double)
    case bool(Bool)

    public var number: Double? { if case .number(let value) = self { return value } else { return nil } }
    public var bool: Bool? { if case .bool(let value) = self { return value } else { return nil } }
    public var description: String {
        switch self {
        case .number(let value): return formatNumber(value)
        case .bool(let value): return String(value)
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Bool.self) { self = .bool(value) } else { self = .number(try container.decode(Double.self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .number(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        }
    }
}

/// The trained estimator inside a model file.
public enum Estimator: Sendable, Codable, Equatable {
    case logisticRegression(LinearModel)
    case linearRegression(LinearModel)
    case gradientBoosting(BoostedTrees)
    /// A model a team's own command trained: its files are beside the model file, its predictions come from its
    /// own server process.
    case external(ExternalEstimator)

    public var algorithm: String {
        switch self {
        case .logisticRegression: return "logistic-regression"
        case .linearRegression: return "linear-regression"
        case .gradientBoosting: return "gradient-boosting"
        case .external: return "command"
        }
    }

    func scores(_ matrix: FeatureMatrix) -> [Double] {
        switch self {
        case .logisticRegression(let model), .linearRegression(let model): return model.scores(matrix)
        case .gradientBoosting(let model): return model.scores(matrix)
        case .external: return [Double](repeating: .nan, count: matrix.rowCount)  // answered by its server, never here
        }
    }
}

/// How the server of a model trained by its own command is started: what the manifest's `server` section said.
public struct ExternalEstimator: Sendable, Codable, Equatable {
    /// The folder beside `model.json` that holds the training command's output.
    public static let folder = "model"
    /// The program and arguments, with `{model}`, `{port}`, `{grpcPort}` and `{name}` placeholders.
    public var command: [String]
    /// Environment variables for it, with the same placeholders.
    public var environment: [String: String]
    /// The HTTP path that answers 200 once it is ready.
    public var ready: String

    public init(command: [String], environment: [String: String], ready: String) {
        self.command = command
        self.environment = environment
        self.ready = ready
    }
}

/// What a model file says about how it was built. Holds nothing that varies between two builds of the same inputs.
public struct BuildRecord: Sendable, Codable, Equatable {
    /// The version digest (64 hex digits).
    public var digest: String
    public var model: String
    /// Repository path → sha256 of each data file read.
    public var data: [String: String]
    /// The parameters the model was trained with (after search).
    public var parameters: [String: ParameterValue]
    /// The version of Stagecraft that built it.
    public var tool: String

    public init(digest: String, model: String, data: [String: String], parameters: [String: ParameterValue], tool: String) {
        self.digest = digest
        self.model = model
        self.data = data
        self.parameters = parameters
        self.tool = tool
    }
}

/// Predictions for a batch of rows.
public struct Predictions: Sendable, Equatable {
    /// Classifiers: the predicted label of each row.
    public var labels: [String]?
    /// Classifiers: row-major probabilities, one per class in `ModelFile.classes` order. Regression: nil.
    public var probabilities: [Double]?
    /// Regression: the predicted values.
    public var values: [Double]?

    public init(labels: [String]? = nil, probabilities: [Double]? = nil, values: [Double]? = nil) {
        self.labels = labels
        self.probabilities = probabilities
        self.values = values
    }
}

/// A model file (`model.json`): format version, task, classes, the fitted feature pipeline, the estimator and the
/// build record. Written as JSON with sorted keys, so the same model gives the same bytes.
public struct ModelFile: Sendable, Codable, Equatable {
    /// The version of the ML core's output: the model file layout *and* what training produces from given inputs.
    /// It is part of every version digest, so bump it whenever a change would make the same inputs build different
    /// bytes (a new default, a different solver or binning); otherwise old artifacts are reused under new code.
    /// 3: gradient boosting bins and rounds gradients as scikit-learn 1.9 does (the layout is that of 2).
    /// 4: boosting sums a node of more than 16,384 rows in up to 8 equal pieces added up in order (the layout is that of 2).
    public static let currentFormatVersion = 4
    /// The versions this build reads: those with the current layout (format 2 and 3 files were built by earlier
    /// boosting, and load as they were built).
    public static let readableFormatVersions = 2...4

    public var format = "stagecraft-model"
    public var formatVersion = ModelFile.currentFormatVersion
    public var task: LearningTask
    public var target: String
    /// Class labels, sorted (classification only); probabilities follow this order.
    public var classes: [String]?
    public var pipeline: FeaturePipeline
    public var estimator: Estimator
    public var build: BuildRecord
    /// What the training features and the holdout predictions looked like (format 2 on), for drift monitoring.
    public var reference: ReferenceProfile?

    public init(task: LearningTask, target: String, classes: [String]?, pipeline: FeaturePipeline, estimator: Estimator, build: BuildRecord)
    {
        self.task = task
        self.target = target
        self.classes = classes
        self.pipeline = pipeline
        self.estimator = estimator
        self.build = build
    }

    /// Predicts every row of `data` (which needs the feature columns; the target column is ignored).
    /// The type of each feature column, by name: what a CSV of raw rows is read with.
    public var columnTypes: [String: ColumnType] {
        Dictionary(uniqueKeysWithValues: pipeline.features.map { ($0.name, $0.kind == .numeric ? ColumnType.numeric : .categorical) })
    }

    /// Whether a number JSONSerialization gave stands for a JSON `true` or `false`. (`is Bool` cannot tell: on Linux it
    /// is also true of the numbers 0 and 1, which made `monitor` and `queue` refuse them.)
    static func isBoolean(_ number: NSNumber) -> Bool { String(cString: number.objCType) == "c" }

    /// The model's raw feature columns from records of feature values as JSON gives them: a number, or null (or
    /// absent) for missing, for a numeric feature; a string or null for a categorical one.
    /// - Parameter lines: each record's line in `source`, for messages (default 1, 2, …).
    /// - Throws: ``LearningError`` naming `source:line` and the feature when a value has another type.
    public func dataset(records: [[String: Any]], lines: [Int]? = nil, source: String) throws -> Dataset {
        let features = pipeline.features
        var numeric = [[Double]](repeating: [], count: features.count)
        var text = [[String?]](repeating: [], count: features.count)
        for (index, record) in records.enumerated() {
            let line = lines?[index] ?? index + 1
            for (position, feature) in features.enumerated() {
                let value = record[feature.name]
                if feature.kind == .numeric {
                    switch value {
                    case let number as NSNumber where !Self.isBoolean(number): numeric[position].append(number.doubleValue)
                    case nil, is NSNull: numeric[position].append(.nan)
                    default: throw LearningError(.malformedData, "\(source):\(line): '\(feature.name)' must be a number or null")
                    }
                } else {
                    switch value {
                    case let string as String: text[position].append(string)
                    case nil, is NSNull: text[position].append(nil)
                    default: throw LearningError(.malformedData, "\(source):\(line): '\(feature.name)' must be a string or null")
                    }
                }
            }
        }
        let columns: [Column] = features.enumerated().map { position, feature in
            if feature.kind == .numeric { return .numeric(numeric[position]) }
            let levels = Array(Set(text[position].compactMap { $0 })).sorted()
            let index = Dictionary(uniqueKeysWithValues: levels.enumerated().map { ($1, Int32($0)) })
            return .categorical(codes: text[position].map { $0.flatMap { index[$0] } ?? -1 }, levels: levels)
        }
        return Dataset(names: features.map(\.name), columns: columns, source: source)
    }

    public func predict(_ data: Dataset) throws -> Predictions {
        if case .external = estimator {
            throw LearningError(
                .invalidModelFile, "model '\(build.model)' was trained by its own command: its predictions come from its server")
        }
        return predict(try pipeline.transform(data))
    }

    /// The model's own server, when a team's command trained it.
    public var external: ExternalEstimator? {
        if case .external(let server) = estimator { return server }
        return nil
    }

    /// Predicts already-transformed rows.
    public func predict(_ matrix: FeatureMatrix) -> Predictions {
        let scores = estimator.scores(matrix)
        guard let classes else { return Predictions(values: scores) }
        let k = classes.count
        var probabilities = [Double](repeating: 0, count: matrix.rowCount * k)
        var labels: [String] = []
        labels.reserveCapacity(matrix.rowCount)
        for row in 0..<matrix.rowCount {
            if k == 2 {
                let p = 1 / (1 + exp(-scores[row]))
                probabilities[row * 2] = 1 - p
                probabilities[row * 2 + 1] = p
            } else {
                var maximum = scores[row * k]
                for j in 1..<k { maximum = max(maximum, scores[row * k + j]) }
                var total = 0.0
                for j in 0..<k {
                    let e = exp(scores[row * k + j] - maximum)
                    probabilities[row * k + j] = e
                    total += e
                }
                for j in 0..<k { probabilities[row * k + j] /= total }
            }
            var best = 0
            for j in 1..<k where probabilities[row * k + j] > probabilities[row * k + best] { best = j }
            labels.append(classes[best])
        }
        return Predictions(labels: labels, probabilities: probabilities)
    }

    /// The file's bytes: JSON, keys sorted, numbers in their shortest round-trip form.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Reads a model file, refusing other formats and unknown format versions.
    public static func decode(_ data: Data) throws -> ModelFile {
        struct Header: Decodable {
            var format: String?
            var formatVersion: Int?
        }
        let header = try? JSONDecoder().decode(Header.self, from: data)
        guard header?.format == "stagecraft-model" else {
            throw LearningError(.invalidModelFile, "not a Stagecraft model file (expected \"format\": \"stagecraft-model\")")
        }
        guard let version = header?.formatVersion, readableFormatVersions.contains(version) else {
            throw LearningError(
                .invalidModelFile,
                "model file format version \(header?.formatVersion.map(String.init) ?? "?") is not "
                    + "supported (this build reads \(readableFormatVersions.lowerBound) to \(readableFormatVersions.upperBound))")
        }
        do {
            return try JSONDecoder().decode(ModelFile.self, from: data)
        } catch {
            throw LearningError(.invalidModelFile, "the model file is damaged: \(error)")
        }
    }
}
