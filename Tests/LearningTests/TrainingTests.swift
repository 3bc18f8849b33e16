import Foundation
@testable import Learning
import StagecraftTesting
import Testing

@Suite struct TrainingTests {
    func example(_ name: String) throws -> (Dataset, Dataset) {
        let folder = Fixtures.packageRoot + "/data/\(name)"
        return (try CSVReader.read(Data(contentsOf: URL(fileURLWithPath: folder + "/train.csv")), source: "train.csv"),
                try CSVReader.read(Data(contentsOf: URL(fileURLWithPath: folder + "/test.csv")), source: "test.csv"))
    }

    let record = BuildRecord(digest: String(repeating: "a", count: 64), model: "m", data: [:], parameters: [:], tool: "test")

    static let configurations: [(String, String, LearningTask, AlgorithmName)] = [
        ("breast-cancer", "diagnosis", .binaryClassification, .logisticRegression),
        ("breast-cancer", "diagnosis", .binaryClassification, .gradientBoosting),
        ("penguins", "species", .multiclassClassification, .logisticRegression),
        ("penguins", "species", .multiclassClassification, .gradientBoosting),
    ]

    @Test(arguments: configurations.indices)
    func aModelFileRoundTripsToTheSamePredictionsAndBuildsAreByteIdentical(_ index: Int) throws {
        let (name, target, task, algorithm) = Self.configurations[index]
        let (train, test) = try example(name)
        let request = TrainingRequest(task: task, target: target, algorithm: algorithm)
        let first = try Training.run(request, train: train, test: test)
        let model = first.modelFile(task: task, target: target, build: record)
        let bytes = try model.encoded()
        let loaded = try ModelFile.decode(bytes)
        #expect(loaded == model)
        #expect(try loaded.predict(test) == model.predict(test))
        // The same inputs train to the same bytes.
        let second = try Training.run(request, train: train, test: test).modelFile(task: task, target: target, build: record)
        #expect(try second.encoded() == bytes)
        #expect(first.holdoutMetrics["accuracy"]! >= 0.95, "\(name) \(algorithm): \(first.holdoutMetrics)")
    }

    @Test func anUnknownCategoryAtPredictionTimeIsAnsweredNotRejected() throws {
        let (train, test) = try example("penguins")
        let outcome = try Training.run(TrainingRequest(task: .multiclassClassification, target: "species", algorithm: .gradientBoosting), train: train, test: test)
        let model = outcome.modelFile(task: .multiclassClassification, target: "species", build: record)
        let row = try CSVReader.read(Data("island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,year\nAtlantis,45,15,220,5000,NA,2009\n".utf8), source: "row")
        let predictions = try model.predict(row)
        #expect(predictions.labels?.count == 1)
        let probabilities = try #require(predictions.probabilities)
        #expect(abs(probabilities.reduce(0, +) - 1) < 1e-9)
    }

    @Test func ridgeRegressionRecoversALinearFunction() throws {
        var text = "x,z,y\n"
        for i in 0..<200 {
            let x = Double(i) / 10, z = Double((i * 7) % 13)
            text += "\(x),\(z),\(2 * x - 0.5 * z + 3)\n"
        }
        let data = try CSVReader.read(Data(text.utf8), source: "lin.csv")
        let outcome = try Training.run(TrainingRequest(task: .regression, target: "y", algorithm: .linearRegression, parameters: ["l2": .number(0)]), train: data, test: data)
        #expect(outcome.holdoutMetrics["rmse"]! < 1e-6)
        #expect(abs(outcome.holdoutMetrics["r2"]! - 1) < 1e-9)
    }

    @Test func boostedTreesFitAStepFunction() throws {
        var text = "x,y\n"
        // 100 distinct x values: within the 255 bins, so the step falls between two bins.
        for i in 0..<400 { text += "\(i % 100),\(i % 100 < 50 ? 1.0 : 5.0)\n" }
        let data = try CSVReader.read(Data(text.utf8), source: "step.csv")
        let outcome = try Training.run(TrainingRequest(task: .regression, target: "y", algorithm: .gradientBoosting), train: data, test: data)
        #expect(outcome.holdoutMetrics["rmse"]! < 0.01)
    }

