import Foundation

/// What a model predicts.
public enum LearningTask: String, Sendable, Codable, CaseIterable {
    case binaryClassification = "binary-classification"
    case multiclassClassification = "multiclass-classification"
    case regression

    public var isClassification: Bool { self != .regression }
}

/// What replaces a missing value of a feature.
public enum Imputation: String, Sendable, Codable, CaseIterable {
    case mean, median, zero
    case mostFrequent = "most-frequent"
    /// A missing value is an error, in training and at prediction time.
    case error
}

/// A feature the caller asks for; type and imputation default from the data.
public struct FeatureRequest: Sendable, Hashable {
    public var name: String
    public var type: ColumnType?
    public var imputation: Imputation?

    public init(name: String, type: ColumnType? = nil, imputation: Imputation? = nil) {
        self.name = name
        self.type = type
        self.imputation = imputation
    }
}

/// The fitted transform from raw columns to model inputs. Fitted on the training set only and stored in the model
/// file, so that serving applies exactly the same transform.
public struct FeaturePipeline: Sendable, Codable, Equatable {
    /// One fitted feature.
    public struct Feature: Sendable, Codable, Equatable {
        public enum Kind: String, Sendable, Codable { case numeric, categorical }
        public var name: String
        public var kind: Kind
        public var imputation: Imputation
        /// Numeric: the value that replaces a missing one, then the standardization (x - mean) / scale.
        public var fill: Double?
        public var mean: Double?
        public var scale: Double?
        /// Categorical: the known levels, sorted; any other value is unknown at prediction time.
        public var levels: [String]?
        /// Categorical: the level that replaces a missing one.
        public var fillLevel: Int?
    }

    public var features: [Feature]

    public var numericFeatures: [Feature] { features.filter { $0.kind == .numeric } }
    public var categoricalFeatures: [Feature] { features.filter { $0.kind == .categorical } }

    /// The features' names and kinds, in order (read in place: no copy of each feature).
    public var namesAndKinds: (names: [String], kinds: [Feature.Kind]) {
        features.withUnsafeBufferPointer { features in
            (features.indices.map { features[$0].name }, features.indices.map { features[$0].kind })
        }
    }

    /// Fits the pipeline on `data`: every requested feature, or every column but `target` when `requests` is nil.
    public static func fit(_ data: Dataset, target: String, requests: [FeatureRequest]?) throws -> FeaturePipeline {
        let wanted = requests ?? data.names.filter { $0 != target }.map { FeatureRequest(name: $0) }
        var results = [Result<Feature, LearningError>?](repeating: nil, count: wanted.count)
        results.withUnsafeMutableBufferPointer { buffer in
            let out = SharedPointer<Result<Feature, LearningError>?>(base: buffer.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: wanted.count) { index in
                do {
                    out[index] = .success(try fitFeature(wanted[index], data))
                } catch let error as LearningError {
                    out[index] = .failure(error)
                } catch {
                    out[index] = .failure(LearningError(.invalidValue, "\(error)"))
                }
            }
        }
        let features = try results.map { try $0!.get() }
        return FeaturePipeline(features: features)
    }

    /// Fits one feature on its column.
    static func fitFeature(_ request: FeatureRequest, _ data: Dataset) throws -> Feature {
        guard let column = data.column(request.name) else {
            throw LearningError(
                .missingColumn,
                "\(data.source): no column '\(request.name)' (columns: "
                    + "\(data.names.joined(separator: ", ")))")
        }
        switch column {
        case .numeric(let values) where request.type != .categorical:
            let imputation = request.imputation ?? .mean
            if imputation == .mostFrequent {
                throw LearningError(
                    .invalidValue,
                    "feature '\(request.name)' is numeric: missing '\(imputation.rawValue)' needs a "
                        + "categorical feature")
            }
            // Sums are taken in place (no copies of the column): skipping, then filling, the missing values.
            let present = values.count { !$0.isNaN }
            if present == 0 { throw LearningError(.unusableData, "\(data.source): numeric column '\(request.name)' has no values") }
            if imputation == .error, present < values.count, let row = values.firstIndex(where: \.isNaN) {
                throw missingValue(request.name, row: row, data)
            }
            let fill: Double
            switch imputation {
            case .median: fill = median(values.filter { !$0.isNaN })
            case .zero: fill = 0
            default: fill = kahanSum(values, skippingNaN: true) / Double(present)
            }
            // Standardize the imputed column.
            let mean = kahanSum(values, replacingNaN: fill) / Double(values.count)
            let variance = kahanSum(values, replacingNaN: fill, minus: mean) / Double(values.count)
            let scale = variance > 0 ? variance.squareRoot() : 1
            return Feature(name: request.name, kind: .numeric, imputation: imputation, fill: fill, mean: mean, scale: scale)
        default:
            let (codes, levels) = categorical(column)
            let imputation = request.imputation ?? .mostFrequent
            guard imputation == .mostFrequent || imputation == .error else {
                throw LearningError(
                    .invalidValue,
                    "feature '\(request.name)' is categorical: missing '\(imputation.rawValue)' needs a "
                        + "numeric feature")
            }
            if imputation == .error, let row = codes.firstIndex(of: -1) {
                throw missingValue(request.name, row: row, data)
            }
            var counts = [Int](repeating: 0, count: levels.count)
            for code in codes where code >= 0 { counts[Int(code)] += 1 }
            guard let most = counts.indices.max(by: { counts[$0] < counts[$1] || (counts[$0] == counts[$1] && $0 > $1) }) else {
                throw LearningError(.unusableData, "\(data.source): categorical column '\(request.name)' has no values")
            }
            return Feature(name: request.name, kind: .categorical, imputation: imputation, levels: levels, fillLevel: most)
        }
    }

