import ABNTensor
import Foundation
import Testing

private let processSettings = NSLock()

/// Runs `body` holding the one lock of the process-wide settings (the vector level, the engine's
/// thread count, the GEMM choice): tests run in parallel, so a test that changes a setting, or compares results
/// bit for bit across runs that a changed setting would alter, takes it.
public func withProcessSettings<T>(_ body: () throws -> T) rethrows -> T {
    processSettings.lock()
    defer { processSettings.unlock() }
    return try body()
}

/// Largest absolute and relative error of `got` against `want`, and where.
public struct Discrepancy: CustomStringConvertible {
    var maxAbs = 0.0
    var maxRel = 0.0
    var worstIndex = -1
    var worstGot = 0.0
    var worstWant = 0.0
    var failures = 0

    public var description: String {
        "max abs \(maxAbs), max rel \(maxRel); worst at [\(worstIndex)]: got \(worstGot), want \(worstWant); \(failures) element(s) out of tolerance"
    }
}

/// Checks |got - want| <= atol + rtol * |want| element-wise and reports the worst element
/// at the caller's source location.
public func expectClose(_ got: [Double], _ want: [Double], rtol: Double, atol: Double, _ what: String = "",
                 sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(got.count == want.count, "\(what): \(got.count) values, want \(want.count)", sourceLocation: sourceLocation)
    var d = Discrepancy()
    var worstExcess = -Double.infinity
    for i in 0..<min(got.count, want.count) {
        let abs = Swift.abs(got[i] - want[i])
        let rel = abs / max(Swift.abs(want[i]), 1e-30)
        d.maxAbs = max(d.maxAbs, abs)
        d.maxRel = max(d.maxRel, rel)
        let excess = abs - (atol + rtol * Swift.abs(want[i]))
        if excess > 0 || !got[i].isFinite { d.failures += 1 }
        if excess > worstExcess || !got[i].isFinite {
            worstExcess = got[i].isFinite ? excess : .infinity
            d.worstIndex = i; d.worstGot = got[i]; d.worstWant = want[i]
        }
    }
    #expect(d.failures == 0, "\(what): \(d)", sourceLocation: sourceLocation)
}

public func expectClose(_ got: [Float], _ want: [Float], rtol: Double, atol: Double, _ what: String = "",
                 sourceLocation: SourceLocation = #_sourceLocation) {
    expectClose(got.map(Double.init), want.map(Double.init), rtol: rtol, atol: atol, what, sourceLocation: sourceLocation)
}

/// A tensor of uniform values in [-1, 1) from a seeded generator.
public func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
    var rng = SplitMix64(seed: seed)
    let t = Tensor(uninitialized: shape)
    t.fillUniform(-scale, scale, using: &rng)
    return t
}

/// Central finite-difference derivatives of `loss` with respect to chosen elements of `x`.
public func numericalGradient(of loss: () -> Double, at x: Tensor, indices: [Int], step h: Float) -> [Double] {
    indices.map { i in
        let saved = x[flat: i]
        x[flat: i] = saved + h
        let plus = loss()
        x[flat: i] = saved - h
        let minus = loss()
        x[flat: i] = saved
        return (plus - minus) / (2 * Double(h))
    }
}

/// sum(t * weights) in Double: a scalar loss whose gradient with respect to t is `weights`.
public func dot(_ t: Tensor, _ weights: Tensor) -> Double {
    var s = 0.0
    for i in 0..<t.count { s += Double(t[flat: i]) * Double(weights[flat: i]) }
    return s
}

/// `count` distinct-ish sample indices spread over 0..<n (all of them when n <= count).
public func sampleIndices(_ n: Int, count: Int, seed: UInt64) -> [Int] {
    if n <= count { return Array(0..<n) }
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in Int(rng.next() % UInt64(n)) }
}
