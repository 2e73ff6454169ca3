import TensorCore

/// Probes: can a classifier read the group off the embeddings?
///
/// The **linear** probe is the reference's (`SKLearnProbe` with its defaults): a seeded stratified
/// 80/20 holdout (scikit-learn's split, drawn exactly), features standardized on the training
/// part, L2 logistic regression, scored on the holdout by F1 (binary, the second group in sorted
/// order positive; macro over groups with more than two) against a threshold of 0.7.
///
/// The **nonlinear** probe uses the same holdout and solver on the standardized features and
/// their squares (re-standardized), a quadratic decision boundary. It sees what a linear probe
/// cannot: a group told apart by the spread or the radius of its embeddings rather than by a
/// shifted mean (the reference's `generate_nonlinear_shortcut` puts the groups on two concentric
/// circles, where the linear probe scores about 0.4). A small MLP was the other candidate; on
/// that data set (400 training rows, 62 noise dimensions) it overfits the noise and stays near
/// chance, while the quadratic model finds the radius exactly and, being convex, needs no
/// random initialization.
public struct ProbeResult: Sendable, Equatable {
    /// `"f1"`.
    public let metric: String
    /// The linear probe's holdout F1.
    public let value: Double
    /// The score above which a probe flags a shortcut.
    public let threshold: Double
    /// Either probe's score exceeds the threshold.
    public let detected: Bool
    /// The linear probe's holdout accuracy.
    public let accuracy: Double
    /// The linear probe's holdout ROC AUC (macro one-vs-rest for more than two groups).
    public let rocAUC: Double
    /// `high` at or above `max(threshold, 0.85)`, `moderate` above the threshold, else `low`
    /// (the reference's mapping), for the better of the two probes.
    public let risk: RiskLevel
    /// The quadratic probe's result.
    public let nonlinear: NonlinearProbe
    /// Rows the probes were trained on.
    public let trainCount: Int
    /// Rows held out for scoring.
    public let testCount: Int

    /// The quadratic probe's result.
    public struct NonlinearProbe: Sendable, Equatable {
        /// The model's name.
        public let model: String
        /// Its holdout F1.
        public let value: Double
        /// Its holdout accuracy.
        public let accuracy: Double
        /// Whether its score exceeds the threshold.
        public let detected: Bool
    }

    /// The linear probe alone crossed the threshold (the reference's verdict).
    public var linearDetected: Bool { value > threshold }

    /// The reference's risk: the linear probe's score alone.
    public var linearRisk: RiskLevel { Probe.risk(value, threshold: threshold) }
}

/// Settings of the probes.
public struct ProbeOptions: Sendable {
    /// The F1 above which a probe flags a shortcut.
    public var threshold = 0.7
    /// The held-out share of the rows.
    public var testSize = 0.2
    /// Inverse L2 strength of the logistic regression (scikit-learn's `C`).
    public var c = 1.0
    /// Iterations of the L-BFGS solver.
    public var maxIterations = 2000

    /// The reference's defaults.
    public init() {}
}

