import Foundation

/// What a feature (or the predictions) looked like in the data a version was built from: the reference that
/// captured traffic is compared with. Stored in the model file.
public struct FeatureProfile: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable { case numeric, categorical }

    public var name: String
    public var kind: Kind
    /// Rows in the reference, missing values included.
    public var rows: Int
    public var missing: Int
    /// Numeric: the cut points of the reference's deciles (ascending, distinct); bin i holds values ≤ edges[i].
    public var edges: [Double]?
    /// Numeric: reference rows per bin (edges.count + 1 bins). Categorical: rows per level, in `levels` order.
    public var counts: [Int]
    /// Categorical: the levels seen.
    public var levels: [String]?
    /// Numeric: up to ``Drift/sampleSize`` order statistics of the reference, evenly spaced (its empirical
    /// distribution, for Kolmogorov–Smirnov).
    public var sample: [Double]?
}

/// The reference profile of a version: every feature and the predictions, on the build's data.
public struct ReferenceProfile: Sendable, Codable, Equatable {
    public var features: [FeatureProfile]
    /// The predicted label (classifiers, categorical) or value (regression, numeric), on the holdout set.
    public var prediction: FeatureProfile

    public init(features: [FeatureProfile], prediction: FeatureProfile) {
        self.features = features
        self.prediction = prediction
    }

    /// Profiles `features` of the training rows (in parallel) and the predictions on the holdout set.
    public init(training: Dataset, features: [String], predictions: Predictions) {
        var profiles = [FeatureProfile?](repeating: nil, count: features.count)
        profiles.withUnsafeMutableBufferPointer { buffer in
            let out = SharedPointer(base: buffer.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: features.count) { index in
                let name = features[index]
                switch training.column(name) {
                case .numeric(let values)?: out[index] = Drift.numericProfile(name: name, values: values)
                case .categorical(let codes, let levels)?: out[index] = Drift.categoricalProfile(name: name, codes: codes, levels: levels)
                case nil: out[index] = nil
                }
            }
        }
        self.features = profiles.compactMap { $0 }
        if let labels = predictions.labels {
            prediction = Drift.categoricalProfile(name: "prediction", values: labels)
        } else {
            prediction = Drift.numericProfile(name: "prediction", values: predictions.values ?? [])
        }
    }
}

extension ReferenceProfile {
    /// Drift of every profiled feature present in `current`, and of `predictions` when given.
    public func compare(_ current: Dataset, predictions: Predictions? = nil) -> (features: [FeatureDrift], prediction: FeatureDrift?) {
        let drifts = features.compactMap { profile -> FeatureDrift? in
            switch current.column(profile.name) {
            case .numeric(let values)? where profile.kind == .numeric:
                return Drift.compare(profile, numeric: values)
            case .categorical(let codes, let levels)? where profile.kind == .categorical:
                return Drift.compare(profile, categorical: codes.map { $0 < 0 ? nil : levels[Int($0)] })
            default:
                return nil
            }
        }
        var predicted: FeatureDrift?
        if let labels = predictions?.labels, prediction.kind == .categorical {
            predicted = Drift.compare(prediction, categorical: labels)
        } else if let values = predictions?.values, prediction.kind == .numeric {
            predicted = Drift.compare(prediction, numeric: values)
        }
        return (drifts, predicted)
    }
}

/// One feature's drift: current values against the reference.
public struct FeatureDrift: Sendable, Codable, Equatable {
    public var name: String
    public var kind: FeatureProfile.Kind
    public var rows: Int
    /// Population stability index over the reference's bins (numeric) or levels plus one for unseen levels.
    public var psi: Double
    /// Numeric: the two-sample Kolmogorov–Smirnov statistic and its asymptotic p-value.
    public var ks: Double?
    public var ksPValue: Double?
    /// Categorical: the chi-squared statistic of the 2 × levels contingency table (reference, current), its
    /// degrees of freedom and p-value.
    public var chiSquared: Double?
    public var chiSquaredDegrees: Int?
    public var chiSquaredPValue: Double?
    /// Categorical: levels the reference never saw.
    public var newLevels: [String]?
}

/// Drift statistics: PSI, Kolmogorov–Smirnov and chi-squared, with p-values.
public enum Drift {
    /// How many reference order statistics a numeric profile keeps.
    public static let sampleSize = 2_000
    /// Proportions below this count as this in PSI, so that an empty bin does not make it infinite.
    public static let psiFloor = 1e-4

    // MARK: Profiles

