import Foundation
@testable import Learning
import StagecraftTesting
import Testing

@Suite struct DriftTests {
    /// Normal samples (Box–Muller over SplitMix64), deterministic.
    static func normal(_ count: Int, mean: Double = 0, seed: UInt64) -> [Double] {
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { _ in
            let u = Double.random(in: Double.ulpOfOne..<1, using: &generator), v = Double.random(in: 0..<1, using: &generator)
            return mean + sqrt(-2 * log(u)) * cos(2 * .pi * v)
        }
    }

    static func categories(_ count: Int, weights: [(String, Double)], seed: UInt64) -> [String] {
        var generator = SplitMix64(seed: seed)
        let total = weights.reduce(0) { $0 + $1.1 }
        return (0..<count).map { _ in
            var pick = Double.random(in: 0..<total, using: &generator)
            for (level, weight) in weights { if pick < weight { return level }; pick -= weight }
            return weights.last!.0
        }
    }

    /// The same statistics computed by scipy (and numpy for PSI) on the same samples.
    static func scipy(_ input: [String: Any]) throws -> [String: Double] {
        let script = """
            import json, sys, numpy as np
            from scipy import stats
            d = json.load(sys.stdin)
            a, b = np.array(d["reference"]), np.array(d["current"])
            ks = stats.ks_2samp(a, b, method="asymp")
            n, m = len(a), len(b)
            table = np.array(d["table"])
            chi, p, dof, _ = stats.chi2_contingency(table, correction=False)
            e, c = np.array(d["expected"], float), np.array(d["actual"], float)
            pe, pc = np.maximum(e / e.sum(), 1e-4), np.maximum(c / c.sum(), 1e-4)
            print(json.dumps({"ks": ks.statistic, "ks_p_asymp": ks.pvalue,
                              "ks_p_limit": stats.kstwobign.sf(np.sqrt(n * m / (n + m)) * ks.statistic),
                              "chi": chi, "chi_p": p, "dof": dof, "psi": float(((pc - pe) * np.log(pc / pe)).sum())}))
            """
        let output = try ProcessRunner.run("python3", ["-c", script], input: try JSONSerialization.data(withJSONObject: input))
        guard output.status == 0 else { throw LoopbackError(message: "scipy: \(output.stderr)") }
        return try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Double] ?? [:]
    }

    @Test(arguments: [(0.0, UInt64(1)), (0.15, UInt64(2)), (0.5, UInt64(3))])
    func statisticsEqualScipys(shift: Double, seed: UInt64) throws {
        let reference = Self.normal(1_500, seed: seed), current = Self.normal(700, mean: shift, seed: seed + 100)
        let table = [[120, 80, 40, 0], [100, 95, 30, 12]]
        let expected = [150, 150, 100, 100, 0], actual = [130, 160, 90, 70, 50]
        let theirs = try Self.scipy(["reference": reference, "current": current, "table": table, "expected": expected, "actual": actual])

        let ks = Drift.kolmogorovSmirnov(reference, current)
        #expect(abs(ks.statistic - theirs["ks"]!) < 1e-12)
        #expect(abs(ks.pValue - theirs["ks_p_limit"]!) < 1e-9, "Kolmogorov's limiting distribution")
        #expect(abs(ks.pValue - theirs["ks_p_asymp"]!) < 0.02, "ks_2samp(method='asymp') uses the finite-n distribution kstwo")
        let chi = Drift.chiSquared(table)
        #expect(abs(chi.statistic - theirs["chi"]!) < 1e-9)
        #expect(Double(chi.degrees) == theirs["dof"]!)
        #expect(abs(chi.pValue - theirs["chi_p"]!) < 1e-9 * max(1, theirs["chi_p"]!))
        #expect(abs(Drift.psi(expected: expected, actual: actual) - theirs["psi"]!) < 1e-12)
    }

    @Test func chiSquaredPValuesAcrossTheRange() throws {
        // Small, moderate and overwhelming differences, against scipy.
        for table in [[[50, 50], [52, 48]], [[30, 20, 10], [20, 25, 15]], [[500, 10], [10, 500]]] {
            let theirs = try Self.scipy(["reference": [0.0, 1.0], "current": [0.5, 2.0], "table": table, "expected": [1], "actual": [1]])
            let chi = Drift.chiSquared(table)
            #expect(abs(chi.statistic - theirs["chi"]!) < 1e-9)
            #expect(abs(chi.pValue - theirs["chi_p"]!) <= max(1e-12, 1e-9 * theirs["chi_p"]!), "\(table): \(chi.pValue) vs \(theirs["chi_p"]!)")
        }
    }

    @Test func driftIsFoundOnExactlyTheShiftedFeatures() throws {
        // Reference: the training data; current: x shifted by half a standard deviation, plan with a new level.
        func dataset(_ rows: Int, xShift: Double, newLevel: Bool, seed: UInt64) -> Dataset {
            let x = Self.normal(rows, mean: xShift, seed: seed), y = Self.normal(rows, seed: seed + 1)
            var weights = [("basic", 0.5), ("plus", 0.3), ("pro", 0.2)]
            if newLevel { weights.append(("enterprise", 0.25)) }
            let plan = Self.categories(rows, weights: weights, seed: seed + 2)
            let levels = Array(Set(plan)).sorted()
            let codes = plan.map { Int32(levels.firstIndex(of: $0)!) }
            return Dataset(names: ["x", "y", "plan"], columns: [.numeric(x), .numeric(y), .categorical(codes: codes, levels: levels)])
        }
        let training = dataset(4_000, xShift: 0, newLevel: false, seed: 10)
        let profile = ReferenceProfile(training: training, features: ["x", "y", "plan"], predictions: Predictions(labels: ["a", "b"]))
        func isDrift(_ drift: FeatureDrift) -> Bool {
            let ks = drift.ksPValue ?? 1, chi = drift.chiSquaredPValue ?? 1
            return drift.psi > 0.1 || ks < 0.001 || chi < 0.001
        }
        func drifted(_ data: Dataset) -> Set<String> {
            Set(profile.compare(data).features.filter(isDrift).map { $0.name })
        }
        #expect(drifted(dataset(1_000, xShift: 0, newLevel: false, seed: 20)) == [])
        #expect(drifted(dataset(1_000, xShift: 0.5, newLevel: false, seed: 30)) == ["x"])
        #expect(drifted(dataset(1_000, xShift: 0, newLevel: true, seed: 40)) == ["plan"])
        let both = profile.compare(dataset(1_000, xShift: 0.5, newLevel: true, seed: 50)).features
        #expect(Set(both.filter { $0.psi > 0.1 }.map { $0.name }) == ["x", "plan"])
        #expect(both.first { $0.name == "plan" }?.newLevels == ["enterprise"])
    }

    @Test func aBuiltModelFileCarriesItsReference() throws {
        let data = try CSVReader.read(Data("x,c,y\n1,a,p\n2,b,q\n3,a,p\n4,b,q\n5,a,p\n6,b,q\n7,a,p\n8,b,q\n".utf8), source: "t.csv")
        let outcome = try Training.run(TrainingRequest(task: .binaryClassification, target: "y", algorithm: .logisticRegression), train: data, test: data)
        let file = outcome.modelFile(task: .binaryClassification, target: "y", build: BuildRecord(digest: "d", model: "m", data: [:], parameters: [:], tool: "t"))
        let decoded = try ModelFile.decode(try file.encoded())
        #expect(decoded.formatVersion == ModelFile.currentFormatVersion)
        #expect(decoded.reference?.features.map(\.name) == ["x", "c"])
        #expect(decoded.reference?.features[1].levels == ["a", "b"] && decoded.reference?.features[1].counts == [4, 4])
        #expect(decoded.reference?.features[0].sample == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(decoded.reference?.prediction.kind == .categorical)
    }
}

