import Foundation

/// The algorithms the core trains.
public enum AlgorithmName: String, Sendable, Codable, CaseIterable {
    case logisticRegression = "logistic-regression"
    case linearRegression = "linear-regression"
    case gradientBoosting = "gradient-boosting"
}

/// A grid search: every combination of `grid`, scored by k-fold cross-validation on the training set.
public struct SearchRequest: Sendable, Equatable {
    public var folds: Int
    public var metric: String
    public var grid: [String: [ParameterValue]]
    public init(folds: Int, metric: String, grid: [String: [ParameterValue]]) {
        self.folds = folds
        self.metric = metric
        self.grid = grid
    }
}

/// Everything the core needs to train one model.
public struct TrainingRequest: Sendable {
    public var task: LearningTask
    public var target: String
    /// Nil: every other column, types inferred.
    public var features: [FeatureRequest]?
    public var algorithm: AlgorithmName
    public var parameters: [String: ParameterValue]
    public var search: SearchRequest?
    public var seed: UInt64

    public init(
        task: LearningTask, target: String, features: [FeatureRequest]? = nil, algorithm: AlgorithmName,
        parameters: [String: ParameterValue] = [:], search: SearchRequest? = nil, seed: UInt64 = 42
    ) {
        self.task = task
        self.target = target
        self.features = features
        self.algorithm = algorithm
        self.parameters = parameters
        self.search = search
        self.seed = seed
    }
}

/// What training reports while it runs, for a progress display.
public enum TrainingEvent: Sendable, Equatable {
    case searching(candidate: Int, candidates: Int, fold: Int, folds: Int)
    case boosting(round: Int, rounds: Int)
    case fitting
    case evaluating
    /// A line a team's own trainer printed.
    case output(String)
    /// The version's own server is being started, to compute its gates from its answers.
    case startingServer
}

/// One grid point and its cross-validated score.
public struct SearchCandidate: Sendable, Codable, Equatable {
    public var parameters: [String: ParameterValue]
    /// Mean of the fold scores.
    public var score: Double
    public var foldScores: [Double]
}

/// The result of training: the fitted pipeline and estimator, the chosen parameters, the holdout metrics.
public struct TrainingOutcome: Sendable {
    public var pipeline: FeaturePipeline
    public var estimator: Estimator
    public var classes: [String]?
    public var parameters: [String: ParameterValue]
    public var holdoutMetrics: [String: Double]
    public var search: [SearchCandidate]
    /// Seconds spent in each stage: read is the caller's; search, fit, evaluate are here.
    public var timings: [String: Double]
    /// The training features' and the holdout predictions' distributions, for drift monitoring.
    public var reference: ReferenceProfile

    /// The model file for this outcome.
    public func modelFile(task: LearningTask, target: String, build: BuildRecord) -> ModelFile {
        var file = ModelFile(task: task, target: target, classes: classes, pipeline: pipeline, estimator: estimator, build: build)
        file.reference = reference
        return file
    }
}

extension ModelFile {
    /// The metrics this model scores on `data` (its rows with a target value), computed as a build computes its
    /// holdout metrics: how a serving version is re-scored on a candidate's holdout set.
    public func score(_ data: Dataset) throws -> [String: Double] {
        let targets = try Targets(data, task: task, target: target, classes: classes)
        return Training.evaluate(self, try pipeline.transform(data.keeping(targets.rows)), targets: targets)
    }
}

extension ModelFile {
    /// The model file of a model trained elsewhere (by a team's command): the feature pipeline fitted on `train` (its
    /// features, their types and levels: what requests are read with), the classes, and the server that predicts.
    public static func external(
        task: LearningTask, target: String, features: [FeatureRequest]?, train: Dataset, server: ExternalEstimator, build: BuildRecord
    ) throws -> ModelFile {
        let targets = try Targets(train, task: task, target: target, classes: nil)
        let pipeline = try FeaturePipeline.fit(train.keeping(targets.rows), target: target, requests: features)
        return ModelFile(
            task: task, target: target, classes: targets.classes, pipeline: pipeline, estimator: .external(server), build: build)
    }

    /// The rows of `data` that have a target value, with the model's feature columns only: what is sent to a server
    /// to score a holdout set.
    public func scorable(_ data: Dataset) throws -> Dataset {
        let targets = try Targets(data, task: task, target: target, classes: classes)
        return try featureColumns(data.keeping(targets.rows))
    }

