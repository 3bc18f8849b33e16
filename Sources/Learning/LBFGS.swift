/// Limited-memory BFGS for smooth convex objectives, with a backtracking line search on the Armijo condition.
struct LBFGS {
    var memory = 10
    var maxIterations = 200
    /// Stop when the largest gradient component falls below this.
    var tolerance = 1e-6

    struct Result {
        var x: [Double]
        var value: Double
        var iterations: Int
        var converged: Bool
    }

    /// Minimizes `objective`, which returns the value and gradient at a point.
    func minimize(from start: [Double], _ objective: ([Double]) -> (Double, [Double])) -> Result {
        var x = start
        var (value, gradient) = objective(x)
        var s: [[Double]] = [], y: [[Double]] = [], rho: [Double] = []
        let n = x.count
        for iteration in 0..<maxIterations {
            if gradient.reduce(0, { max($0, abs($1)) }) < tolerance {
                return Result(x: x, value: value, iterations: iteration, converged: true)
            }
            // Two-loop recursion: direction = -H * gradient.
            var q = gradient
            var alpha = [Double](repeating: 0, count: s.count)
            for i in stride(from: s.count - 1, through: 0, by: -1) {
                alpha[i] = rho[i] * dot(s[i], q)
                for j in 0..<n { q[j] -= alpha[i] * y[i][j] }
            }
            let gamma = s.isEmpty ? 1 / max(norm(gradient), 1e-12) : dot(s.last!, y.last!) / dot(y.last!, y.last!)
            for j in 0..<n { q[j] *= gamma }
            for i in 0..<s.count {
                let beta = rho[i] * dot(y[i], q)
                for j in 0..<n { q[j] += s[i][j] * (alpha[i] - beta) }
            }
            var direction = q.map { -$0 }
            var slope = dot(direction, gradient)
            if slope >= 0 {  // not a descent direction: restart from steepest descent
                s.removeAll(); y.removeAll(); rho.removeAll()
                direction = gradient.map { -$0 / max(norm(gradient), 1e-12) }
                slope = dot(direction, gradient)
            }
            var step = 1.0
            var candidate = x, candidateValue = value, candidateGradient = gradient
            var accepted = false
            for _ in 0..<40 {
                for j in 0..<n { candidate[j] = x[j] + step * direction[j] }
                (candidateValue, candidateGradient) = objective(candidate)
                if candidateValue <= value + 1e-4 * step * slope { accepted = true; break }
                step *= 0.5
            }
            guard accepted else { return Result(x: x, value: value, iterations: iteration, converged: false) }
            let sNew = (0..<n).map { candidate[$0] - x[$0] }
            let yNew = (0..<n).map { candidateGradient[$0] - gradient[$0] }
            let sy = dot(sNew, yNew)
            if sy > 1e-12 {
                if s.count == memory { s.removeFirst(); y.removeFirst(); rho.removeFirst() }
                s.append(sNew); y.append(yNew); rho.append(1 / sy)
            }
            let decrease = value - candidateValue
            x = candidate; value = candidateValue; gradient = candidateGradient
            if decrease <= 1e-12 * max(1, abs(value)) {
                return Result(x: x, value: value, iterations: iteration + 1, converged: true)
            }
        }
        return Result(x: x, value: value, iterations: maxIterations, converged: false)
    }
}

func dot(_ a: [Double], _ b: [Double]) -> Double {
    var sum = 0.0
    for i in 0..<a.count { sum += a[i] * b[i] }
    return sum
}

func norm(_ a: [Double]) -> Double { dot(a, a).squareRoot() }