    /// From 32,768 rows a node's rows are partitioned in parallel pieces and put back together: the result must be
    /// the stable partition, as a plain filter gives it, for every split of a node.
    @Test func largeNodesArePartitionedStably() {
        let rows = 200_000
        var random = SplitMix64(seed: 7)
        let bins = (0..<rows).map { _ in UInt8(random.next() % 256) }
        var builder = TreeBuilder(bins: bins, features: 1, rows: rows, maxBins: 256, maxLeaves: 31, maxDepth: nil, minSamplesLeaf: 20, l2: 0)
        builder.order = (0..<Int32(rows)).map { $0 }
        random.shuffle(&builder.order)
        let node = 1_000..<(rows - 3_000)
        let before = builder.order
        let rightStart = builder.partition(node, feature: 0, threshold: 99)
        let expectedLeft = before[node].filter { bins[Int($0)] <= 99 }, expectedRight = before[node].filter { bins[Int($0)] > 99 }
        #expect(rightStart == node.lowerBound + expectedLeft.count)
        let partitioned = Array(builder.order[node]) == expectedLeft + expectedRight
        #expect(partitioned, "the node's rows are not its left rows then its right rows, each in their former order")
        let outside = builder.order[..<node.lowerBound] == before[..<node.lowerBound] && builder.order[node.upperBound...] == before[node.upperBound...]
        #expect(outside, "rows outside the node moved")
    }

    /// A leaf's best split is found without per-bin row counts, then checked; it must always be the split the exact
    /// scan with counts picks (here on leaves of 40 to 400 rows, where `minSamplesLeaf` = 20 often binds).
    @Test func splitsFoundWithoutCountsAreTheExactScansSplits() {
        let rows = 3_000, features = 3
        var random = SplitMix64(seed: 11)
        // Skewed bins: most rows in a few bins, so that a side's count is often near the minimum.
        let bins = (0..<(rows * features)).map { _ in UInt8(min(random.next() % 64, random.next() % 64)) }
        var builder = TreeBuilder(bins: bins, features: features, rows: rows, maxBins: 256, maxLeaves: 31, maxDepth: nil, minSamplesLeaf: 20, l2: 0)
        let gradients = (0..<rows).flatMap { _ -> [Float] in
            let p = Double(random.next() % 1_000) / 1_000
            return [Float(p - Double(random.next() % 2)), Float(max(p * (1 - p), 1e-16))]
        }
        builder.records.setGradients(gradients)
        builder.maxHessian = Double(stride(from: 1, to: gradients.count, by: 2).map { gradients[$0] }.max()!)
        var checked = 0, countedAgain = 0
        for _ in 0..<300 {
            builder.order = (0..<Int32(rows)).map { $0 }
            random.shuffle(&builder.order)
            let size = 40 + Int(random.next() % 360)
            let histogram = builder.histogram(start: 0, end: size)
            var g = 0.0, h = 0.0
            for index in 0..<size { g += Double(gradients[2 * Int(builder.order[index])]); h += Double(gradients[2 * Int(builder.order[index]) + 1]) }
            let leaf = TreeBuilder.Leaf(node: 0, start: 0, end: size, depth: 0, gradient: g, hessian: h, histogram: histogram)
            let fast = builder.bestSplit(leaf), exact = builder.scan(leaf, counts: builder.binCounts(leaf))
            #expect(fast?.feature == exact?.feature && fast?.threshold == exact?.threshold && fast?.gain == exact?.gain)
            if let candidate = builder.scan(leaf, counts: nil), candidate.feature != exact?.feature || candidate.threshold != exact?.threshold { countedAgain += 1 }
            checked += 1
        }
        #expect(checked == 300)
        #expect(countedAgain > 10, "the leaves should often need the exact scan (\(countedAgain) did)")
    }