    /// The model's feature columns of `data`, in the model's order (other columns left out).
    /// - Throws: ``LearningError`` `.missingColumn` naming a feature `data` lacks.
    public func featureColumns(_ data: Dataset) throws -> Dataset {
        var columns: [Column] = []
        for feature in pipeline.features {
            guard let column = data.column(feature.name) else {
                throw LearningError(.missingColumn, "\(data.source) has no column '\(feature.name)'")
            }
            columns.append(column)
        }
        return Dataset(names: pipeline.features.map(\.name), columns: columns, source: data.source)
    }

    /// The metrics of `predictions` (of ``scorable(_:)``'s rows) against `data`'s targets, computed as a build
    /// computes its holdout metrics; and the reference profile of `train` and these predictions, for drift.
    public func evaluate(_ predictions: Predictions, on data: Dataset, train: Dataset) throws -> (
        metrics: [String: Double], reference: ReferenceProfile
    ) {
        let metrics = try score(predictions, on: data)
        let trainTargets = try Targets(train, task: task, target: target, classes: nil)
        let reference = ReferenceProfile(
            training: train.keeping(trainTargets.rows), features: pipeline.features.map(\.name), predictions: predictions)
        return (metrics, reference)
    }

    /// The metrics of `predictions` (of ``scorable(_:)``'s rows) against `data`'s targets.
    public func score(_ predictions: Predictions, on data: Dataset) throws -> [String: Double] {
        let targets = try Targets(data, task: task, target: target, classes: classes)
        let count = predictions.labels?.count ?? predictions.values?.count ?? 0
        guard count == targets.rows.count else {
            throw LearningError(.unusableData, "the server answered \(count) predictions for \(targets.rows.count) rows")
        }
        return Training.evaluate(self, predictions, targets: targets)
    }
}

/// Training with optional grid search, then evaluation on the holdout set.
public enum Training {
    public typealias Progress = @Sendable (TrainingEvent) -> Void

    public static func run(_ request: TrainingRequest, train: Dataset, test: Dataset, progress: Progress? = nil) throws -> TrainingOutcome {
        let trainTargets = try Targets(train, request: request, classes: nil)
        let testTargets = try Targets(test, request: request, classes: trainTargets.classes)
        var timings: [String: Double] = [:]
        var parameters = request.parameters
        var candidates: [SearchCandidate] = []

        if let search = request.search, !search.grid.isEmpty {
            let start = Date()
            candidates = try gridSearch(request, search: search, data: train, targets: trainTargets, progress: progress)
            let higher = Metrics.higherIsBetter(search.metric)
            // Best score; ties go to the earliest candidate in grid order.
            var best = 0
            for index in candidates.indices.dropFirst() {
                let better = higher ? candidates[index].score > candidates[best].score : candidates[index].score < candidates[best].score
                if better { best = index }
            }
            parameters.merge(candidates[best].parameters) { $1 }
            timings["search"] = Date().timeIntervalSince(start)
        }

        progress?(.fitting)
        var start = Date()
        let (pipeline, estimator) = try fit(
            request, parameters: parameters, data: train.keeping(trainTargets.rows), targets: trainTargets, progress: progress)
        timings["fit"] = Date().timeIntervalSince(start)

        progress?(.evaluating)
        start = Date()
        let testMatrix = try pipeline.transform(test.keeping(testTargets.rows))
        let model = ModelFile(
            task: request.task, target: request.target, classes: trainTargets.classes, pipeline: pipeline,
            estimator: estimator, build: BuildRecord(digest: "", model: "", data: [:], parameters: [:], tool: ""))
        let predictions = model.predict(testMatrix)
        let metrics = evaluate(model, predictions, targets: testTargets)
        timings["evaluate"] = Date().timeIntervalSince(start)
        let reference = ReferenceProfile(
            training: train.keeping(trainTargets.rows), features: pipeline.features.map(\.name),
            predictions: predictions)
        return TrainingOutcome(
            pipeline: pipeline, estimator: estimator, classes: trainTargets.classes, parameters: parameters,
            holdoutMetrics: metrics, search: candidates, timings: timings, reference: reference)
    }

