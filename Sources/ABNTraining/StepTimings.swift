/// Timings of one data-parallel training step, in seconds.
public struct StepTimings: Sendable {
    /// The whole step.
    public var total = 0.0
    /// Inside the norm layers' collectives (batch statistics and backward sums).
    public var normSynchronization = 0.0
    /// Waiting for gradient averaging after backward (the part not hidden behind it).
    public var exposedGradientAveraging = 0.0
    /// The rest: forward, backward, optimizer.
    public var compute: Double { total - normSynchronization - exposedGradientAveraging }
}
