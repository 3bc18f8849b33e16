import Foundation

/// A linear model over the one-hot encoded features: logistic (binary: one score; multinomial: one per class)
/// or linear regression. Weights are laid out class by class, `oneHotWidth` each, intercepts apart.
public struct LinearModel: Sendable, Codable, Equatable {
    /// Rows of weights: 1 for binary and regression, one per class for multinomial.
    public var weights: [[Double]]
    public var intercepts: [Double]

    /// The raw scores (log-odds, class scores, or the regression value) of every row: rowCount × weights.count.
    public func scores(_ matrix: FeatureMatrix) -> [Double] {
        let outputs = weights.count
        var scores = [Double](repeating: 0, count: matrix.rowCount * outputs)
        let offsets = matrix.oneHotOffsets
        for row in 0..<matrix.rowCount {
            for k in 0..<outputs {
                scores[row * outputs + k] = LinearModel.score(matrix, row: row, weights: weights[k], offsets: offsets) + intercepts[k]
            }
        }
        return scores
    }

    @inline(__always)
    static func score(_ matrix: FeatureMatrix, row: Int, weights: [Double], offsets: [Int]) -> Double {
        var z = 0.0
        let p = matrix.numericCount
        let c = matrix.categoricalCount
        matrix.numeric.withUnsafeBufferPointer { x in
            weights.withUnsafeBufferPointer { w in
                let base = row * p
                for j in 0..<p { z += x[base + j] * w[j] }
            }
        }
        for j in 0..<c {
            let code = matrix.codes[row * c + j]
            if code >= 0 { z += weights[offsets[j] + Int(code)] }
        }
        return z
    }
}

/// Trains logistic regression: mean log loss + l2/2 · ‖w‖² (the intercepts are not penalized), by L-BFGS.
/// With `l2` nil the penalty is 1 / rows, which is scikit-learn's default (C = 1); the default tolerance on the
/// largest gradient component is scikit-learn's too.
public struct LogisticRegressionTrainer: Sendable {
    public var l2: Double?
    public var maxIterations: Int
    public var tolerance: Double

    public init(l2: Double? = nil, maxIterations: Int = 300, tolerance: Double = 1e-4) {
        self.l2 = l2
        self.maxIterations = maxIterations
        self.tolerance = tolerance
    }

