import Foundation
import TensorCore

/// L2-regularized logistic regression, the probe classifier of the reference (scikit-learn's
/// `LogisticRegression` with its defaults: `C = 1`, an unpenalized intercept, the binomial loss
/// for two classes and the multinomial (softmax) loss for more).
///
/// It minimizes `Σᵢ loss(xᵢ, yᵢ) + ‖W‖² / (2C)` — strictly convex, so any solver that converges
/// reaches the same model; ours is L-BFGS, as scikit-learn's default, run to a tighter gradient
/// tolerance than scikit-learn's `1e-4`.
struct LogisticRegression: Sendable {
    let classCount: Int
    let features: Int
    /// One row of `features` weights per class, or a single row for two classes.
    let weights: [Double]
    let intercepts: [Double]

    /// Rows of `weights` (1 for the binomial model).
    private var outputs: Int { classCount == 2 ? 1 : classCount }

    /// Fits the model to `x` (samples × features) and classes `0..<classCount`.
    static func fit(_ x: Matrix, classes: [Int], classCount: Int, c: Double = 1, maxIterations: Int = 2000) -> LogisticRegression {
        let k = classCount == 2 ? 1 : classCount
        let d = x.columns
        let n = Double(max(x.rows, 1))
        // Parameters: k × d weights, then k intercepts. The objective is divided by n, as
        // scikit-learn does, so the tolerance does not depend on the sample count.
        let objective = { (theta: [Double]) -> (Double, [Double]) in
            let w = Matrix(rows: k, columns: d, values: Array(theta[0..<k * d]))
            var z = x.timesTransposed(w)
            for i in 0..<x.rows { for j in 0..<k { z.values[i * k + j] += theta[k * d + j] } }
            var loss = 0.0
            var residual = Matrix(zeros: x.rows, k)  // ∂loss/∂z
            for i in 0..<x.rows {
                if k == 1 {
                    let zi = z.values[i]
                    let y = classes[i] == 1 ? 1.0 : 0.0
                    loss += softplus(zi) - y * zi
                    residual.values[i] = sigmoid(zi) - y
                } else {
                    let row = z.values[i * k..<(i + 1) * k]
                    let largest = row.max() ?? 0
                    let total = row.reduce(0) { $0 + exp($1 - largest) }
                    loss += largest + log(total) - z.values[i * k + classes[i]]
                    for j in 0..<k { residual.values[i * k + j] = exp(z.values[i * k + j] - largest) / total }
                    residual.values[i * k + classes[i]] -= 1
                }
            }
            let gradientW = residual.transposedTimes(x)  // k × d
            var gradient = [Double](repeating: 0, count: theta.count)
            var penalty = 0.0
            for p in 0..<k * d {
                penalty += theta[p] * theta[p]
                gradient[p] = (gradientW.values[p] + theta[p] / c) / n
            }
            for j in 0..<k {
                var sum = 0.0
                for i in 0..<x.rows { sum += residual.values[i * k + j] }
                gradient[k * d + j] = sum / n
            }
            return ((loss + penalty / (2 * c)) / n, gradient)
        }
        let theta = LBFGS.minimize(objective, start: [Double](repeating: 0, count: k * d + k), maxIterations: maxIterations)
        return LogisticRegression(
            classCount: classCount, features: d, weights: Array(theta[0..<k * d]), intercepts: Array(theta[(k * d)...]))
    }

    /// Class probabilities, samples × classes.
    func probabilities(_ x: Matrix) -> Matrix {
        let k = outputs
        var z = x.timesTransposed(Matrix(rows: k, columns: features, values: weights))
        for i in 0..<x.rows { for j in 0..<k { z.values[i * k + j] += intercepts[j] } }
        var p = Matrix(zeros: x.rows, classCount)
        for i in 0..<x.rows {
            if k == 1 {
                let positive = sigmoid(z.values[i])
                p.values[i * 2] = 1 - positive
                p.values[i * 2 + 1] = positive
            } else {
                p.values.replaceSubrange(i * k..<(i + 1) * k, with: ClassProbabilities.softmax(z.values[i * k..<(i + 1) * k]))
            }
        }
        return p
    }

