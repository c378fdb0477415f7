import Foundation

/// Which library computes each product shape: a table (measured at start-up, see `measure`),
/// and one library for the shapes it does not list. A run installs its choice in
/// `RunContext.process.gemm`; a choice fixed for a run keeps its results deterministic, only
/// its speed depends on it.
public struct GEMMChoice: Sendable, Equatable {
    /// The library of each listed shape.
    public var table: [GEMMShape: GEMMLibrary]
    /// The library of the shapes `table` does not list.
    public var otherwise: GEMMLibrary

    public init(_ table: [GEMMShape: GEMMLibrary] = [:], otherwise: GEMMLibrary = .openblas) {
        self.table = table
        self.otherwise = otherwise
    }

    /// The choice of each timing (`Timing.choice`), OpenBLAS for other shapes.
    public init(timings: [Timing]) {
        self.init(Dictionary(timings.map { ($0.shape, $0.choice()) }, uniquingKeysWith: { first, _ in first }))
    }

    /// The library of `shape`.
    public func library(for shape: GEMMShape) -> GEMMLibrary { table[shape] ?? otherwise }

    /// One shape's timing: median GFLOP/s of each library, single-threaded.
    public struct Timing: Codable, Sendable {
        public let shape: GEMMShape
        /// GFLOP/s by library name ("openblas", "onednn").
        public let gflops: [String: Double]

        public init(shape: GEMMShape, gflops: [String: Double]) {
            self.shape = shape
            self.gflops = gflops
        }

        /// oneDNN where it beats OpenBLAS by at least `margin` (a fraction), else OpenBLAS.
        public func choice(margin: Double = 0.05) -> GEMMLibrary {
            (gflops[GEMMLibrary.onednn.rawValue] ?? 0) >= (1 + margin) * (gflops[GEMMLibrary.openblas.rawValue] ?? .infinity) ? .onednn : .openblas
        }
    }

    /// Times each shape with each library on one thread, `rounds` rounds alternating the
    /// libraries, each round about `seconds` of products per library; medians.
    public static func measure(_ shapes: [GEMMShape], rounds: Int = 5, seconds: Double = 0.002) -> [Timing] {
        var rng = SplitMix64(seed: 11)
        return shapes.map { shape in
            let operands = shape.operands(rng: &rng)
            func run(_ library: GEMMLibrary, _ calls: Int) -> Double {
                let t0 = monotonicSeconds()
                for _ in 0..<calls { operands.multiply(shape, library: library) }
                return shape.flops * Double(calls) / max(1e-9, monotonicSeconds() - t0) / 1e9
            }
            for library in GEMMLibrary.allCases { _ = run(library, 1) }  // warm-up
            let calls = max(1, Int(seconds * 5e10 / shape.flops))  // at about 50 GFLOP/s
            var samples: [GEMMLibrary: [Double]] = [:]
            for _ in 0..<rounds {
                for library in GEMMLibrary.allCases { samples[library, default: []].append(run(library, calls)) }
            }
            return Timing(shape: shape, gflops: Dictionary(uniqueKeysWithValues: samples.map { ($0.key.rawValue, median($0.value)) }))
        }
    }
}
