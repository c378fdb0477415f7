import Foundation

/// `train.schedule`: how the learning rate falls after the warmup.
public enum ScheduleKind: String, ConfigChoice {
    /// Half a cosine from the peak to 0.
    case cosine
    /// peak * (1 - t)^power, t the fraction of the steps after the warmup.
    case poly
    /// The peak throughout.
    case constant
}

/// Learning rate per step: linear warmup to the peak over `warmupSteps`, then cosine decay to
/// 0, polynomial decay, or constant, over the remaining steps of the run.
public struct LearningRateSchedule: Sendable {
    public let peak: Float
    public let warmupSteps: Int
    public let totalSteps: Int
    public let kind: ScheduleKind
    public let power: Float

    public init(peak: Float, warmupSteps: Int, totalSteps: Int, kind: ScheduleKind, power: Float = 0.9) {
        self.peak = peak
        self.warmupSteps = min(warmupSteps, max(0, totalSteps - 1))
        self.totalSteps = totalSteps
        self.kind = kind
        self.power = power
    }

    public func rate(step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step + 1) / Float(warmupSteps + 1) }
        let span = max(1, totalSteps - warmupSteps)
        let t = min(1, Double(step - warmupSteps) / Double(span))
        switch kind {
        case .cosine: return peak * Float(0.5 * (1 + cos(Double.pi * t)))
        case .poly: return peak * Float(pow(1 - t, Double(power)))
        case .constant: return peak
        }
    }
}