    /// Turns raw columns into model inputs: numeric features imputed and standardized, categorical features as
    /// level codes (an unknown level is -1, the unknown bucket).
    public func transform(_ data: Dataset) throws -> FeatureMatrix {
        // Features are read in place (no copy of each one per request).
        try features.withUnsafeBufferPointer { features in
            let rows = data.rowCount
            let numeric = features.indices.filter { features[$0].kind == .numeric }
            let categorical = features.indices.filter { features[$0].kind == .categorical }
            let sources = try numeric.map { position in try Self.numericSource(features.baseAddress! + position, position: position, data) }
            var numericValues = [Double](repeating: 0, count: rows * numeric.count)
            let width = numeric.count
            numericValues.withUnsafeMutableBufferPointer { buffer in
                let out = SharedPointer(base: buffer.baseAddress!)
                // Chunk by chunk, all features: a chunk's rows stay in cache while each of their features is written.
                RowChunks(rows: rows).forEach { range in
                    for (slot, source) in sources.enumerated() {
                        let fill = source.fill
                        let mean = source.mean
                        let scale = source.scale
                        guard let values = source.values else {
                            for row in range { out[row &* width &+ slot] = (fill - mean) / scale }
                            continue
                        }
                        values.withUnsafeBufferPointer { input in
                            for row in range {
                                let value = input[row]
                                out[row &* width &+ slot] = ((value.isNaN ? fill : value) - mean) / scale
                            }
                        }
                    }
                }
            }
            var codes = [Int32](repeating: -1, count: rows * categorical.count)
            for (slot, position) in categorical.enumerated() {
                try Self.transformCategorical(
                    features.baseAddress! + position, position: position, slot: slot, width: categorical.count,
                    data, into: &codes)
            }
            return FeatureMatrix(
                rowCount: rows, numeric: numericValues, numericCount: numeric.count, codes: codes,
                levelCounts: categorical.map { features[$0].levels!.count })
        }
    }

    /// The column of a fitted feature, looked for at the feature's position first.
    private static func requiredColumn(_ name: String, position: Int, _ data: Dataset) throws -> Column {
        guard let column = data.column(name, expectedAt: position) else {
            throw LearningError(.missingColumn, "\(data.source): no column '\(name)' that the model needs")
        }
        return column
    }

    /// A missing value at `row` (0-based, after the header) of `name`, whose missing-value policy is `error`.
    private static func missingValue(_ name: String, row: Int, _ data: Dataset) -> LearningError {
        LearningError(
            .invalidValue,
            "\(data.source):\(row + 2):\(data.names.firstIndex(of: name)! + 1): missing value in '\(name)', "
                + "whose missing-value policy is 'error'")
    }

    /// A numeric feature's column, checked, with its fitted fill, mean and scale: the values are nil for a column read as
    /// text that is all missing (every row takes the fill value).
    private struct NumericSource: Sendable {
        var values: [Double]?
        var fill: Double, mean: Double, scale: Double
    }

    /// The column of one numeric feature, checked against its missing-value policy and for text.
    private static func numericSource(_ feature: UnsafePointer<Feature>, position: Int, _ data: Dataset) throws -> NumericSource {
        let name = feature.pointee.name
        let column = try requiredColumn(name, position: position, data)
        let fill = feature.pointee.fill!
        let mean = feature.pointee.mean!
        let scale = feature.pointee.scale!
        switch column {
        case .numeric(let values):
            if feature.pointee.imputation == .error, let row = values.firstIndex(where: \.isNaN) {
                throw missingValue(name, row: row, data)
            }
            return NumericSource(values: values, fill: fill, mean: mean, scale: scale)
        case .categorical(let columnCodes, let levels):
            // Text in a numeric feature: only all-missing columns are accepted (they read as categorical).
            if let row = columnCodes.firstIndex(where: { $0 >= 0 }) {
                throw LearningError(
                    .invalidValue,
                    "\(data.source):\(row + 2):\(data.names.firstIndex(of: name)! + 1): "
                        + "'\(levels[Int(columnCodes[row])])' in numeric feature '\(name)' is not a number")
            }
            return NumericSource(values: nil, fill: fill, mean: mean, scale: scale)
        }
    }