    /// Fits on `matrix` with class indices `labels` (0..<classCount).
    public func fit(_ matrix: FeatureMatrix, labels: [Int32], classCount: Int) -> (LinearModel, iterations: Int) {
        let width = matrix.oneHotWidth
        let outputs = classCount == 2 ? 1 : classCount
        let parameterCount = outputs * (width + 1)  // weights, then intercepts
        let rows = matrix.rowCount
        let chunks = RowChunks(rows: rows)
        let offsets = matrix.oneHotOffsets
        let l2 = self.l2 ?? 1 / Double(max(rows, 1))
        let shared = SharedMatrix(matrix: matrix, labels: labels)

        let objective: ([Double]) -> (Double, [Double]) = { parameters in
            // Per chunk: [loss, gradient...]
            let totals = chunks.sum(width: parameterCount + 1) { range, out in
                let matrix = shared.matrix
                let labels = shared.labels
                let p = matrix.numericCount
                let c = matrix.categoricalCount
                if outputs == 1 {
                    LogisticRegressionTrainer.binaryChunk(
                        matrix, labels: labels, parameters: parameters, offsets: offsets, range: range, out: out)
                    return
                }
                var z = [Double](repeating: 0, count: outputs)
                var g = [Double](repeating: 0, count: outputs)
                parameters.withUnsafeBufferPointer { w in
                    matrix.numeric.withUnsafeBufferPointer { x in
                        matrix.codes.withUnsafeBufferPointer { codes in
                            for row in range {
                                let base = row * p
                                for k in 0..<outputs {
                                    let offset = k * width
                                    var score = w[outputs * width + k]
                                    for j in 0..<p { score += x[base + j] * w[offset + j] }
                                    for j in 0..<c {
                                        let code = codes[row * c + j]
                                        if code >= 0 { score += w[offset + offsets[j] + Int(code)] }
                                    }
                                    z[k] = score
                                }
                                let label = Int(labels[row])
                                if outputs == 1 {
                                    let score = z[0]
                                    // log(1 + e^z) - y z, computed stably.
                                    let softplus = score > 0 ? score + log1p(exp(-score)) : log1p(exp(score))
                                    out[0] += softplus - (label == 1 ? score : 0)
                                    let probability = 1 / (1 + exp(-score))
                                    g[0] = probability - Double(label)
                                } else {
                                    var maximum = z[0]
                                    for k in 1..<outputs { maximum = max(maximum, z[k]) }
                                    var total = 0.0
                                    for k in 0..<outputs {
                                        g[k] = exp(z[k] - maximum)
                                        total += g[k]
                                    }
                                    out[0] += log(total) + maximum - z[label]
                                    for k in 0..<outputs { g[k] = g[k] / total - (k == label ? 1 : 0) }
                                }
                                for k in 0..<outputs {
                                    let gk = g[k]
                                    let offset = 1 + k * width
                                    for j in 0..<p { out[offset + j] += gk * x[base + j] }
                                    for j in 0..<c {
                                        let code = codes[row * c + j]
                                        if code >= 0 { out[offset + offsets[j] + Int(code)] += gk }
                                    }
                                    out[1 + outputs * width + k] += gk
                                }
                            }
                        }
                    }
                }
            }
            let scale = 1 / Double(rows)
            var value = totals[0] * scale
            var gradient = Array(totals[1...]).map { $0 * scale }
            for index in 0..<(outputs * width) {
                value += 0.5 * l2 * parameters[index] * parameters[index]
                gradient[index] += l2 * parameters[index]
            }
            return (value, gradient)
        }
        let solver = LBFGS(maxIterations: maxIterations, tolerance: tolerance)
        let result = solver.minimize(from: [Double](repeating: 0, count: parameterCount), objective)
        let weights = (0..<outputs).map { k in Array(result.x[(k * width)..<((k + 1) * width)]) }
        let intercepts = Array(result.x[(outputs * width)...])
        return (LinearModel(weights: weights, intercepts: intercepts), result.iterations)
    }
}

extension LogisticRegressionTrainer {
    /// Loss and gradient of the binary model over `range`, added to out[0] (loss) and out[1...] (gradient).
    static func binaryChunk(
        _ matrix: FeatureMatrix, labels: [Int32], parameters: [Double], offsets: [Int],
        range: Range<Int>, out: UnsafeMutablePointer<Double>
    ) {
        let p = matrix.numericCount
        let c = matrix.categoricalCount
        let width = matrix.oneHotWidth
        parameters.withUnsafeBufferPointer { w in
            matrix.numeric.withUnsafeBufferPointer { x in
                matrix.codes.withUnsafeBufferPointer { codes in
                    offsets.withUnsafeBufferPointer { offsets in
                        labels.withUnsafeBufferPointer { labels in
                            let intercept = w[width]
                            var loss = 0.0
                            var interceptGradient = 0.0
                            for row in range {
                                let base = row &* p
                                var z = intercept
                                for j in 0..<p { z += x[base &+ j] * w[j] }
                                for j in 0..<c {
                                    let code = codes[row &* c &+ j]
                                    if code >= 0 { z += w[offsets[j] &+ Int(code)] }
                                }
                                // One exponential: e = exp(-|z|) gives both log(1 + e^z) and the probability.
                                let e = exp(-abs(z))
                                let probability = z >= 0 ? 1 / (1 + e) : e / (1 + e)
                                let positive = labels[row] == 1
                                loss += max(z, 0) + log1p(e) - (positive ? z : 0)
                                let g = probability - (positive ? 1 : 0)
                                for j in 0..<p { out[1 &+ j] += g * x[base &+ j] }
                                for j in 0..<c {
                                    let code = codes[row &* c &+ j]
                                    if code >= 0 { out[1 &+ offsets[j] &+ Int(code)] += g }
                                }
                                interceptGradient += g
                            }
                            out[0] += loss
                            out[1 &+ width] += interceptGradient
                        }
                    }
                }
            }
        }
    }
}

