import ABNTraining
import Testing

@Suite("Pace and ETA")
struct PaceTests {
    @Test("seconds per unit: unknown before a unit is done, then from the origin, then from the first record")
    func secondsPerUnit() {
        var pace = Pace(done: 0, at: 100)
        #expect(pace.secondsPerUnit == nil && pace.secondsLeft(units: 5) == nil)
        pace.record(done: 1, at: 106)  // a slow first step: 6 s
        #expect(pace.secondsPerUnit == 6)
        #expect(pace.secondsLeft(units: 10) == 60)
        pace.record(done: 3, at: 110)  // then 2 s a step: the first one no longer counts
        #expect(pace.secondsPerUnit == 2)
        #expect(pace.secondsLeft(units: 7) == 14)
        #expect(pace.secondsLeft(units: 0) == 0)
        #expect(pace.elapsed(at: 112.5) == 12.5)
    }

    @Test("a resumed task counts from where it started; a record without progress gives no pace")
    func resumed() {
        var pace = Pace(done: 500, at: 0)
        pace.record(done: 500, at: 3)
        #expect(pace.secondsPerUnit == nil)
        var started = Pace(done: 500, at: 0)
        started.record(done: 504, at: 2)
        #expect(started.secondsPerUnit == 0.5)
        #expect(started.secondsLeft(units: 1000 - 504) == 248)
    }

    @Test("durations as clocks", arguments: [(nil, "--"), (Double.nan, "--"), (-3, "0:00"), (7, "0:07"), (59.6, "1:00"),
                                              (754, "12:34"), (3723, "1:02:03"), (36000, "10:00:00")] as [(Double?, String)])
    func clock(_ seconds: Double?, _ text: String) {
        #expect(Pace.clock(seconds) == text)
    }
}