    /// Maps one categorical feature's column onto its fitted levels' codes in `out` (row-major, `width` per row, at
    /// `slot`); an unseen level is -1, a missing one the fill level.
    private static func transformCategorical(
        _ feature: UnsafePointer<Feature>, position: Int, slot: Int, width: Int, _ data: Dataset,
        into out: inout [Int32]
    ) throws {
        let name = feature.pointee.name
        let column = try requiredColumn(name, position: position, data)
        let known = feature.pointee.levels!
        let (columnCodes, columnLevels) = Self.categorical(column)
        // Map this data's levels onto the fitted ones (sorted, so found by bisection); unseen levels become -1.
        let remap = columnLevels.map { level -> Int32 in
            var low = 0
            var high = known.count
            while low < high {
                let middle = (low + high) / 2
                if known[middle] < level { low = middle + 1 } else { high = middle }
            }
            return low < known.count && known[low] == level ? Int32(low) : -1
        }
        let fill = Int32(feature.pointee.fillLevel!)
        if feature.pointee.imputation == .error, let row = columnCodes.firstIndex(of: -1) {
            throw missingValue(name, row: row, data)
        }
        for row in 0..<data.rowCount {
            let code = columnCodes[row]
            out[row * width + slot] = code < 0 ? fill : remap[Int(code)]
        }
    }

    /// A column read as categories (numbers become their text).
    static func categorical(_ column: Column) -> (codes: [Int32], levels: [String]) {
        switch column {
        case .categorical(let codes, let levels): return (codes, levels)
        case .numeric(let values):
            let levels = Array(Set(values.filter { !$0.isNaN }.map(formatNumber))).sorted()
            var index: [String: Int32] = [:]
            for (code, level) in levels.enumerated() { index[level] = Int32(code) }
            return (values.map { $0.isNaN ? -1 : index[formatNumber($0)]! }, levels)
        }
    }
}

/// Model inputs for `rowCount` rows: standardized numeric features (row-major, `numericCount` per row) and
/// categorical level codes (row-major, one per categorical feature; -1 is the unknown bucket).
public struct FeatureMatrix: Sendable {
    public var rowCount: Int
    public var numeric: [Double]
    public var numericCount: Int
    public var codes: [Int32]
    /// Levels per categorical feature.
    public var levelCounts: [Int]

    public var categoricalCount: Int { levelCounts.count }
    /// Columns after one-hot encoding of the categorical features.
    public var oneHotWidth: Int { numericCount + levelCounts.reduce(0, +) }

    /// Offsets of each categorical feature's one-hot block, after the numeric columns.
    public var oneHotOffsets: [Int] {
        var offsets: [Int] = []
        var next = numericCount
        for count in levelCounts {
            offsets.append(next)
            next += count
        }
        return offsets
    }

    /// The rows at `indices`, in that order.
    public func rows(_ indices: [Int]) -> FeatureMatrix {
        var numericOut = [Double]()
        numericOut.reserveCapacity(indices.count * numericCount)
        var codesOut = [Int32]()
        codesOut.reserveCapacity(indices.count * categoricalCount)
        for row in indices {
            numericOut.append(contentsOf: numeric[row * numericCount..<(row + 1) * numericCount])
            codesOut.append(contentsOf: codes[row * categoricalCount..<(row + 1) * categoricalCount])
        }
        return FeatureMatrix(
            rowCount: indices.count, numeric: numericOut, numericCount: numericCount, codes: codesOut, levelCounts: levelCounts)
    }
}

/// Sum with compensation, so that means do not depend on accumulated rounding error.
/// NaN values are skipped, or replaced by `fill`; with `minus`, the squares of (value - minus) are summed.
func kahanSum(_ values: [Double], skippingNaN: Bool = false, replacingNaN fill: Double? = nil, minus center: Double? = nil) -> Double {
    var sum = 0.0
    var compensation = 0.0
    for raw in values {
        var value = raw
        if value.isNaN {
            if skippingNaN { continue }
            if let fill { value = fill }
        }
        if let center { value = (value - center) * (value - center) }
        let y = value - compensation
        let t = sum + y
        compensation = (t - sum) - y
        sum = t
    }
    return sum
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}
