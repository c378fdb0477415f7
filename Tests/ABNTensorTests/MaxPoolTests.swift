import ABNTensor
import ABNTestSupport
import Testing

/// The flat input index of each output's winner, (N, C, OH, OW) row-major: among a window's
/// in-bounds values, the last NaN if there is one, else the first equal to the largest.
private func referenceWinners(_ x: [Float], shape: [Int], _ g: MaxPoolGeometry) -> [Int] {
    let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3])
    let oh = (h + 2 * g.padding - g.kernel) / g.stride + 1, ow = (w + 2 * g.padding - g.kernel) / g.stride + 1
    var winners: [Int] = []
    for plane in 0..<planes {
        for r in 0..<oh {
            for c in 0..<ow {
                var window: [Int] = []
                for i in 0..<g.kernel {
                    for j in 0..<g.kernel {
                        let (row, column) = (r * g.stride - g.padding + i, c * g.stride - g.padding + j)
                        if (0..<h).contains(row) && (0..<w).contains(column) { window.append((plane * h + row) * w + column) }
                    }
                }
                if let nan = window.last(where: { x[$0].isNaN }) {
                    winners.append(nan)
                } else {
                    let largest = window.map { x[$0] }.max()!
                    winners.append(window.first { x[$0] == largest }!)
                }
            }
        }
    }
    return winners
}

/// Forward and backward by the reference winners: dInput zeroed, then each dOutput added at its
/// winner in output row-major order.
private func referencePool(_ x: Tensor, _ dy: Tensor, _ g: MaxPoolGeometry) -> (output: [Float], dInput: [Float]) {
    let values = x.array, winners = referenceWinners(values, shape: x.shape, g)
    var dx = [Float](repeating: 0, count: x.count)
    for (o, winner) in winners.enumerated() { dx[winner] += dy[flat: o] }
    return (winners.map { values[$0] }, dx)
}

private func pool(_ x: Tensor, _ dy: Tensor, _ g: MaxPoolGeometry) -> (output: [Float], dInput: [Float]) {
    let y = Tensor(uninitialized: g.outputShape(for: x.shape)), dx = Tensor(uninitialized: x.shape)
    dx.data.update(repeating: .nan, count: dx.count)  // overwritten, not added to
    maxPool2dForward(output: y, input: x, geometry: g)
    maxPool2dBackward(dInput: dx, dOutput: dy, input: x, geometry: g)
    return (y.array, dx.array)
}

private func tensor(_ shape: [Int], seed: UInt64, _ value: (inout SplitMix64) -> Float) -> Tensor {
    var rng = SplitMix64(seed: seed)
    return Tensor((0..<shape.reduce(1, *)).map { _ in value(&rng) }, shape: shape)
}

/// Output gradients of small integers: every sum of them is exact.
private func integerGradient(_ shape: [Int], seed: UInt64) -> Tensor {
    tensor(shape, seed: seed) { Float(Int($0.next() % 17) - 8) }
}

private func expectBitwise(_ got: [Float], _ want: [Float], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let mismatch = zip(got, want).enumerated().first { $0.element.0.bitPattern != $0.element.1.bitPattern }
    #expect(got.count == want.count && mismatch == nil,
            "\(what): \(got.count) values, want \(want.count); first difference \(mismatch.map { "at [\($0.offset)]: got \($0.element.0), want \($0.element.1)" } ?? "none")",
            sourceLocation: sourceLocation)
}

private let geometries = [MaxPoolGeometry(kernel: 3, stride: 2, padding: 1), MaxPoolGeometry(kernel: 2, stride: 2, padding: 0),
                          MaxPoolGeometry(kernel: 3, stride: 1, padding: 1)]

/// Odd and even sizes, a single pixel, and rows wide enough for the 16-output vector blocks
/// (with a block moved back to the row's end).
private let shapes = [[1, 1, 1, 1], [2, 3, 7, 9], [1, 2, 8, 8], [1, 1, 6, 37], [1, 2, 5, 64], [2, 2, 11, 70], [1, 1, 2, 100]]

/// Inputs: continuous; few distinct values (ties); signed zeros and ones (ties between -0 and
/// +0); negative everywhere (the padding must not win); and a tenth NaNs with distinct payloads.
private let inputs: [(name: String, value: @Sendable (inout SplitMix64) -> Float)] = [
    ("uniform", { $0.nextUniform() * 2 - 1 }),
    ("ties", { Float(Int($0.next() % 4)) }),
    ("signed zeros", { [Float(0), -0.0, 1, -1][Int($0.next() % 4)] }),
    ("negative", { -1 - 2 * $0.nextUniform() }),
    ("NaN", { rng in rng.next() % 10 == 0 ? Float(nan: UInt32(rng.next() % 1000), signaling: false) : rng.nextUniform() }),
]

