import Foundation

/// A small, fast, seedable generator (SplitMix64) for initialization, data order and tests;
/// the same seed gives the same numbers on every platform and rank.
public struct SplitMix64: RandomNumberGenerator, Sendable, Codable, Equatable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    private static let increment: UInt64 = 0x9E37_79B9_7F4A_7C15

    public mutating func next() -> UInt64 {
        state &+= Self.increment
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Moves past `draws` calls of `next()` without computing them.
    public mutating func skip(_ draws: Int) {
        state &+= UInt64(draws) &* Self.increment
    }

    /// Uniform in [0, 1) with 24 random bits.
    public mutating func nextUniform() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// Standard normal (Box-Muller).
    public mutating func nextNormal() -> Float {
        let u1 = max(Double(next() >> 11) * 0x1.0p-53, 1e-300)
        let u2 = Double(next() >> 11) * 0x1.0p-53
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}

/// Mixes values into one 64-bit seed (SplitMix64 finalizer over a running hash).
public func mixSeed(_ values: UInt64...) -> UInt64 {
    var h: UInt64 = 0x243F_6A88_85A3_08D3
    for v in values {
        var g = SplitMix64(seed: h ^ v)
        h = g.next()
    }
    return h
}

extension Tensor {
    /// Fills with normal samples of the given standard deviation.
    public func fillNormal(std: Float = 1, mean: Float = 0, using rng: inout SplitMix64) {
        for i in 0..<count { data[i] = mean + std * rng.nextNormal() }
    }

    /// Fills with uniform samples in [low, high).
    public func fillUniform(_ low: Float, _ high: Float, using rng: inout SplitMix64) {
        for i in 0..<count { data[i] = low + (high - low) * rng.nextUniform() }
    }
}
