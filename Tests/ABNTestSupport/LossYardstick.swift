import Foundation
import Testing

/// Judges the losses a run logged against one process's, with a yardstick measured in the same
/// test: a second one-process run in another valid order (e.g. its products on the other GEMM
/// library, its batch statistics merged image by image) shows how far rounding alone carries
/// the losses of this model on this processor, step by step. A run passes when its distance
/// from the reference at every step is within `floorMultiple` times the largest divergence of
/// the two references so far, plus `atol` times the loss; a negative control must miss that
/// by `decisiveMargin` times at some step.
public struct LossYardstick {
    public static let floorMultiple = 10.0, atol = 1e-6, decisiveMargin = 100.0

    /// The one-process losses, and those of the same run in another valid order.
    public let reference, floor: [Double]

    public init(reference: [Double], floor: [Double]) {
        self.reference = reference
        self.floor = floor
    }

    /// The tolerance of each step.
    public var tolerances: [Double] {
        var largest = 0.0
        return zip(reference, floor).map { want, other in
            largest = max(largest, abs(other - want))
            return Self.floorMultiple * largest + Self.atol * abs(want)
        }
    }

    /// The largest |losses - reference| / tolerance over the steps (infinite when the counts differ).
    public func ratio(_ losses: [Double]) -> Double {
        guard losses.count == reference.count, !reference.isEmpty else { return .infinity }
        return zip(zip(losses, reference), tolerances).map { pair, tolerance in abs(pair.0 - pair.1) / tolerance }.max()!
    }

    /// Steps, losses and distances, for a failure's message.
    public func table(_ losses: [Double], control: [Double]) -> String {
        zip(reference.indices, tolerances).map { t, tolerance in
            String(format: "step %d: one process %.8f, floor %.2e, tolerance %.2e, run %.2e, control %.2e", t + 1, reference[t],
                   abs(floor[t] - reference[t]), tolerance, t < losses.count ? abs(losses[t] - reference[t]) : .nan,
                   t < control.count ? abs(control[t] - reference[t]) : .nan)
        }.joined(separator: "\n")
    }

    /// Expects `losses` within the tolerance and `control` decisively outside it.
    public func expectMatch(_ losses: [Double], control: [Double], sourceLocation: SourceLocation = #_sourceLocation) {
        let run = ratio(losses), margin = ratio(control)
        print(String(format: "losses: worst %.3g of the tolerance; the control %.3g times it", run, margin))
        #expect(run <= 1, "losses outside the measured tolerance:\n\(table(losses, control: control))", sourceLocation: sourceLocation)
        #expect(margin >= Self.decisiveMargin && margin.isFinite,
                "the control is not decisively outside the tolerance:\n\(table(losses, control: control))", sourceLocation: sourceLocation)
    }
}