@Suite("MaxPool: 2-D max pooling forward and backward")
struct MaxPoolTests {
    @Test("output shapes follow floor((H + 2p - k) / s) + 1")
    func outputShapes() {
        #expect(MaxPoolGeometry(kernel: 3, stride: 2, padding: 1).outputShape(for: [2, 64, 256, 256]) == [2, 64, 128, 128])
        #expect(MaxPoolGeometry(kernel: 3, stride: 2, padding: 1).outputShape(for: [1, 1, 7, 1]) == [1, 1, 4, 1])
        #expect(MaxPoolGeometry(kernel: 2, stride: 2, padding: 0).outputShape(for: [1, 3, 5, 4]) == [1, 3, 2, 2])
        #expect(MaxPoolGeometry(kernel: 3, stride: 1, padding: 1).outputShape(for: [1, 1, 1, 1]) == [1, 1, 1, 1])
        #expect(MaxPoolGeometry(kernel: 2, stride: 2, padding: 0).outputSize(1) == 0)
    }

    @Test("equal values: the first in row-major window order takes the gradient")
    func tiesByHand() {
        let x = Tensor([Float](repeating: 1, count: 9), shape: [1, 1, 3, 3])
        let (y, dx) = pool(x, Tensor([1, 2, 3, 4], shape: [1, 1, 2, 2]), MaxPoolGeometry(kernel: 3, stride: 2, padding: 1))
        #expect(y == [1, 1, 1, 1])
        #expect(dx == [1, 2, 0, 3, 4, 0, 0, 0, 0])
    }

    @Test("a NaN wins its window, the last one when several")
    func nanByHand() {
        let first = Float(nan: 1, signaling: false), second = Float(nan: 2, signaling: false)
        let x = Tensor([first, 5, second, 1, 2, 3, 4, 6], shape: [1, 2, 2, 2])
        let (y, dx) = pool(x, Tensor([7, 9], shape: [1, 2, 1, 1]), MaxPoolGeometry(kernel: 2, stride: 2, padding: 0))
        expectBitwise(y, [second, 6], "output")
        #expect(dx == [0, 0, 7, 0, 0, 0, 0, 9])
    }

    @Test("forward and backward equal the reference loop bit for bit", arguments: geometries)
    func matchesReference(_ g: MaxPoolGeometry) {
        for (s, shape) in shapes.enumerated() where g.outputSize(shape[2]) >= 1 && g.outputSize(shape[3]) >= 1 {
            for (i, input) in inputs.enumerated() {
                let x = tensor(shape, seed: UInt64(100 * s + i), input.value)
                let dy = tensor(g.outputShape(for: shape), seed: UInt64(100 * s + i + 50)) { $0.nextUniform() * 2 - 1 }
                let got = pool(x, dy, g), want = referencePool(x, dy, g)
                let what = "k\(g.kernel) s\(g.stride) p\(g.padding), \(shape), \(input.name)"
                expectBitwise(got.output, want.output, "\(what): output")
                expectBitwise(got.dInput, want.dInput, "\(what): dInput")
                if input.name == "negative" { #expect(got.output.allSatisfy { (-3 ... -1).contains($0) }, "\(what): the padding won") }
            }
        }
    }

    @Test("the sum of dInput equals the sum of dOutput", arguments: geometries)
    func gradientSum(_ g: MaxPoolGeometry) {
        for (s, shape) in shapes.enumerated() where g.outputSize(shape[2]) >= 1 && g.outputSize(shape[3]) >= 1 {
            let x = tensor(shape, seed: UInt64(s)) { Float(Int($0.next() % 3)) }
            let dy = integerGradient(g.outputShape(for: shape), seed: UInt64(s + 10))
            let dx = pool(x, dy, g).dInput
            #expect(dx.reduce(0, +) == dy.array.reduce(0, +), "k\(g.kernel) s\(g.stride) p\(g.padding), \(shape)")
        }
    }

    @Test("results do not depend on the thread count or the vector level")
    func settingsIndependent() {
        withProcessSettings {
            let g = MaxPoolGeometry(kernel: 3, stride: 2, padding: 1), shape = [4, 40, 21, 70]
            let x = tensor(shape, seed: 7) { Float(Int($0.next() % 5)) }
            let dy = tensor(g.outputShape(for: shape), seed: 8) { $0.nextUniform() }
            let initialThreads = Parallel.threadCount, initialLevel = VectorLevel.current
            let baseline = pool(x, dy, g)
            for level in VectorLevel.supported {
                #expect(VectorLevel.select(level))
                for threads in [1, 2, 3] {
                    Parallel.setThreadCount(threads)
                    let got = pool(x, dy, g)
                    expectBitwise(got.output, baseline.output, "\(level), \(threads) threads: output")
                    expectBitwise(got.dInput, baseline.dInput, "\(level), \(threads) threads: dInput")
                }
            }
            Parallel.setThreadCount(initialThreads)
            VectorLevel.select(initialLevel)
        }
    }
}