/// Trains ridge regression: mean squared error + l2 · ‖w‖², solved exactly from the normal equations.
public struct LinearRegressionTrainer: Sendable {
    public var l2: Double
    public init(l2: Double = 1e-6) { self.l2 = l2 }

    public func fit(_ matrix: FeatureMatrix, targets: [Double]) throws -> LinearModel {
        let width = matrix.oneHotWidth
        let size = width + 1  // the last column is the intercept
        let rows = matrix.rowCount
        let offsets = matrix.oneHotOffsets
        let shared = SharedMatrix(matrix: matrix, labels: [])
        let sharedTargets = SharedValues(values: targets)
        // Accumulate XᵀX (upper triangle, full) and Xᵀy per chunk.
        let totals = RowChunks(rows: rows).sum(width: size * size + size) { range, out in
            let matrix = shared.matrix
            let targets = sharedTargets.values
            var row = [Double](repeating: 0, count: size)
            var active: [Int] = []
            for r in range {
                active.removeAll(keepingCapacity: true)
                for j in 0..<matrix.numericCount {
                    row[j] = matrix.numeric[r * matrix.numericCount + j]
                    active.append(j)
                }
                for j in 0..<matrix.categoricalCount {
                    let code = matrix.codes[r * matrix.categoricalCount + j]
                    if code >= 0 {
                        let column = offsets[j] + Int(code)
                        row[column] = 1
                        active.append(column)
                    }
                }
                row[width] = 1
                active.append(width)
                for a in active {
                    for b in active { out[a * size + b] += row[a] * row[b] }
                    out[size * size + a] += row[a] * targets[r]
                }
                for a in active { row[a] = 0 }
            }
        }
        var gram = Array(totals[0..<(size * size)]).map { $0 / Double(rows) }
        var right = Array(totals[(size * size)...]).map { $0 / Double(rows) }
        for j in 0..<width { gram[j * size + j] += l2 }
        gram[width * size + width] += 1e-12
        guard let solution = choleskySolve(&gram, &right, size: size) else {
            throw LearningError(.unusableData, "the features are degenerate: the normal equations have no solution")
        }
        return LinearModel(weights: [Array(solution[0..<width])], intercepts: [solution[width]])
    }
}

/// Solves A x = b for a symmetric positive-definite A (row-major), in place; nil when A is not positive definite.
func choleskySolve(_ a: inout [Double], _ b: inout [Double], size n: Int) -> [Double]? {
    for j in 0..<n {
        var diagonal = a[j * n + j]
        for k in 0..<j { diagonal -= a[j * n + k] * a[j * n + k] }
        guard diagonal > 0 else { return nil }
        let root = diagonal.squareRoot()
        a[j * n + j] = root
        for i in (j + 1)..<max(j + 1, n) {
            var value = a[i * n + j]
            for k in 0..<j { value -= a[i * n + k] * a[j * n + k] }
            a[i * n + j] = value / root
        }
    }
    var y = b
    for i in 0..<n {
        for k in 0..<i { y[i] -= a[i * n + k] * y[k] }
        y[i] /= a[i * n + i]
    }
    for i in stride(from: n - 1, through: 0, by: -1) {
        for k in (i + 1)..<max(i + 1, n) { y[i] -= a[k * n + i] * y[k] }
        y[i] /= a[i * n + i]
    }
    return y
}

struct SharedMatrix: @unchecked Sendable {
    let matrix: FeatureMatrix
    let labels: [Int32]
}

struct SharedValues: @unchecked Sendable {
    let values: [Double]
}