enum Probe {
    static func run(_ x: Matrix, classes: [Int], classCount: Int, seed: UInt32, options: ProbeOptions) throws -> ProbeResult {
        let (train, test) = try ReferenceSplit.stratified(classes: classes, classCount: classCount, testSize: options.testSize, seed: seed)
        let yTrain = train.map { classes[$0] }
        let yTest = test.map { classes[$0] }

        let trainRows = x.rows(train)
        let (mean, std) = trainRows.columnMoments()
        let xTrain = trainRows.standardized(mean: mean, std: std)
        let xTest = x.rows(test).standardized(mean: mean, std: std)
        let linear = LogisticRegression.fit(xTrain, classes: yTrain, classCount: classCount, c: options.c, maxIterations: options.maxIterations)
        let probabilities = linear.probabilities(xTest)
        let predicted = ClassProbabilities.argmax(probabilities.values, width: probabilities.columns)
        let f1 = Metrics.f1(truth: yTest, predicted: predicted, classCount: classCount)

        let squaredTrain = withSquares(xTrain)
        let (squaredMean, squaredStd) = squaredTrain.columnMoments()
        let quadratic = LogisticRegression.fit(
            squaredTrain.standardized(mean: squaredMean, std: squaredStd), classes: yTrain, classCount: classCount, c: options.c,
            maxIterations: options.maxIterations)
        let quadraticPredicted = quadratic.predict(withSquares(xTest).standardized(mean: squaredMean, std: squaredStd))
        let quadraticF1 = Metrics.f1(truth: yTest, predicted: quadraticPredicted, classCount: classCount)

        let best = max(f1, quadraticF1)
        return ProbeResult(
            metric: "f1", value: f1, threshold: options.threshold, detected: best > options.threshold,
            accuracy: Metrics.accuracy(truth: yTest, predicted: predicted),
            rocAUC: Metrics.rocAUC(truth: yTest, probabilities: probabilities), risk: risk(best, threshold: options.threshold),
            nonlinear: .init(
                model: "quadratic logistic regression (standardized features and their squares)", value: quadraticF1,
                accuracy: Metrics.accuracy(truth: yTest, predicted: quadraticPredicted), detected: quadraticF1 > options.threshold),
            trainCount: train.count, testCount: test.count)
    }

    /// The reference's mapping of a score to a risk.
    static func risk(_ score: Double, threshold: Double) -> RiskLevel {
        score >= max(threshold, 0.85) ? .high : score >= threshold ? .moderate : .low
    }

    /// `[x, x²]` per row.
    static func withSquares(_ x: Matrix) -> Matrix {
        var result = Matrix(zeros: x.rows, 2 * x.columns)
        for i in 0..<x.rows {
            for j in 0..<x.columns {
                let v = x[i, j]
                result[i, j] = v
                result[i, x.columns + j] = v * v
            }
        }
        return result
    }
}

/// Classification scores, as scikit-learn computes them.
enum Metrics {
    static func accuracy(truth: [Int], predicted: [Int]) -> Double {
        guard !truth.isEmpty else { return 0 }
        return Double(zip(truth, predicted).filter { $0 == $1 }.count) / Double(truth.count)
    }

    /// Binary F1 of class 1 for two classes, else the unweighted mean of per-class F1 (a class
    /// with no true or predicted member scores 0, scikit-learn's `zero_division` default).
    static func f1(truth: [Int], predicted: [Int], classCount: Int) -> Double {
        func score(_ c: Int) -> Double {
            var tp = 0, fp = 0, fn = 0
            for (t, p) in zip(truth, predicted) {
                if p == c && t == c { tp += 1 } else if p == c { fp += 1 } else if t == c { fn += 1 }
            }
            let denominator = 2 * tp + fp + fn
            return denominator == 0 ? 0 : Double(2 * tp) / Double(denominator)
        }
        if classCount == 2 { return score(1) }
        return (0..<classCount).map(score).reduce(0, +) / Double(classCount)
    }

    /// Area under the ROC curve: of class 1's probability for two classes, else the mean over
    /// classes of one-vs-rest areas (scikit-learn's `average="macro", multi_class="ovr"`).
    static func rocAUC(truth: [Int], probabilities p: Matrix) -> Double {
        let columns = p.columns == 2 ? [1] : Array(0..<p.columns)
        let areas = columns.map { c in
            binaryAUC(positive: truth.map { $0 == c }, scores: (0..<p.rows).map { p[$0, c] })
        }
        return areas.reduce(0, +) / Double(max(areas.count, 1))
    }

    /// The probability that a positive outscores a negative, ties counting one half: the
    /// Mann–Whitney form of the trapezoidal area under the ROC curve.
    static func binaryAUC(positive: [Bool], scores: [Double]) -> Double {
        let ranks = Ranking.averageRanks(scores).ranks
        let positives = positive.filter { $0 }.count
        let negatives = positive.count - positives
        guard positives > 0, negatives > 0 else { return .nan }
        let rankSum = zip(positive, ranks).reduce(0.0) { $0 + ($1.0 ? $1.1 : 0) }
        return (rankSum - Double(positives * (positives + 1)) / 2) / Double(positives * negatives)
    }
}