    /// The profile of a numeric column (NaN is missing).
    public static func numericProfile(name: String, values: [Double]) -> FeatureProfile {
        let present = values.filter { !$0.isNaN }.radixSorted()
        var edges: [Double] = []
        if !present.isEmpty {
            for decile in 1..<10 {
                let edge = quantile(present, Double(decile) / 10)
                if edges.last.map({ edge > $0 }) ?? true { edges.append(edge) }
            }
            if edges.last == present.last { edges.removeLast() }  // the top bin must not be empty by construction
        }
        let sample: [Double]
        if present.count <= sampleSize {
            sample = present
        } else {
            sample = (0..<sampleSize).map { present[Int((Double($0) + 0.5) * Double(present.count) / Double(sampleSize))] }
        }
        return FeatureProfile(
            name: name, kind: .numeric, rows: values.count, missing: values.count - present.count,
            edges: edges, counts: binCounts(present, edges: edges), levels: nil, sample: sample)
    }

    /// The profile of a categorical column read from a file: codes into `levels` (-1 is missing), counted by code.
    public static func categoricalProfile(name: String, codes: [Int32], levels: [String]) -> FeatureProfile {
        var counts = [Int](repeating: 0, count: levels.count)
        var missing = 0
        for code in codes { if code < 0 { missing += 1 } else { counts[Int(code)] += 1 } }
        // Levels in sorted order, as for text values; a level no row has is not one.
        let present = levels.indices.filter { counts[$0] > 0 }.sorted { levels[$0] < levels[$1] }
        return FeatureProfile(
            name: name, kind: .categorical, rows: codes.count, missing: missing,
            edges: nil, counts: present.map { counts[$0] }, levels: present.map { levels[$0] }, sample: nil)
    }

    /// The profile of a categorical column (nil is missing).
    public static func categoricalProfile(name: String, values: [String?]) -> FeatureProfile {
        var counts: [String: Int] = [:]
        for case let value? in values { counts[value, default: 0] += 1 }
        let levels = counts.keys.sorted()
        return FeatureProfile(
            name: name, kind: .categorical, rows: values.count, missing: values.count - counts.values.reduce(0, +),
            edges: nil, counts: levels.map { counts[$0]! }, levels: levels, sample: nil)
    }