    /// A node's histogram holds, per feature and bin, the sums of its rows' gradients and hessians, whichever way it
    /// is built: one thread (small nodes), features shared out (middling ones: the same sums, in the same order, so
    /// exactly equal), pieces of rows added up (large ones), and the root's rows read in place; for records of 16, 32
    /// and 128 bytes (5, 22 and 60 features).
    @Test(arguments: [5, 22, 60]) func histogramsAreTheSumsOfTheirRows(features: Int) {
        let rows = features == 5 ? 140_000 : 50_000  // 140,000: the root is cut in 8 pieces (the most) of 17,500 rows
        var random = SplitMix64(seed: 5)
        let bins = (0..<(rows * features)).map { _ in UInt8(random.next() % 256) }
        let gradients = (0..<(2 * rows)).map { _ in Float(Double(random.next() % 2_001) / 1_000 - 1) }
        var builder = TreeBuilder(bins: bins, features: features, rows: rows, maxBins: 256, maxLeaves: 31, maxDepth: nil, minSamplesLeaf: 20, l2: 0)
        builder.records.setGradients(gradients)
        func sums(of nodeRows: [Int32]) -> [Double] {
            var histogram = [Double](repeating: 0, count: features * 256 * 2)
            for row in nodeRows.map(Int.init) {
                for f in 0..<features {
                    let slot = (f * 256 + Int(bins[row * features + f])) * 2
                    histogram[slot] += Double(gradients[2 * row]); histogram[slot + 1] += Double(gradients[2 * row + 1])
                }
            }
            return histogram
        }
        for size in [500, 10_000, 30_000] {
            // A node's rows: a scattered subset, ascending (as partitions leave them), at the start of `order`.
            var all = (0..<Int32(rows)).map { $0 }
            random.shuffle(&all)
            let nodeRows = all.prefix(size).sorted()
            builder.order = nodeRows + all.dropFirst(size)
            let histogram = builder.histogram(start: 0, end: size), expected = sums(of: nodeRows)
            if size <= RowChunks.size {
                let same = histogram == expected
                #expect(same, "\(size) rows: the histogram is not the rows' sums in order")
            } else {
                let close = zip(histogram, expected).allSatisfy { abs($0 - $1) <= 1e-9 * max(1, abs($1)) }
                #expect(close, "\(size) rows: the pieces' histograms do not add up to the rows' sums")
            }
        }
        builder.order = (0..<Int32(rows)).map { $0 }
        let root = builder.histogram(start: 0, end: rows, inRowOrder: true)
        let same = root == builder.histogram(start: 0, end: rows)
        #expect(same, "reading the root's rows in place must give the same sums")
        let close = zip(root, sums(of: builder.order)).allSatisfy { abs($0 - $1) <= 1e-9 * max(1, abs($1)) }
        #expect(close)
    }

    /// A value's bin is the number of its feature's thresholds below it (NaN: bin 0), for any number of thresholds.
    @Test func binsCountTheThresholdsBelowEachValue() {
        var random = SplitMix64(seed: 9)
        let thresholds: [[Double]] = [[], [0.5], [-1, 0, 2.5], (0..<254).map { Double($0) / 8 - 10 }]
        var values: [Double] = [.nan, .infinity, -.infinity, -0.0, 0, 0.5, 2.5, -10, 21.625, 1e300]
        values += (0..<2_000).map { _ in Double(Int(random.next() % 2_400) - 1_200) / 64 }
        let p = thresholds.count
        let matrix = FeatureMatrix(rowCount: values.count, numeric: values.flatMap { Array(repeating: $0, count: p) }, numericCount: p,
                                   codes: [], levelCounts: [])
        let binned = Binning(thresholds: thresholds, levelBins: []).bin(matrix)
        for (row, value) in values.enumerated() {
            for (j, cuts) in thresholds.enumerated() {
                let expected = cuts.filter { $0 < value }.count
                #expect(Int(binned[row * p + j]) == expected, "value \(value), \(cuts.count) thresholds")
            }
        }
    }