    /// Metrics of `model` on transformed rows with known targets.
    static func evaluate(_ model: ModelFile, _ matrix: FeatureMatrix, targets: Targets) -> [String: Double] {
        evaluate(model, model.predict(matrix), targets: targets)
    }

    /// Metrics of `model`'s predictions for rows with known targets.
    static func evaluate(_ model: ModelFile, _ predictions: Predictions, targets: Targets) -> [String: Double] {
        if let probabilities = predictions.probabilities, let classes = model.classes {
            return Metrics.classification(labels: targets.labels, probabilities: probabilities, classCount: classes.count)
        }
        return Metrics.regression(targets: targets.values, predictions: predictions.values ?? [])
    }

    static func fit(
        _ request: TrainingRequest, parameters: [String: ParameterValue], data: Dataset, targets: Targets,
        progress: Progress?
    ) throws -> (FeaturePipeline, Estimator) {
        let pipeline = try FeaturePipeline.fit(data, target: request.target, requests: request.features)
        let matrix = try pipeline.transform(data)
        func number(_ name: String) -> Double? { parameters[name]?.number }
        switch request.algorithm {
        case .logisticRegression:
            var trainer = LogisticRegressionTrainer()
            if let l2 = number("l2") { trainer.l2 = l2 }
            if let iterations = number("maxIterations") { trainer.maxIterations = Int(iterations) }
            if let tolerance = number("tolerance") { trainer.tolerance = tolerance }
            let (model, _) = trainer.fit(matrix, labels: targets.labels, classCount: targets.classes!.count)
            return (pipeline, .logisticRegression(model))
        case .linearRegression:
            var trainer = LinearRegressionTrainer()
            if let l2 = number("l2") { trainer.l2 = l2 }
            return (pipeline, .linearRegression(try trainer.fit(matrix, targets: targets.values)))
        case .gradientBoosting:
            var trainer = GradientBoostingTrainer()
            trainer.seed = request.seed
            if let value = number("learningRate") { trainer.learningRate = value }
            if let value = number("trees") { trainer.trees = Int(value) }
            if let value = number("maxLeaves") { trainer.maxLeaves = Int(value) }
            if let value = number("maxDepth") { trainer.maxDepth = Int(value) }
            if let value = number("minSamplesLeaf") { trainer.minSamplesLeaf = Int(value) }
            if let value = number("l2") { trainer.l2 = value }
            if let value = number("maxBins") { trainer.maxBins = min(255, max(2, Int(value))) }
            if let value = parameters["earlyStopping"]?.bool { trainer.earlyStopping = value }
            if let value = number("validationFraction") { trainer.validationFraction = value }
            if let value = number("patience") { trainer.patience = Int(value) }
            var boostingProgress: GradientBoostingTrainer.Progress?
            if let progress {
                boostingProgress = { round, rounds in progress(.boosting(round: round, rounds: rounds)) }
            }
            let (model, _) = trainer.fit(
                matrix, task: request.task, labels: targets.labels, targets: targets.values,
                classCount: targets.classes?.count ?? 1, progress: boostingProgress)
            return (pipeline, .gradientBoosting(model))
        }
    }

