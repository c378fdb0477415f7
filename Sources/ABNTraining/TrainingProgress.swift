import Foundation

/// Rank 0's view of a training run, with the elapsed time and the ETA of the run and of the
/// epoch. Bar style: a bar redrawn after every step. Lines style: the metrics line of every
/// `train.log_every` steps. Both print evaluation results and notes (checkpoints) as lines.
final class TrainingProgress {
    private let bar: ProgressBar
    private let totalSteps: Int
    private let stepsPerEpoch: Int
    /// The step this process stops at (the ETA's target).
    private let lastStep: Int
    private var step: Int

    /// A run of `totalSteps` that this process trains from `firstStep` to `lastStep`.
    init(style: ProgressStyle, firstStep: Int, lastStep: Int, totalSteps: Int, stepsPerEpoch: Int) {
        bar = ProgressBar(total: lastStep, style: style, startingAt: firstStep)
        self.totalSteps = totalSteps
        self.stepsPerEpoch = stepsPerEpoch
        self.lastStep = lastStep
        step = firstStep
    }

    /// After each step: `loss` is the mean over the steps since the last metrics line.
    func stepped(to step: Int, loss: Double) {
        self.step = step
        bar.advance(to: step)
        bar.redraw(head: "step \(step)/\(totalSteps)", tail: [bar.elapsedText, bar.etaText, epochText, String(format: "loss %.4f", loss)])
    }

    /// A metrics line (step, epoch, loss, lr, images_per_s): printed in lines style.
    func logged(_ line: [String: Any]) {
        guard !bar.drawsBar else { return }
        let text = String(format: "step %d/%d  epoch %.2f  loss %.4f  lr %.4g  %.0f img/s", line["step"] as! Int, totalSteps,
                          line["epoch"] as! Double, line["loss"] as! Double, line["lr"] as! Double, line["images_per_s"] as! Double)
        bar.line("\(text)  \(bar.elapsedText)  \(bar.etaText)  \(epochText)")
    }

    /// An evaluation's result after `step` (at `epoch`, fractional).
    func evaluated(_ result: EvaluationResult, step: Int, epoch: Double) {
        bar.line(String(format: "eval  step %d  epoch %.2f  ", step, epoch) + result.summary)
    }

    func note(_ text: String) { bar.line(text) }

    func finish() { bar.finish() }

    /// "epoch 2/33 ETA 4:10": the epoch of the step just done and the time to its end (or to
    /// `lastStep`, when that comes first).
    private var epochText: String {
        let epoch = max(0, step - 1) / stepsPerEpoch
        let end = min(lastStep, (epoch + 1) * stepsPerEpoch)
        let epochs = (totalSteps + stepsPerEpoch - 1) / stepsPerEpoch
        return "epoch \(epoch + 1)/\(epochs) ETA " + Pace.clock(bar.secondsLeft(units: end - step))
    }
}
