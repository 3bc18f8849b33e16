import Foundation
import Learning
import Testing

/// Every metric against values computed by hand (see the comments).
@Suite struct MetricsTests {
    func close(_ a: Double?, _ b: Double, _ tolerance: Double = 1e-12) -> Bool { a.map { abs($0 - b) <= tolerance } ?? false }

    @Test func binaryClassification() {
        // y = 1,0,1,1,0,0; p(1) = .9,.4,.6,.3,.6,.1 → predicted 1,0,1,0,1,0: TP 2, FP 1, FN 1, TN 2.
        let labels: [Int32] = [1, 0, 1, 1, 0, 0]
        let p1 = [0.9, 0.4, 0.6, 0.3, 0.6, 0.1]
        let probabilities = p1.flatMap { [1 - $0, $0] }
        let metrics = Metrics.classification(labels: labels, probabilities: probabilities, classCount: 2)
        #expect(close(metrics["accuracy"], 4.0 / 6))
        #expect(close(metrics["precision"], 2.0 / 3))
        #expect(close(metrics["recall"], 2.0 / 3))
        #expect(close(metrics["f1"], 2.0 / 3))
        // Pairs (positive, negative) ranked right: 3 + (1 + 0.5 tie + 1) + 1 = 6.5 of 9.
        #expect(close(metrics["auc"], 6.5 / 9))
        // Mean of -ln p(true class): .9, .6 (=1-.4), .6, .3, .4 (=1-.6), .9.
        #expect(close(metrics["logLoss"], -(2 * log(0.9) + 2 * log(0.6) + log(0.3) + log(0.4)) / 6))
    }

    @Test func multiclassIsMacroAveraged() {
        // Predicted 0, 1, 1, 2 for labels 0, 1, 2, 0.
        let labels: [Int32] = [0, 1, 2, 0]
        let probabilities = [0.7, 0.2, 0.1, 0.1, 0.5, 0.4, 0.2, 0.5, 0.3, 0.3, 0.3, 0.4]
        let metrics = Metrics.classification(labels: labels, probabilities: probabilities, classCount: 3)
        #expect(close(metrics["accuracy"], 0.5))
        // Per class P/R: (1, .5), (.5, 1), (0, 0).
        #expect(close(metrics["precision"], 0.5))
        #expect(close(metrics["recall"], 0.5))
        #expect(close(metrics["f1"], (2.0 / 3 + 2.0 / 3 + 0) / 3))
        // One-vs-rest AUC per class: 1, 2.5/3, 1/3.
        #expect(close(metrics["auc"], (1 + 2.5 / 3 + 1.0 / 3) / 3))
        #expect(close(metrics["logLoss"], -(log(0.7) + log(0.5) + log(0.3) + log(0.3)) / 4))
    }

    @Test func regression() {
        let metrics = Metrics.regression(targets: [3, -1, 2, 7], predictions: [2.5, 0, 2, 8])
        // Errors .5, -1, 0, -1: squares sum 2.25, absolute sum 2.5; mean 2.75, total sum of squares 32.75.
        #expect(close(metrics["rmse"], 0.75))
        #expect(close(metrics["mae"], 0.625))
        #expect(close(metrics["r2"], 1 - 2.25 / 32.75))
    }

    @Test func aucWithOneClassIsUndefined() {
        #expect(Metrics.auc(scores: [0.1, 0.9], positive: [true, true]) == nil)
        #expect(Metrics.auc(scores: [0.1, 0.9], positive: [false, true]) == 1)
    }

    @Test func directions() {
        #expect(Metrics.higherIsBetter("auc"))
        #expect(!Metrics.higherIsBetter("logLoss"))
        #expect(!Metrics.higherIsBetter("rmse"))
    }
}