    static func gridSearch(
        _ request: TrainingRequest, search: SearchRequest, data: Dataset, targets: Targets,
        progress: Progress?
    ) throws -> [SearchCandidate] {
        // Combinations in a fixed order: parameter names sorted, values as written, the last name varying fastest.
        let names = search.grid.keys.sorted()
        var combinations: [[String: ParameterValue]] = [[:]]
        for name in names {
            combinations = combinations.flatMap { partial in search.grid[name]!.map { partial.merging([name: $0]) { $1 } } }
        }
        // Folds: the usable rows shuffled with the seed, then dealt out in turn.
        var shuffled = Array(targets.rows.indices)
        var random = SplitMix64(seed: request.seed)
        random.shuffle(&shuffled)
        let folds = min(search.folds, shuffled.count)
        var candidates: [SearchCandidate] = []
        for (index, combination) in combinations.enumerated() {
            var scores: [Double] = []
            for fold in 0..<folds {
                progress?(.searching(candidate: index + 1, candidates: combinations.count, fold: fold + 1, folds: folds))
                let held = shuffled.enumerated().filter { $0.offset % folds == fold }.map(\.element).sorted()
                let kept = shuffled.enumerated().filter { $0.offset % folds != fold }.map(\.element).sorted()
                let foldTargets = targets.subset(kept)
                let heldTargets = targets.subset(held)
                let parameters = request.parameters.merging(combination) { $1 }
                let (pipeline, estimator) = try fit(
                    request, parameters: parameters, data: data.rows(foldTargets.rows), targets: foldTargets, progress: nil)
                let model = ModelFile(
                    task: request.task, target: request.target, classes: targets.classes, pipeline: pipeline,
                    estimator: estimator, build: BuildRecord(digest: "", model: "", data: [:], parameters: [:], tool: ""))
                let metrics = evaluate(model, try pipeline.transform(data.rows(heldTargets.rows)), targets: heldTargets)
                guard let score = metrics[search.metric] else {
                    throw LearningError(.unusableData, "search metric '\(search.metric)' cannot be computed for this task")
                }
                scores.append(score)
            }
            candidates.append(
                SearchCandidate(parameters: combination, score: scores.reduce(0, +) / Double(scores.count), foldScores: scores))
        }
        return candidates
    }
}

/// The target column of a data set: rows with a target, and class indices or values.
struct Targets {
    /// Rows of the data set that have a target value.
    var rows: [Int]
    /// Classification: class index of each kept row.
    var labels: [Int32]
    /// Regression: value of each kept row.
    var values: [Double]
    /// Classification: the sorted class labels.
    var classes: [String]?

    init(rows: [Int], labels: [Int32], values: [Double], classes: [String]?) {
        self.rows = rows
        self.labels = labels
        self.values = values
        self.classes = classes
    }

    /// Reads the target of `data`; `classes` (from training) fixes the class order of a test set.
    init(_ data: Dataset, request: TrainingRequest, classes known: [String]?) throws {
        try self.init(data, task: request.task, target: request.target, classes: known)
    }

    /// Reads the column `target` of `data` for a model of `task`.
    init(_ data: Dataset, task: LearningTask, target: String, classes known: [String]?) throws {
        let request = (task: task, target: target)
        guard let column = data.column(request.target) else {
            throw LearningError(
                .missingColumn,
                "\(data.source): no target column '\(request.target)' (columns: "
                    + "\(data.names.joined(separator: ", ")))")
        }
        if request.task == .regression {
            guard case .numeric(let values) = column else {
                throw LearningError(.invalidValue, "\(data.source): target '\(request.target)' of a regression must be numeric")
            }
            let kept = values.indices.filter { !values[$0].isNaN }
            self.init(rows: kept, labels: [], values: kept.map { values[$0] }, classes: nil)
            return
        }
        let (codes, levels) = FeaturePipeline.categorical(column)
        let classes = known ?? levels
        var index: [String: Int32] = [:]
        for (code, label) in classes.enumerated() { index[label] = Int32(code) }
        var kept: [Int] = []
        var labels: [Int32] = []
        for row in codes.indices where codes[row] >= 0 {
            guard let label = index[levels[Int(codes[row])]] else {
                throw LearningError(
                    .unusableData,
                    "\(data.source):\(row + 2): class '\(levels[Int(codes[row])])' of "
                        + "'\(request.target)' does not appear in the training data")
            }
            kept.append(row)
            labels.append(label)
        }
        if known == nil {
            if request.task == .binaryClassification && classes.count != 2 {
                throw LearningError(
                    .unusableData,
                    "\(data.source): a binary classification needs exactly 2 classes in "
                        + "'\(request.target)', found \(classes.count) (\(classes.prefix(5).joined(separator: ", ")))")
            }
            if classes.count < 2 {
                throw LearningError(.unusableData, "\(data.source): '\(request.target)' has fewer than 2 classes")
            }
        }
        self.init(rows: kept, labels: labels, values: [], classes: classes)
    }

    /// The targets of kept rows at positions `positions` (indices into `rows`).
    func subset(_ positions: [Int]) -> Targets {
        Targets(
            rows: positions.map { rows[$0] }, labels: labels.isEmpty ? [] : positions.map { labels[$0] },
            values: values.isEmpty ? [] : positions.map { values[$0] }, classes: classes)
    }
}
