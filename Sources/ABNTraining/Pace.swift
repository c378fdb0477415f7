/// The pace of a task counted in units (steps, scenes): seconds per unit so far, and from it
/// the time the units still to do will take. Times are seconds on any one clock.
public struct Pace: Sendable {
    private let origin: (done: Int, time: Double)
    private var first: (done: Int, time: Double)?
    private var latest: (done: Int, time: Double)?

    /// A task at `done` units at `time` (a resumed run starts past 0).
    public init(done: Int, at time: Double) {
        origin = (done, time)
    }

    /// Notes that `done` units are complete at `time`.
    public mutating func record(done: Int, at time: Double) {
        if first == nil { first = (done, time) }
        latest = (done, time)
    }

    /// Seconds per unit: from the first record to the latest once units were done between
    /// them, which leaves out a slow first unit (a first training step allocates its scratch
    /// and may time GEMMs); until then from the origin. nil before any unit is done.
    public var secondsPerUnit: Double? {
        guard let first, let latest else { return nil }
        let start = latest.done > first.done ? first : origin
        guard latest.done > start.done else { return nil }
        return max(0, latest.time - start.time) / Double(latest.done - start.done)
    }

    /// Seconds that `units` more units take at this pace (nil while it is unknown).
    public func secondsLeft(units: Int) -> Double? {
        secondsPerUnit.map { Double(max(0, units)) * $0 }
    }

    /// Seconds from the origin to `time`.
    public func elapsed(at time: Double) -> Double { max(0, time - origin.time) }

    /// A duration as a clock: "0:07", "12:34", "1:02:03"; "--" for nil (not known yet).
    public static func clock(_ seconds: Double?) -> String {
        guard let seconds, seconds.isFinite else { return "--" }
        let whole = Int(max(0, seconds).rounded())
        let (hours, minutes, secs) = (whole / 3600, whole / 60 % 60, whole % 60)
        return hours > 0 ? String(format: "%d:%02d:%02d", hours, minutes, secs) : String(format: "%d:%02d", minutes, secs)
    }
}