    /// Bin thresholds are scikit-learn's, number for number: midpoints of distinct values when there are at most 255,
    /// otherwise NumPy's `percentile(method="averaged_inverted_cdf")` at 254 evenly spaced points, deduplicated.
    @Test(arguments: [(456, 1_000, UInt64(1)), (1_000, 100_000, UInt64(2)), (5_000, 600, UInt64(3)), (200, 50, UInt64(4))])
    func binThresholdsAreNumPysPercentiles(rows: Int, levels: Int, seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let values = (0..<rows).map { _ in Double(random.next() % UInt64(levels)) / 7 }
        let script = """
            import json, sys, numpy as np
            x = np.array(json.load(sys.stdin))
            d = np.unique(x)
            t = (d[:-1] + d[1:]) / 2 if len(d) <= 255 else np.unique(np.percentile(x, np.linspace(0, 100, 256)[1:-1], method="averaged_inverted_cdf"))
            print(json.dumps([float(v).hex() for v in t]))
            """
        let output = try ProcessRunner.run("python3", ["-c", script], input: try JSONSerialization.data(withJSONObject: values))
        // Python's float.hex() text, read exactly.
        let theirs = (try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String] ?? []).compactMap(Double.init)
        let ours = Binning.thresholds(values.sorted(), maxBins: 255)
        #expect(!theirs.isEmpty, "numpy: \(output.stderr)")
        let same = ours == theirs
        #expect(same, "\(ours.count) thresholds against numpy's \(theirs.count); first differences: \(zip(ours, theirs).filter { $0 != $1 }.prefix(3))")
    }

    @Test func searchPicksTheBestCandidateAndBreaksTiesByGridOrder() throws {
        let (train, test) = try example("breast-cancer")
        let search = SearchRequest(folds: 3, metric: "logLoss", grid: ["l2": [.number(10), .number(0.001), .number(1)]])
        let outcome = try Training.run(TrainingRequest(task: .binaryClassification, target: "diagnosis", algorithm: .logisticRegression, search: search),
                                       train: train, test: test)
        #expect(outcome.search.map { $0.parameters["l2"] } == [.number(10), .number(0.001), .number(1)])
        let best = outcome.search.min { $0.score < $1.score }!
        #expect(outcome.parameters["l2"] == best.parameters["l2"])
        #expect(outcome.search.allSatisfy { $0.foldScores.count == 3 })
        // A metric where every candidate ties picks the first.
        let tie = SearchRequest(folds: 2, metric: "accuracy", grid: ["maxIterations": [.number(300), .number(400)]])
        let tied = try Training.run(TrainingRequest(task: .binaryClassification, target: "diagnosis", algorithm: .logisticRegression, search: tie),
                                    train: train, test: test)
        #expect(tied.search[0].score == tied.search[1].score)
        #expect(tied.parameters["maxIterations"] == .number(300))
    }

    @Test func badTargetsAreClearErrors() throws {
        let (train, test) = try example("penguins")
        let binary = #expect(throws: LearningError.self) {
            try Training.run(TrainingRequest(task: .binaryClassification, target: "species", algorithm: .logisticRegression), train: train, test: test)
        }
        #expect(binary?.message == "train.csv: a binary classification needs exactly 2 classes in 'species', found 3 (Adelie, Chinstrap, Gentoo)")
        let missing = #expect(throws: LearningError.self) {
            try Training.run(TrainingRequest(task: .multiclassClassification, target: "kind", algorithm: .logisticRegression), train: train, test: test)
        }
        #expect(missing?.code == .missingColumn)
    }

    @Test func modelFilesOfOtherFormatsAreRefused() {
        let other = #expect(throws: LearningError.self) { try ModelFile.decode(Data(#"{"format":"onnx"}"#.utf8)) }
        #expect(other?.message == "not a Stagecraft model file (expected \"format\": \"stagecraft-model\")")
        let newer = #expect(throws: LearningError.self) { try ModelFile.decode(Data(#"{"format":"stagecraft-model","formatVersion":9}"#.utf8)) }
        #expect(newer?.message == "model file format version 9 is not supported (this build reads 2 to 4)")
    }

    /// Formats 3 and 4 changed what boosting builds, not the layout: a format 2 file still loads and predicts.
    @Test func formatTwoFilesStillLoad() throws {
        let (train, test) = try example("penguins")
        let outcome = try Training.run(TrainingRequest(task: .multiclassClassification, target: "species", algorithm: .gradientBoosting), train: train, test: test)
        let file = outcome.modelFile(task: .multiclassClassification, target: "species", build: BuildRecord(digest: "d", model: "m", data: [:], parameters: [:], tool: "t"))
        let text = String(decoding: try file.encoded(), as: UTF8.self)
        #expect(text.contains("\"formatVersion\":4"))
        let older = try ModelFile.decode(Data(text.replacingOccurrences(of: "\"formatVersion\":4", with: "\"formatVersion\":2").utf8))
        #expect(older.formatVersion == 2)
        #expect(try older.predict(test).labels == file.predict(test).labels)
    }
}