    /// The linear-interpolation quantile of sorted values (numpy's default).
    static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        let position = q * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down))
        let upper = min(lower + 1, sorted.count - 1)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
    }

    static func binCounts(_ values: [Double], edges: [Double]) -> [Int] {
        var counts = [Int](repeating: 0, count: edges.count + 1)
        for value in values {
            var low = 0
            var high = edges.count
            while low < high {
                let middle = (low + high) / 2
                if value <= edges[middle] { high = middle } else { low = middle + 1 }
            }
            counts[low] += 1
        }
        return counts
    }

    // MARK: Comparing

    /// Drift of current numeric values (NaN is missing) against a numeric profile.
    public static func compare(_ profile: FeatureProfile, numeric values: [Double]) -> FeatureDrift {
        let present = values.filter { !$0.isNaN }
        let current = binCounts(present, edges: profile.edges ?? [])
        let (ks, p) = kolmogorovSmirnov(profile.sample ?? [], present, referenceCount: profile.rows - profile.missing)
        return FeatureDrift(
            name: profile.name, kind: .numeric, rows: values.count, psi: psi(expected: profile.counts, actual: current),
            ks: ks, ksPValue: p)
    }

    /// Drift of current categorical values (nil is missing) against a categorical profile.
    public static func compare(_ profile: FeatureProfile, categorical values: [String?]) -> FeatureDrift {
        let levels = profile.levels ?? []
        let index = Dictionary(uniqueKeysWithValues: levels.enumerated().map { ($1, $0) })
        var current = [Int](repeating: 0, count: levels.count)
        var unseen: [String: Int] = [:]
        for case let value? in values {
            if let position = index[value] { current[position] += 1 } else { unseen[value, default: 0] += 1 }
        }
        let newLevels = unseen.keys.sorted()
        let expected = profile.counts + newLevels.map { _ in 0 }
        let actual = current + newLevels.map { unseen[$0]! }
        let (chi, degrees, p) = chiSquared([expected, actual])
        return FeatureDrift(
            name: profile.name, kind: .categorical, rows: values.count, psi: psi(expected: expected, actual: actual),
            chiSquared: chi, chiSquaredDegrees: degrees, chiSquaredPValue: p, newLevels: newLevels)
    }

    /// PSI = Σ (a − e) · ln(a / e) over bins, with proportions floored at ``psiFloor``.
    public static func psi(expected: [Int], actual: [Int]) -> Double {
        let expectedTotal = Double(max(expected.reduce(0, +), 1))
        let actualTotal = Double(max(actual.reduce(0, +), 1))
        var total = 0.0
        for (e, a) in zip(expected, actual) {
            let pe = max(Double(e) / expectedTotal, psiFloor)
            let pa = max(Double(a) / actualTotal, psiFloor)
            total += (pa - pe) * log(pa / pe)
        }
        return total
    }

    /// The two-sample Kolmogorov–Smirnov statistic D (the largest gap between the two empirical distribution
    /// functions) and its asymptotic p-value, P(K > √(nm/(n+m)) · D) for Kolmogorov's K. `referenceCount` is
    /// the size of the population `reference` was sampled from (the sample stands for its distribution).
    public static func kolmogorovSmirnov(_ reference: [Double], _ current: [Double], referenceCount: Int? = nil) -> (
        statistic: Double, pValue: Double
    ) {
        guard !reference.isEmpty, !current.isEmpty else { return (0, 1) }
        let a = reference.sorted()
        let b = current.sorted()
        var i = 0
        var j = 0
        var d = 0.0
        while i < a.count && j < b.count {
            let value = min(a[i], b[j])
            while i < a.count && a[i] == value { i += 1 }
            while j < b.count && b[j] == value { j += 1 }
            d = max(d, abs(Double(i) / Double(a.count) - Double(j) / Double(b.count)))
        }
        let n = Double(referenceCount ?? a.count)
        let m = Double(b.count)
        return (d, kolmogorovSurvival(sqrt(n * m / (n + m)) * d))
    }

    /// P(K > x) for Kolmogorov's distribution: 2 Σ (−1)^(k−1) e^(−2k²x²).
    static func kolmogorovSurvival(_ x: Double) -> Double {
        guard x > 0.18 else { return 1 }
        var sum = 0.0
        for k in 1...100 {
            let term = exp(-2 * Double(k * k) * x * x)
            sum += (k % 2 == 1 ? term : -term)
            if term < 1e-16 { break }
        }
        return min(max(2 * sum, 0), 1)
    }

    /// Pearson's chi-squared test of independence on a contingency table (rows × columns of counts): the statistic,
    /// its degrees of freedom and p-value. Columns that are empty in every row are dropped.
    public static func chiSquared(_ table: [[Int]]) -> (statistic: Double, degrees: Int, pValue: Double) {
        let columns = (0..<(table.first?.count ?? 0)).filter { column in table.contains { $0[column] > 0 } }
        let rows = table.filter { row in columns.contains { row[$0] > 0 } }
        guard rows.count > 1, columns.count > 1 else { return (0, 0, 1) }
        let rowTotals = rows.map { row in Double(columns.reduce(0) { $0 + row[$1] }) }
        let columnTotals = columns.map { column in Double(rows.reduce(0) { $0 + $1[column] }) }
        let total = rowTotals.reduce(0, +)
        var statistic = 0.0
        for (r, row) in rows.enumerated() {
            for (c, column) in columns.enumerated() {
                let expected = rowTotals[r] * columnTotals[c] / total
                let difference = Double(row[column]) - expected
                statistic += difference * difference / expected
            }
        }
        let degrees = (rows.count - 1) * (columns.count - 1)
        return (statistic, degrees, regularizedGammaQ(Double(degrees) / 2, statistic / 2))
    }

    /// Q(a, x) = Γ(a, x) / Γ(a), the chi-squared survival function's core: a series below a + 1, a continued
    /// fraction above (Numerical Recipes, 6.2).
    static func regularizedGammaQ(_ a: Double, _ x: Double) -> Double {
        guard x > 0 else { return 1 }
        let logPrefix = -x + a * log(x) - lgamma(a)
        if x < a + 1 {
            var sum = 1 / a
            var term = 1 / a
            var n = a
            for _ in 0..<1_000 {
                n += 1
                term *= x / n
                sum += term
                if abs(term) < abs(sum) * 1e-16 { break }
            }
            return max(0, 1 - sum * exp(logPrefix))
        }
        let tiny = 1e-300
        var b = x + 1 - a
        var c = 1 / tiny
        var d = 1 / b
        var h = d
        for i in 1...1_000 {
            let an = -Double(i) * (Double(i) - a)
            b += 2
            d = an * d + b
            if abs(d) < tiny { d = tiny }
            c = b + an / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < 1e-16 { break }
        }
        return exp(logPrefix) * h
    }
}