@Suite struct RecordsTests {
    @Test func recordsOfJSONValuesBecomeTheModelsColumns() throws {
        let data = try CSVReader.read(Data("x,c,y\n1,a,p\n2,b,q\n3,a,p\n4,b,q\n".utf8), source: "t.csv")
        let outcome = try Training.run(TrainingRequest(task: .binaryClassification, target: "y", algorithm: .logisticRegression), train: data, test: data)
        let file = outcome.modelFile(task: .binaryClassification, target: "y", build: BuildRecord(digest: "d", model: "m", data: [:], parameters: [:], tool: "t"))
        let records: [[String: Any]] = [["x": 1.5, "c": "b"], ["x": NSNull(), "c": NSNull()], ["c": "z"]]
        let dataset = try file.dataset(records: records, source: "in.jsonl")
        #expect(dataset.names == ["x", "c"])
        guard case .numeric(let x) = dataset.columns[0], case .categorical(let codes, let levels) = dataset.columns[1] else {
            Issue.record("wrong column kinds"); return
        }
        #expect(x[0] == 1.5 && x[1].isNaN && x[2].isNaN)
        #expect(levels == ["b", "z"] && codes == [0, -1, 1])
        let wrong = #expect(throws: LearningError.self) { try file.dataset(records: [["x": "one"]], lines: [7], source: "in.jsonl") }
        #expect(wrong?.message == "in.jsonl:7: 'x' must be a number or null")
        // As JSONSerialization reads them: 0, 1 and 1.0 are numbers (on Linux they also pass `is Bool`), true is not.
        let parsed = try JSONSerialization.jsonObject(with: Data(#"[{"x": 0}, {"x": 1}, {"x": 1.0}, {"x": -0.5}]"#.utf8)) as! [[String: Any]]
        guard case .numeric(let numbers) = try file.dataset(records: parsed, source: "in.jsonl").columns[0] else {
            Issue.record("wrong column kind"); return
        }
        #expect(numbers == [0, 1, 1, -0.5])
        let boolean = try JSONSerialization.jsonObject(with: Data(#"[{"x": true}]"#.utf8)) as! [[String: Any]]
        let refused = #expect(throws: LearningError.self) { try file.dataset(records: boolean, source: "in.jsonl") }
        #expect(refused?.message == "in.jsonl:1: 'x' must be a number or null")
    }
}

/// The radix sort behind binning and profiles, and profiles counted by code.
@Suite struct SortingAndProfileTests {
    /// Any doubles but NaN (every sign, size, infinity, subnormal, repeats) come out as `sorted()` puts them, each
    /// value kept bit for bit; only the order of -0.0 and 0.0 between themselves may differ (-0.0 first).
    @Test func radixSortOrdersAsSortedDoes() {
        var random = SplitMix64(seed: 13)
        var values: [Double] = [0, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .greatestFiniteMagnitude, 1, -1, 1, -0.0, 0]
        while values.count < 50_000 {
            let value = random.next() % 3 == 0 ? Double(Int(random.next() % 200) - 100) / 8 : Double(bitPattern: random.next())
            if !value.isNaN { values.append(value) }
        }
        let radix = values.radixSorted(), expected = values.sorted()
        #expect(radix.count == expected.count)
        #expect(zip(radix, expected).allSatisfy { $0 == $1 }, "not in sorted() order")
        #expect(radix.map(\.bitPattern).sorted() == values.map(\.bitPattern).sorted(), "values were not kept bit for bit")
        let zeroSigns: [FloatingPointSign] = radix.filter { $0 == 0 }.map(\.sign)
        let minusFirst = zeroSigns.drop { $0 == .minus }.allSatisfy { $0 == .plus }
        #expect(minusFirst, "-0.0 should come before 0.0")
        let empty: [Double] = []
        #expect(empty.radixSorted().isEmpty)
        #expect([2.5].radixSorted() == [2.5])
    }

    /// A file's categorical column profiled by its codes is the profile of its text values.
    @Test func categoricalProfilesByCodeAreProfilesByText() {
        let levels = ["b", "a", "zeta", "unused"], codes: [Int32] = [0, 1, -1, 2, 0, 0, -1, 1]
        let byCode = Drift.categoricalProfile(name: "c", codes: codes, levels: levels)
        let byText = Drift.categoricalProfile(name: "c", values: codes.map { $0 < 0 ? nil : levels[Int($0)] })
        #expect(byCode == byText)
        #expect(byCode.levels == ["a", "b", "zeta"])
        #expect(byCode.counts == [2, 3, 1])
        #expect(byCode.missing == 2)
    }
}
