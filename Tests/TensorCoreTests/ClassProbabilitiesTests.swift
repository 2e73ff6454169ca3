import TensorCore
import Testing

@Suite struct ClassProbabilitiesTests {
    @Test func softmaxIsTakenOnceAndOnlyOnScores() {
        let p = ClassProbabilities.softmax([1.0, 2, 3])
        #expect(abs(p.reduce(0, +) - 1) < 1e-12 && abs(p[2] - 0.6652409557748219) < 1e-12)
        // The case: a Softmax output [.925, .025, .025, .025] softmaxed again reads 45.0%.
        let distribution = [0.925, 0.025, 0.025, 0.025]
        #expect(abs(ClassProbabilities.softmax(distribution)[0] - 0.45) < 1e-3)
        #expect(ClassProbabilities.rows(distribution, width: 4, kind: .auto)[0] == distribution)
        #expect(ClassProbabilities.rows(distribution, width: 4, kind: .probabilities)[0] == distribution)
        #expect(abs(ClassProbabilities.rows(distribution, width: 4, kind: .logits)[0][0] - 0.45) < 1e-3)
        // auto decides per row: scores are softmaxed, distributions kept.
        let mixed = ClassProbabilities.rows([2, 0, 0.5, 0.5], width: 2, kind: .auto)
        #expect(abs(mixed[0][0] - 0.8807970779778823) < 1e-12 && mixed[1] == [0.5, 0.5])
        #expect(!ClassProbabilities.isDistribution([1.2, -0.2]) && !ClassProbabilities.isDistribution([0.5, 0.4]))
        #expect(ClassProbabilities.argmax([0.2, 0.4, 0.4]) == 1)
    }
}