    /// The most probable class of each row (the first on ties, as NumPy's argmax).
    func predict(_ x: Matrix) -> [Int] {
        let p = probabilities(x)
        return ClassProbabilities.argmax(p.values, width: p.columns)
    }
}

@inline(__always) func sigmoid(_ z: Double) -> Double {
    z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z))
}

/// `log(1 + eᶻ)` without overflow.
@inline(__always) func softplus(_ z: Double) -> Double {
    z > 0 ? z + log1p(exp(-z)) : log1p(exp(z))
}

/// Limited-memory BFGS with a backtracking (Armijo) line search, for smooth convex objectives.
enum LBFGS {
    /// The minimizer of `f` (which returns the value and the gradient), from `start`.
    ///
    /// Stops when the largest gradient component falls below `gradientTolerance`, when a step no
    /// longer lowers the value by a relative `1e-15`, or after `maxIterations`.
    static func minimize(
        _ f: ([Double]) -> (Double, [Double]), start: [Double], memory: Int = 10, maxIterations: Int = 2000,
        gradientTolerance: Double = 1e-7
    ) -> [Double] {
        var x = start
        var (value, gradient) = f(x)
        var steps: [[Double]] = []
        var changes: [[Double]] = []
        for iteration in 0..<maxIterations {
            if gradient.lazy.map(abs).max() ?? 0 <= gradientTolerance { break }
            // Two-loop recursion: direction = −H·g.
            var q = gradient
            var alphas = [Double](repeating: 0, count: steps.count)
            for m in stride(from: steps.count - 1, through: 0, by: -1) {
                let rho = 1 / dot(changes[m], steps[m])
                alphas[m] = rho * dot(steps[m], q)
                for i in q.indices { q[i] -= alphas[m] * changes[m][i] }
            }
            if let s = steps.last, let y = changes.last {
                let gamma = dot(s, y) / dot(y, y)
                for i in q.indices { q[i] *= gamma }
            } else {
                // First step: the steepest descent, scaled to unit length.
                let norm = dot(q, q).squareRoot()
                if norm > 0 { for i in q.indices { q[i] /= norm } }
            }
            for m in 0..<steps.count {
                let rho = 1 / dot(changes[m], steps[m])
                let beta = rho * dot(changes[m], q)
                for i in q.indices { q[i] += steps[m][i] * (alphas[m] - beta) }
            }
            var direction = q.map { -$0 }
            var slope = dot(gradient, direction)
            if slope >= 0 {  // not a descent direction: restart from the gradient
                steps.removeAll()
                changes.removeAll()
                direction = gradient.map { -$0 }
                slope = -dot(gradient, gradient)
            }
            var step = 1.0
            var candidate = x
            var next = (value, gradient)
            var accepted = false
            for _ in 0..<60 {
                for i in x.indices { candidate[i] = x[i] + step * direction[i] }
                next = f(candidate)
                if next.0 <= value + 1e-4 * step * slope { accepted = true; break }
                step *= 0.5
            }
            guard accepted else { break }
            let s = zip(candidate, x).map { $0 - $1 }
            let y = zip(next.1, gradient).map { $0 - $1 }
            let decrease = value - next.0
            x = candidate
            (value, gradient) = next
            if dot(s, y) > 1e-12 * dot(y, y) {
                steps.append(s)
                changes.append(y)
                if steps.count > memory {
                    steps.removeFirst()
                    changes.removeFirst()
                }
            }
            if decrease <= 1e-15 * max(abs(value), 1), iteration > 0 { break }
        }
        return x
    }

    @inline(__always) static func dot(_ a: [Double], _ b: [Double]) -> Double {
        var total = 0.0
        for i in a.indices { total += a[i] * b[i] }
        return total
    }
}
