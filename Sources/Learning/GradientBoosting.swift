import CPrefetch
import Foundation

/// How raw features become bins (0...255): numeric features by thresholds (bin = how many thresholds are below
/// the value), categorical features by a fitted order of their levels (bin 0 is the unknown bucket).
public struct Binning: Sendable, Codable, Equatable {
    /// Per numeric feature, ascending thresholds.
    public var thresholds: [[Double]]
    /// Per categorical feature, the bin of each level code.
    public var levelBins: [[UInt8]]

    public var featureCount: Int { thresholds.count + levelBins.count }

    /// Bins every row: row-major, `featureCount` bytes per row.
    func bin(_ matrix: FeatureMatrix) -> [UInt8] {
        let features = featureCount
        let rows = matrix.rowCount
        var out = [UInt8](repeating: 0, count: rows * features)
        let p = matrix.numericCount
        let c = matrix.categoricalCount
        // Each feature's thresholds padded with infinity to 256, for a search of eight steps without branches.
        var padded = [Double](repeating: .infinity, count: p * 256)
        for (j, cuts) in thresholds.enumerated() {
            for (index, cut) in cuts.prefix(255).enumerated() { padded[j * 256 + index] = cut }
        }
        out.withUnsafeMutableBufferPointer { buffer in
            padded.withUnsafeBufferPointer { padded in
                matrix.numeric.withUnsafeBufferPointer { x in
                    let shared = SharedPointer(base: buffer.baseAddress!)
                    let padded = SharedConstPointer(base: padded.baseAddress!)
                    let x = SharedConstPointer(base: x.baseAddress!)
                    let levelBins = self.levelBins
                    RowChunks(rows: rows).forEach { range in
                        for row in range {
                            let values = x.base + row &* p
                            let binsOfRow = shared.base + row &* features
                            for j in 0..<p {
                                binsOfRow[j] = UInt8(Binning.countBelow(values[j], in: padded.base + j &* 256))
                            }
                            for j in 0..<c {
                                let code = Int(matrix.codes[row * c + j])
                                binsOfRow[p + j] = code >= 0 && code < levelBins[j].count ? levelBins[j][code] : 0
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// How many of 256 ascending thresholds are below `value` (none for NaN): a binary search whose steps are
    /// conditional moves, not branches.
    @inline(__always)
    static func countBelow(_ value: Double, in thresholds: UnsafePointer<Double>) -> Int {
        var base = 0
        var step = 128
        while step > 0 {
            base &+= thresholds[base &+ step &- 1] < value ? step : 0
            step >>= 1
        }
        return base
    }

    /// Thresholds for sorted values: midpoints between distinct values when there are few enough, otherwise the
    /// midpoints of evenly spaced percentiles (as scikit-learn's binning does).
    static func thresholds(_ values: [Double], maxBins: Int) -> [Double] {
        var distinct: [Double] = []
        for value in values where distinct.last != value { distinct.append(value) }
        if distinct.count <= maxBins {
            return zip(distinct, distinct.dropFirst()).map { ($0 + $1) / 2 }
        }
        // Percentiles by the "averaged inverted CDF" (NumPy's method of that name, as scikit-learn 1.9 uses), with the
        // same floating-point steps, so that the cuts are the same numbers.
        var cuts: [Double] = []
        let n = values.count
        let step = 100.0 / Double(maxBins)
        for k in 1..<maxBins {
            let virtual = Double(n) * (Double(k) * step / 100) - 1
            let index = virtual.rounded(.down)
            let low = min(max(Int(index), 0), n - 1)
            let high = min(max(Int(index) + 1, 0), n - 1)
            let cut = virtual == index ? (values[low] + values[high]) / 2 : values[high]
            if cuts.last.map({ cut > $0 }) ?? true { cuts.append(cut) }
        }
        return cuts
    }

    /// Fits thresholds on up to 200,000 of `rows` (chosen with `seed`) and orders categorical levels by `levelScore`.
    static func fit(_ matrix: FeatureMatrix, rows: [Int], maxBins: Int, seed: UInt64, levelScore: (Int, Int) -> Double) -> Binning {
        let p = matrix.numericCount
        var sample = rows
        if rows.count > 200_000 {
            var random = SplitMix64(seed: seed)
            random.shuffle(&sample)
            sample = Array(sample[0..<200_000]).sorted()
        }
        var thresholds = [[Double]](repeating: [], count: p)
        let sharedSample = sample
        thresholds.withUnsafeMutableBufferPointer { buffer in
            let out = SharedPointer(base: buffer.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: p) { j in
                out[j] = Binning.thresholds(sharedSample.map { matrix.numeric[$0 * p + j] }.radixSorted(), maxBins: maxBins)
            }
        }
        var levelBins: [[UInt8]] = []

        for (j, levels) in matrix.levelCounts.enumerated() {
            let order = (0..<levels).sorted { a, b in
                let sa = levelScore(j, a)
                let sb = levelScore(j, b)
                return sa != sb ? sa < sb : a < b
            }
            var bins = [UInt8](repeating: 0, count: levels)
            for (rank, level) in order.enumerated() { bins[level] = UInt8(min(rank + 1, 255)) }
            levelBins.append(bins)
        }
        return Binning(thresholds: thresholds, levelBins: levelBins)
    }
}

/// One regression tree over bins. Node 0 is the root; a leaf has `feature == -1`.
public struct Tree: Sendable, Codable, Equatable {
    public var feature: [Int32]
    /// Rows whose bin is at most this go left.
    public var threshold: [UInt8]
    public var left: [Int32]
    public var right: [Int32]
    /// Leaf values, already multiplied by the learning rate.
    public var value: [Double]

    /// Adds the tree's value for each row of `rows` (binned, `features` bytes per row at `bins`) to
    /// `scores[row * stride + offset]`.
    func addValues(
        rows: Range<Int>, bins: UnsafePointer<UInt8>, features: Int, to scores: UnsafeMutablePointer<Double>, stride: Int, offset: Int
    ) {
        feature.withUnsafeBufferPointer { feature in
            threshold.withUnsafeBufferPointer { threshold in
                left.withUnsafeBufferPointer { left in
                    right.withUnsafeBufferPointer { right in
                        value.withUnsafeBufferPointer { value in
                            for row in rows {
                                let binsOfRow = bins + row &* features
                                var node = 0
                                while feature[node] >= 0 {
                                    node = Int(binsOfRow[Int(feature[node])] <= threshold[node] ? left[node] : right[node])
                                }
                                scores[row &* stride &+ offset] += value[node]
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Gradient-boosted trees: raw score = baseline + the sum of the trees (one per output per round).
public struct BoostedTrees: Sendable, Codable, Equatable {
    public var binning: Binning
    /// One per output (1 for binary and regression, one per class for multiclass).
    public var baseline: [Double]
    /// Trees of round r for output k are at `r * outputs + k`.
    public var trees: [Tree]

    public var outputs: Int { baseline.count }

    /// Raw scores, `outputs` per row: on all cores, chunk by chunk and tree by tree (a tree's nodes stay in cache over
    /// the chunk's rows); each row adds its trees in order, as one tree at a time would.
    public func scores(_ matrix: FeatureMatrix) -> [Double] {
        let rows = matrix.rowCount
        let features = binning.featureCount
        let outputs = self.outputs
        var scores = [Double](repeating: 0, count: rows * outputs)
        guard rows > 0 else { return scores }
        for row in 0..<rows { for k in 0..<outputs { scores[row * outputs + k] = baseline[k] } }
        let bins = binning.bin(matrix)
        bins.withUnsafeBufferPointer { b in
            scores.withUnsafeMutableBufferPointer { s in
                let bins = SharedConstPointer(base: b.baseAddress!)
                let out = SharedPointer(base: s.baseAddress!)
                RowChunks(rows: rows).forEach { range in
                    for (index, tree) in trees.enumerated() {
                        tree.addValues(
                            rows: range, bins: bins.base, features: features, to: out.base, stride: outputs, offset: index % outputs)
                    }
                }
            }
        }
        return scores
    }
}

/// Trains histogram-based gradient-boosted trees for binary, multiclass and regression tasks.
public struct GradientBoostingTrainer: Sendable {
    public var learningRate = 0.1
    public var trees = 100
    public var maxLeaves = 31
    /// No limit when nil.
    public var maxDepth: Int?
    public var minSamplesLeaf = 20
    public var l2 = 0.0
    public var maxBins = 255
    /// Nil: on when there are more than 10,000 rows (as scikit-learn's "auto").
    public var earlyStopping: Bool?
    public var validationFraction = 0.1
    /// Rounds without improvement of the validation loss before stopping.
    public var patience = 10
    public var seed: UInt64 = 42

    public init() {}

    /// Called after each round with (round, rounds planned).
    public typealias Progress = @Sendable (Int, Int) -> Void

    /// Fits on `matrix`. Classification: `labels` are class indices and `classCount` > 1; regression: `targets`.
    public func fit(
        _ matrix: FeatureMatrix, task: LearningTask, labels: [Int32], targets: [Double], classCount: Int,
        progress: Progress? = nil
    ) -> (BoostedTrees, rounds: Int) {
        let outputs = task == .multiclassClassification ? classCount : 1
        let rows = matrix.rowCount
        // Early stopping holds out a validation split (stratified for classification).
        let stopEarly = earlyStopping ?? (rows > 10_000)
        var trainRows = Array(0..<rows)
        var validationRows: [Int] = []
        if stopEarly {
            (trainRows, validationRows) = splitForValidation(rows: rows, labels: task.isClassification ? labels : nil)
        }
        // Category order: by mean target (binary, regression) or frequency (multiclass), on the training rows.
        let c = matrix.categoricalCount
        var levelSum = matrix.levelCounts.map { [Double](repeating: 0, count: $0) }
        var levelCount = matrix.levelCounts.map { [Double](repeating: 0, count: $0) }
        for row in trainRows {
            let y: Double = task == .regression ? targets[row] : (task == .binaryClassification ? Double(labels[row]) : 1)
            for j in 0..<c {
                let code = Int(matrix.codes[row * c + j])
                if code >= 0 {
                    levelSum[j][code] += y
                    levelCount[j][code] += 1
                }
            }
        }
        let binning = Binning.fit(matrix, rows: trainRows, maxBins: maxBins, seed: seed) { j, level in
            task == .multiclassClassification ? -levelCount[j][level] : levelSum[j][level] / max(levelCount[j][level], 1)
        }
        let allBins = binning.bin(matrix)
        let features = binning.featureCount
        let validationBins = gather(allBins, rows: validationRows, width: features)
        let n = trainRows.count

        // Baseline: log-odds, log class priors, or the mean.
        var baseline = [Double](repeating: 0, count: outputs)
        switch task {
        case .binaryClassification:
            let positive = Double(trainRows.reduce(0) { $0 + Int(labels[$1]) }) / Double(n)
            let clipped = min(max(positive, 1e-12), 1 - 1e-12)
            baseline[0] = log(clipped / (1 - clipped))
        case .multiclassClassification:
            var counts = [Double](repeating: 0, count: outputs)
            for row in trainRows { counts[Int(labels[row])] += 1 }
            baseline = counts.map { log(max($0 / Double(n), 1e-12)) }
        case .regression:
            baseline[0] = trainRows.reduce(0) { $0 + targets[$1] } / Double(n)
        }
        let trainLabels = trainRows.map { labels.isEmpty ? 0 : labels[$0] }
        let trainTargets = trainRows.map { targets.isEmpty ? 0 : targets[$0] }
        let validationLabels = validationRows.map { labels.isEmpty ? 0 : labels[$0] }
        let validationTargets = validationRows.map { targets.isEmpty ? 0 : targets[$0] }

        var raw = [Double](repeating: 0, count: n * outputs)
        for row in 0..<n { for k in 0..<outputs { raw[row * outputs + k] = baseline[k] } }
        var validationRaw = [Double](repeating: 0, count: validationRows.count * outputs)
        for row in 0..<validationRows.count { for k in 0..<outputs { validationRaw[row * outputs + k] = baseline[k] } }

        var grown: [Tree] = []
        var validationScores: [Double] = []
        var builder = TreeBuilder(
            bins: gather(allBins, rows: trainRows, width: features), features: features, rows: n, maxBins: 256,
            maxLeaves: maxLeaves, maxDepth: maxDepth, minSamplesLeaf: minSamplesLeaf, l2: l2)
        var rounds = 0
        for round in 0..<trees {
            for k in 0..<outputs {
                computeGradients(
                    task: task, raw: raw, outputs: outputs, k: k, labels: trainLabels, targets: trainTargets, into: builder.records)
                let tree = builder.grow(learningRate: learningRate)
                builder.addLeafValues(of: tree, to: &raw, stride: outputs, offset: k)
                validationBins.withUnsafeBufferPointer { b in
                    validationRaw.withUnsafeMutableBufferPointer { buffer in
                        let out = SharedPointer(base: buffer.baseAddress!)
                        let bins = SharedConstPointer(base: b.baseAddress!)
                        let chunks = RowChunks(rows: validationRows.count)
                        chunks.forEach { range in
                            tree.addValues(rows: range, bins: bins.base, features: features, to: out.base, stride: outputs, offset: k)
                        }
                    }
                }
                grown.append(tree)
            }
            rounds = round + 1
            progress?(rounds, trees)
            if stopEarly {
                validationScores.append(
                    -loss(task: task, raw: validationRaw, outputs: outputs, labels: validationLabels, targets: validationTargets))
                if validationScores.count > patience {
                    let reference = validationScores[validationScores.count - patience - 1]
                    if !validationScores.suffix(patience).contains(where: { $0 > reference + 1e-7 }) { break }
                }
            }
        }
        return (BoostedTrees(binning: binning, baseline: baseline, trees: grown), rounds)
    }

    private func gather(_ bins: [UInt8], rows: [Int], width: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: rows.count * width)
        for (index, row) in rows.enumerated() {
            for f in 0..<width { out[index * width + f] = bins[row * width + f] }
        }
        return out
    }

    /// A deterministic split (stratified by label for classification): `validationFraction` of the rows held out.
    private func splitForValidation(rows: Int, labels: [Int32]?) -> ([Int], [Int]) {
        var random = SplitMix64(seed: seed &+ 17)
        var groups: [[Int]]
        if let labels {
            let classes = Int(labels.max() ?? 0) + 1
            groups = Array(repeating: [], count: classes)
            for row in 0..<rows { groups[Int(labels[row])].append(row) }
        } else {
            groups = [Array(0..<rows)]
        }
        // The held rows are marked, then both lists read off in row order (no sorting).
        var isHeld = [Bool](repeating: false, count: rows)
        for var group in groups {
            random.shuffle(&group)
            let held = Int((Double(group.count) * validationFraction).rounded())
            for row in group[0..<held] { isHeld[row] = true }
        }
        var train: [Int] = []
        var validation: [Int] = []
        train.reserveCapacity(rows)
        for row in 0..<rows { if isHeld[row] { validation.append(row) } else { train.append(row) } }
        return (train, validation)
    }

    /// Each row's gradient and hessian for output `k`, kept in 32 bits as scikit-learn keeps them (near-tied splits
    /// then go the same way as in `HistGradientBoosting*`; sums stay 64-bit).
    private func computeGradients(
        task: LearningTask, raw: [Double], outputs: Int, k: Int, labels: [Int32], targets: [Double],
        into records: RowRecords
    ) {
        raw.withUnsafeBufferPointer { rawBuffer in
            let r = SharedConstPointer(base: rawBuffer.baseAddress!)
            RowChunks(rows: labels.count).forEach { range in
                let r = r.base
                for row in range {
                    switch task {
                    case .binaryClassification:
                        let p = 1 / (1 + exp(-r[row]))
                        records.setGradient(of: row, Float(p - Double(labels[row])), Float(max(p * (1 - p), 1e-16)))
                    case .multiclassClassification:
                        var maximum = r[row * outputs]
                        for j in 1..<outputs { maximum = max(maximum, r[row * outputs + j]) }
                        var total = 0.0
                        for j in 0..<outputs { total += exp(r[row * outputs + j] - maximum) }
                        let p = exp(r[row * outputs + k] - maximum) / total
                        records.setGradient(of: row, Float(p - (Int(labels[row]) == k ? 1 : 0)), Float(max(p * (1 - p), 1e-16)))
                    case .regression:
                        records.setGradient(of: row, Float(r[row] - targets[row]), 1)
                    }
                }
            }
        }
    }

    /// The mean loss of raw scores: summed in fixed chunks on all cores, so the same on any machine.
    private func loss(task: LearningTask, raw: [Double], outputs: Int, labels: [Int32], targets: [Double]) -> Double {
        let n = max(labels.count, targets.count)
        guard n > 0 else { return 0 }
        let total = raw.withUnsafeBufferPointer { r in
            let raw = SharedConstPointer(base: r.baseAddress!)
            return RowChunks(rows: n).map { range in
                var total = 0.0
                let raw = raw.base
                switch task {
                case .binaryClassification:
                    for row in range {
                        let z = raw[row]
                        total += (z > 0 ? z + log1p(exp(-z)) : log1p(exp(z))) - (labels[row] == 1 ? z : 0)
                    }
                case .multiclassClassification:
                    for row in range {
                        var maximum = raw[row * outputs]
                        for j in 1..<outputs { maximum = max(maximum, raw[row * outputs + j]) }
                        var sum = 0.0
                        for j in 0..<outputs { sum += exp(raw[row * outputs + j] - maximum) }
                        total += log(sum) + maximum - raw[row * outputs + Int(labels[row])]
                    }
                case .regression:
                    for row in range { total += 0.5 * (raw[row] - targets[row]) * (raw[row] - targets[row]) }
                }
                return total
            }.reduce(0.0) { $0 + $1 }
        }
        return total / Double(n)
    }
}

/// Grows one tree leaf by leaf on binned rows, with histograms built for the smaller child and subtracted for the larger.
struct TreeBuilder {
    /// Each row's record: its bins, then its gradient and hessian (a histogram reads all of a row at once).
    let records: RowRecords
    /// Room for the histograms of a large node's pieces but the first.
    let pieceHistograms: DoubleScratch
    /// The same bins, feature by feature: `rows` bytes per feature (a partition reads one feature of many rows).
    let columns: [UInt8]
    let features: Int
    let rows: Int
    let maxBins: Int
    let maxLeaves: Int
    let maxDepth: Int?
    let minSamplesLeaf: Int
    let l2: Double
    /// Row indices, partitioned so that each node's rows are contiguous.
    var order: [Int32]
    /// The leaves of the tree last grown: their rows are order[start..<end].
    var leafRanges: [(start: Int, end: Int, node: Int)] = []
    var scratch: [Int32]
    /// The largest hessian of any row in the tree being grown.
    var maxHessian = 0.0

    /// `bins`: row by row, `features` bytes per row.
    init(bins: [UInt8], features: Int, rows: Int, maxBins: Int, maxLeaves: Int, maxDepth: Int?, minSamplesLeaf: Int, l2: Double) {
        records = RowRecords(bins: bins, features: features, rows: rows)
        pieceHistograms = DoubleScratch(count: max(min(RowChunks(rows: rows).count, 8) - 1, 0) * features * maxBins * 2)
        var columns = [UInt8](repeating: 0, count: bins.count)
        columns.withUnsafeMutableBufferPointer { out in
            bins.withUnsafeBufferPointer { input in
                let out = SharedPointer(base: out.baseAddress!)
                let input = SharedConstPointer(base: input.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: features) { f in
                    for row in 0..<rows { out[f * rows + row] = input.base[row * features + f] }
                }
            }
        }
        self.columns = columns
        self.features = features
        self.rows = rows
        self.maxBins = maxBins
        self.maxLeaves = maxLeaves
        self.maxDepth = maxDepth
        self.minSamplesLeaf = minSamplesLeaf
        self.l2 = l2
        self.order = [Int32](repeating: 0, count: rows)
        self.scratch = [Int32](repeating: 0, count: rows)
    }

    /// A histogram: for feature f and bin b, at (f * maxBins + b) * 2: sum of gradients, sum of hessians. Row counts
    /// are not summed per bin: a split's side is counted only when its hessian does not already prove it large enough.
    typealias Histogram = [Double]

    struct Split {
        var gain: Double
        var feature: Int
        var threshold: Int
        var leftGradient: Double, leftHessian: Double
    }

    struct Leaf {
        var node: Int
        var start: Int, end: Int
        var depth: Int
        var gradient: Double, hessian: Double
        var histogram: Histogram
        var split: Split?
    }

    /// Builds the histogram of rows order[start..<end] (`inRowOrder`: they are start..<end themselves, as at the root).
    /// A row's record holds its bins and gradients, so each row is read once for all its features. A node of more than
    /// `RowChunks.size` rows is cut in up to 8 equal pieces, summed piece by piece on all cores, and the pieces'
    /// histograms are added up in order; a smaller one is shared out by features. Either way the result does not depend
    /// on the number of cores.
    func histogram(start: Int, end: Int, inRowOrder: Bool = false) -> Histogram {
        let width = features * maxBins * 2
        var histogram = [Double](repeating: 0, count: width)
        // Equal pieces (so that the cores finish together) of at least `RowChunks.size` rows and at most 8 of them
        // (each piece's histogram is zeroed and added in: more pieces cost more than they balance). How a node is cut
        // depends only on its number of rows.
        let count = end - start
        let pieceCount = min((count + RowChunks.size - 1) / RowChunks.size, 8)
        let groups = min(ProcessInfo.processInfo.activeProcessorCount, features)
        histogram.withUnsafeMutableBufferPointer { h in
            let out = SharedPointer(base: h.baseAddress!)
            if pieceCount > 1 {
                // The first piece sums into the result, the others into histograms of their own (kept from node to
                // node: a fresh few megabytes per large node is page faults and zeroing by the kernel).
                let partials = pieceHistograms.base
                let shared = SharedPointer(base: partials)
                DispatchQueue.concurrentPerform(iterations: pieceCount) { piece in
                    let range = (0..<count).piece(piece, of: pieceCount)
                    let target = piece == 0 ? out.base : shared.base + (piece - 1) * width
                    if piece > 0 { target.initialize(repeating: 0, count: width) }
                    accumulate(
                        rows: start + range.lowerBound..<start + range.upperBound, features: 0..<features,
                        inRowOrder: inRowOrder, into: target)
                }
                // Added up piece by piece, in order, each core taking a part of the bins.
                let parts = ProcessInfo.processInfo.activeProcessorCount
                DispatchQueue.concurrentPerform(iterations: parts) { part in
                    let slots = (0..<width).piece(part, of: parts)
                    for piece in 1..<pieceCount {
                        let partial = shared.base + (piece - 1) * width
                        for slot in slots { out.base[slot] += partial[slot] }
                    }
                }
            } else if count >= 4_096 && groups > 1 {
                DispatchQueue.concurrentPerform(iterations: groups) { group in
                    accumulate(
                        rows: start..<end, features: (0..<features).piece(group, of: groups), inRowOrder: inRowOrder,
                        into: out.base)
                }
            } else {
                accumulate(rows: start..<end, features: 0..<features, inRowOrder: inRowOrder, into: out.base)
            }
        }
        return histogram
    }

    /// Adds the gradient and hessian of rows order[rows] to `histogram`, for the given features, row by row in order.
    private func accumulate(rows: Range<Int>, features wanted: Range<Int>, inRowOrder: Bool, into histogram: UnsafeMutablePointer<Double>) {
        let maxBins = self.maxBins
        let records = self.records
        order.withUnsafeBufferPointer { o in
            let histogram = histogram + wanted.lowerBound * maxBins * 2
            let width = wanted.count
            let first = wanted.lowerBound
            let rowsOfNode = o.baseAddress!
            @inline(__always) func add(_ row: Int) {
                let (gradient, hessian) = records.gradient(of: row)
                let rowBins = records.bins(of: row) + first
                var f = 0
                while f < width {
                    let slot = (f &* maxBins &+ Int(rowBins[f])) &* 2
                    histogram[slot] += Double(gradient)
                    histogram[slot &+ 1] += Double(hessian)
                    f &+= 1
                }
            }
            if inRowOrder {
                for row in rows { add(row) }
                return
            }
            let ahead = Self.prefetchDistance
            let last = rows.upperBound
            for i in rows {
                // The rows of a node are scattered: ask for a row's record some rows before it is needed.
                if i &+ ahead < last { records.prefetch(Int(rowsOfNode[i &+ ahead])) }
                add(Int(rowsOfNode[i]))
            }
        }
    }

    /// How many rows ahead a histogram asks for a row's data.
    static let prefetchDistance = 16

    /// Whether a leaf may be split at all: under the depth limit, with room for two children of `minSamplesLeaf`.
    func splittable(_ leaf: Leaf) -> Bool {
        (maxDepth.map { leaf.depth < $0 } ?? true) && leaf.end - leaf.start >= 2 * minSamplesLeaf
    }

    /// The best split of a leaf, as scikit-learn chooses it: the first largest positive gain, in feature then bin order,
    /// among splits leaving at least `minSamplesLeaf` rows and a hessian of 1e-3 on each side. It is found without
    /// per-bin counts, then checked: each side's count is at least its hessian over the largest row hessian, or else
    /// counted. A split that passes is also the best of those that satisfy the counts; when it fails (rare: a side
    /// near `minSamplesLeaf`), the leaf's bins are counted and the exact scan decides.
    func bestSplit(_ leaf: Leaf) -> Split? {
        guard splittable(leaf) else { return nil }
        guard let candidate = scan(leaf, counts: nil) else { return nil }
        let count = leaf.end - leaf.start
        let margin = 1e-9 * abs(leaf.hessian)
        let leftHessian = candidate.leftHessian
        let rightHessian = leaf.hessian - candidate.leftHessian
        let least = Double(minSamplesLeaf) * maxHessian
        if leftHessian - margin >= least && rightHessian - margin >= least { return candidate }
        let left = countLeft(leaf, feature: candidate.feature, threshold: candidate.threshold)
        if left >= minSamplesLeaf && count - left >= minSamplesLeaf { return candidate }
        return scan(leaf, counts: binCounts(leaf))
    }

    /// The scan over every feature's bins; with `counts` (per feature and bin), only splits whose both sides have
    /// `minSamplesLeaf` rows.
    func scan(_ leaf: Leaf, counts: [Int]?) -> Split? {
        let count = leaf.end - leaf.start
        let parentScore = leaf.gradient * leaf.gradient / (leaf.hessian + l2)
        var best: Split?
        leaf.histogram.withUnsafeBufferPointer { h in
            for f in 0..<features {
                var gl = 0.0
                var hl = 0.0
                var cl = 0
                for b in 0..<(maxBins - 1) {
                    let slot = (f * maxBins + b) * 2
                    gl += h[slot]
                    hl += h[slot + 1]
                    if let counts {
                        cl += counts[f * maxBins + b]
                        if cl < minSamplesLeaf { continue }
                        if count - cl < minSamplesLeaf { break }
                    }
                    let gr = leaf.gradient - gl
                    let hr = leaf.hessian - hl
                    if hl < 1e-3 || hr < 1e-3 { continue }
                    let gain = gl * gl / (hl + l2) + gr * gr / (hr + l2) - parentScore
                    if gain > (best?.gain ?? 0) {
                        best = Split(gain: gain, feature: f, threshold: b, leftGradient: gl, leftHessian: hl)
                    }
                }
            }
        }
        return best
    }

    /// How many of the leaf's rows have a bin of `feature` at most `threshold`.
    func countLeft(_ leaf: Leaf, feature: Int, threshold: Int) -> Int {
        var left = 0
        columns.withUnsafeBufferPointer { b in
            order.withUnsafeBufferPointer { o in
                let column = b.baseAddress! + feature * rows
                for index in leaf.start..<leaf.end where Int(column[Int(o[index])]) <= threshold { left += 1 }
            }
        }
        return left
    }

    /// The leaf's rows per feature and bin.
    func binCounts(_ leaf: Leaf) -> [Int] {
        var counts = [Int](repeating: 0, count: features * maxBins)
        order.withUnsafeBufferPointer { o in
            for index in leaf.start..<leaf.end {
                let rowBins = records.bins(of: Int(o[index]))
                for f in 0..<features { counts[f * maxBins + Int(rowBins[f])] += 1 }
            }
        }
        return counts
    }

    /// Partitions order[range] stably: rows whose bin of `feature` is at most `threshold` first. Large ranges are cut
    /// in pieces partitioned in parallel, then put together piece by piece, so the order is the same on any machine.
    /// Returns where the right rows start.
    mutating func partition(_ range: Range<Int>, feature: Int, threshold: Int) -> Int {
        let pieces = range.count < 2 * RowChunks.size ? 1 : ProcessInfo.processInfo.activeProcessorCount
        var leftCounts = [Int](repeating: 0, count: pieces)
        let rows = self.rows
        columns.withUnsafeBufferPointer { b in
            order.withUnsafeMutableBufferPointer { o in
                scratch.withUnsafeMutableBufferPointer { spill in
                    leftCounts.withUnsafeMutableBufferPointer { counts in
                        let column = SharedConstPointer(base: b.baseAddress! + feature * rows)
                        let order = SharedPointer(base: o.baseAddress!)
                        let spill = SharedPointer(base: spill.baseAddress!)
                        let counts = SharedPointer(base: counts.baseAddress!)
                        // Each piece: its left rows in place, its right rows to the scratch space at the same offsets.
                        DispatchQueue.concurrentPerform(iterations: pieces) { piece in
                            let rowsOfPiece = range.piece(piece, of: pieces)
                            var left = rowsOfPiece.lowerBound
                            var right = rowsOfPiece.lowerBound
                            // Without a branch (which side a row goes is a coin toss to the predictor): the row is
                            // written to both places and only its side's cursor moves.
                            for index in rowsOfPiece {
                                let row = order[index]
                                let goesLeft = Int(column.base[Int(row)]) <= threshold ? 1 : 0
                                order[left] = row
                                spill[right] = row
                                left &+= goesLeft
                                right &+= 1 &- goesLeft
                            }
                            counts[piece] = left - rowsOfPiece.lowerBound
                        }
                        // Then the pieces' left rows together, followed by their right rows.
                        var left = range.lowerBound
                        for piece in 0..<pieces {
                            let low = range.piece(piece, of: pieces).lowerBound
                            if left != low { memmove(order.base + left, order.base + low, counts[piece] * MemoryLayout<Int32>.stride) }
                            left += counts[piece]
                        }
                        var right = left
                        for piece in 0..<pieces {
                            let rowsOfPiece = range.piece(piece, of: pieces)
                            let rights = rowsOfPiece.count - counts[piece]
                            (order.base + right).update(from: spill.base + rowsOfPiece.lowerBound, count: rights)
                            right += rights
                        }
                    }
                }
            }
        }
        return range.lowerBound + leftCounts.reduce(0, +)
    }

    /// Grows a tree on the rows' gradients and hessians (as last written to `records`); `leafRanges` then says which
    /// rows are in each of its leaves.
    mutating func grow(learningRate: Double) -> Tree {
        order.withUnsafeMutableBufferPointer { order in
            for index in order.indices { order[index] = Int32(index) }
        }
        var tree = Tree(feature: [-1], threshold: [0], left: [-1], right: [-1], value: [0])
        // The root's sums, in fixed chunks (the same on any machine), and the largest hessian.
        let records = self.records
        let sums = RowChunks(rows: rows).map { range in
            var gradient = 0.0
            var hessian = 0.0
            var largest = 0.0
            for row in range {
                let (g, h) = records.gradient(of: row)
                gradient += Double(g)
                hessian += Double(h)
                largest = max(largest, Double(h))
            }
            return (gradient, hessian, largest)
        }
        var totalG = 0.0
        var totalH = 0.0
        maxHessian = 0
        for (gradient, hessian, largest) in sums {
            totalG += gradient
            totalH += hessian
            maxHessian = max(maxHessian, largest)
        }
        var root = Leaf(
            node: 0, start: 0, end: rows, depth: 0, gradient: totalG, hessian: totalH,
            histogram: histogram(start: 0, end: rows, inRowOrder: true))
        root.split = bestSplit(root)
        var leaves = [root]
        var leafCount = 1
        while leafCount < maxLeaves {
            // The open leaf with the largest gain (ties: the earliest node).
            guard
                let pick = leaves.indices.filter({ leaves[$0].split != nil })
                    .max(by: {
                        leaves[$0].split!.gain < leaves[$1].split!.gain
                            || (leaves[$0].split!.gain == leaves[$1].split!.gain && leaves[$0].node > leaves[$1].node)
                    })
            else { break }
            let leaf = leaves.remove(at: pick)
            let split = leaf.split!
            let leftEnd = partition(leaf.start..<leaf.end, feature: split.feature, threshold: split.threshold)
            let leftNode = tree.feature.count
            let rightNode = leftNode + 1
            tree.feature[leaf.node] = Int32(split.feature)
            tree.threshold[leaf.node] = UInt8(split.threshold)
            tree.left[leaf.node] = Int32(leftNode)
            tree.right[leaf.node] = Int32(rightNode)
            for _ in 0..<2 {
                tree.feature.append(-1)
                tree.threshold.append(0)
                tree.left.append(-1)
                tree.right.append(-1)
                tree.value.append(0)
            }
            var left = Leaf(
                node: leftNode, start: leaf.start, end: leftEnd, depth: leaf.depth + 1,
                gradient: split.leftGradient, hessian: split.leftHessian, histogram: [])
            var right = Leaf(
                node: rightNode, start: leftEnd, end: leaf.end, depth: leaf.depth + 1,
                gradient: leaf.gradient - split.leftGradient, hessian: leaf.hessian - split.leftHessian, histogram: [])
            // Children that will not be split need no histograms: the tree is full after this split, or neither
            // is large (or shallow) enough to split (scikit-learn's grower skips them too).
            if leafCount + 1 < maxLeaves && (splittable(left) || splittable(right)) {
                // Histogram of the smaller child; the larger one's is the parent's minus it.
                let leftSmaller = left.end - left.start <= right.end - right.start
                let small = leftSmaller ? histogram(start: left.start, end: left.end) : histogram(start: right.start, end: right.end)
                var large = leaf.histogram
                large.withUnsafeMutableBufferPointer { l in
                    small.withUnsafeBufferPointer { sm in for index in 0..<l.count { l[index] -= sm[index] } }
                }
                if leftSmaller {
                    left.histogram = small
                    right.histogram = large
                } else {
                    right.histogram = small
                    left.histogram = large
                }
                left.split = bestSplit(left)
                right.split = bestSplit(right)
            }
            leaves.append(left)
            leaves.append(right)
            leafCount += 1
        }
        for leaf in leaves { tree.value[leaf.node] = -leaf.gradient / (leaf.hessian + l2) * learningRate }
        leafRanges = leaves.map { (start: $0.start, end: $0.end, node: $0.node) }.sorted { $0.start < $1.start }
        return tree
    }

    /// Adds the value of each training row's leaf in the tree just grown to `raw[row * stride + offset]`, on all cores.
    func addLeafValues(of tree: Tree, to raw: inout [Double], stride: Int, offset: Int) {
        let leafRanges = self.leafRanges
        order.withUnsafeBufferPointer { o in
            raw.withUnsafeMutableBufferPointer { r in
                let order = SharedConstPointer(base: o.baseAddress!)
                let out = SharedPointer(base: r.baseAddress! + offset)
                // Chunks of positions in `order`: each row is at one position, so no two chunks write the same score.
                RowChunks(rows: rows).forEach { positions in
                    var leaf = leafRanges.firstIndex { $0.end > positions.lowerBound } ?? leafRanges.count
                    var index = positions.lowerBound
                    while index < positions.upperBound {
                        let value = tree.value[leafRanges[leaf].node]
                        let end = min(leafRanges[leaf].end, positions.upperBound)
                        while index < end {
                            out[Int(order.base[index]) &* stride] += value
                            index &+= 1
                        }
                        leaf += 1
                    }
                }
            }
        }
    }
}

/// Each training row's bins and gradient side by side: a record of `size` bytes per row holds its bins (one byte per
/// feature), then at `gradientOffset` its gradient and hessian as two 32-bit floats. Records of up to 64 bytes are a
/// power of two (32 for up to 24 features), longer ones whole cache lines, all on 64-byte boundaries, so a row of a
/// scattered node costs one cache line (for up to 56 features), not one for its bins and another for its gradients.
/// The gradients are rewritten before each tree; the bins never change.
final class RowRecords: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let size: Int
    let gradientOffset: Int
    let rows: Int

    /// `bins`: row by row, `features` bytes per row.
    init(bins: [UInt8], features: Int, rows: Int) {
        gradientOffset = (features + 7) / 8 * 8
        // Up to a cache line: a power of two (records never straddle two lines); beyond: whole lines.
        var size = 8
        while size < gradientOffset + 8 && size < 64 { size *= 2 }
        if size < gradientOffset + 8 { size = (gradientOffset + 8 + 63) / 64 * 64 }
        self.size = size
        self.rows = rows
        base = .allocate(byteCount: max(rows * size, 1), alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: max(rows * size, 1))
        bins.withUnsafeBufferPointer { bins in
            for row in 0..<rows {
                (base + row * size).copyMemory(from: bins.baseAddress! + row * features, byteCount: features)
            }
        }
    }

    deinit { base.deallocate() }

    /// The bins of `row`.
    @inline(__always)
    func bins(of row: Int) -> UnsafePointer<UInt8> {
        UnsafePointer((base + row &* size).assumingMemoryBound(to: UInt8.self))
    }

    /// Asks for `row`'s record to be brought into the cache (its bins and its gradients).
    @inline(__always)
    func prefetch(_ row: Int) {
        let record = base + row &* size
        prefetchForReading(record)
        prefetchForReading(record + gradientOffset)
    }

    @inline(__always)
    func gradient(of row: Int) -> (gradient: Float, hessian: Float) {
        let record = base + row &* size
        return (
            record.load(fromByteOffset: gradientOffset, as: Float.self), record.load(fromByteOffset: gradientOffset &+ 4, as: Float.self)
        )
    }

    /// Writes `row`'s gradient and hessian (rows may be written from several threads at once: each owns its record).
    @inline(__always)
    func setGradient(of row: Int, _ gradient: Float, _ hessian: Float) {
        let record = base + row &* size
        record.storeBytes(of: gradient, toByteOffset: gradientOffset, as: Float.self)
        record.storeBytes(of: hessian, toByteOffset: gradientOffset &+ 4, as: Float.self)
    }

    /// Writes every row's gradient and hessian from pairs.
    func setGradients(_ pairs: [Float]) {
        for row in 0..<rows { setGradient(of: row, pairs[2 * row], pairs[2 * row + 1]) }
    }
}

/// Doubles allocated once and reused (freed with their owner).
final class DoubleScratch: @unchecked Sendable {
    let base: UnsafeMutablePointer<Double>
    init(count: Int) { base = .allocate(capacity: max(count, 1)) }
    deinit { base.deallocate() }
}

extension Range<Int> {
    /// Piece `index` of `pieces` nearly equal, consecutive pieces of this range.
    func piece(_ index: Int, of pieces: Int) -> Range<Int> {
        lowerBound + count * index / pieces..<lowerBound + count * (index + 1) / pieces
    }
}

struct SharedConstPointer<Element>: @unchecked Sendable {
    let base: UnsafePointer<Element>
}

/// A small, fast, seedable random generator (SplitMix64): the same seed gives the same sequence everywhere.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Fisher–Yates with this generator (the standard library's shuffle may change between versions).
    public mutating func shuffle<T>(_ array: inout [T]) {
        guard array.count > 1 else { return }
        for i in stride(from: array.count - 1, to: 0, by: -1) {
            let j = Int(next() % UInt64(i + 1))
            array.swapAt(i, j)
        }
    }
}
