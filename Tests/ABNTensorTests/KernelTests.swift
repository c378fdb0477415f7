import ABNTensor
import ABNTestSupport
import Foundation
import Testing

@Suite("Linear, pooling, loss and optimizer kernels")
struct KernelTests {
    @Test("linear backward equals finite differences")
    func linear() {
        let x = randomTensor([5, 7], seed: 1), w = randomTensor([3, 7], seed: 2), b = randomTensor([3], seed: 3)
        let r = randomTensor([5, 3], seed: 4)
        let y = Tensor(zeros: [5, 3])
        let loss = { () -> Double in
            linearForward(output: y, input: x, weight: w, bias: b)
            return dot(y, r)
        }
        let dx = Tensor(zeros: x.shape), dw = Tensor(zeros: w.shape), db = Tensor(zeros: b.shape)
        linearBackward(dInput: dx, dWeight: dw, dBias: db, dOutput: r, input: x, weight: w)
        for (name, p, g) in [("dInput", x, dx), ("dWeight", w, dw), ("dBias", b, db)] {
            let idx = Array(0..<p.count)
            expectClose(g.array.map(Double.init), numericalGradient(of: loss, at: p, indices: idx, step: 0.5),
                        rtol: 1e-4, atol: 1e-5, name)
        }
    }

    @Test("global average pool forward and backward")
    func averagePool() {
        let x = randomTensor([2, 3, 4, 5], seed: 5), r = randomTensor([2, 3], seed: 6)
        let y = Tensor(zeros: [2, 3])
        let loss = { () -> Double in
            globalAveragePoolForward(output: y, input: x)
            return dot(y, r)
        }
        _ = loss()
        for t in 0..<6 {
            let want = (0..<20).reduce(0.0) { $0 + Double(x[flat: t * 20 + $1]) } / 20
            #expect(abs(Double(y[flat: t]) - want) < 1e-6)
        }
        let dx = Tensor(zeros: x.shape)
        globalAveragePoolBackward(dInput: dx, dOutput: r)
        expectClose(dx.array.map(Double.init), numericalGradient(of: loss, at: x, indices: Array(0..<x.count), step: 0.5),
                    rtol: 1e-4, atol: 1e-6, "dInput")
    }

    @Test("argmax takes the first of equal maxima, in a row or across strided planes")
    func argmaxFirstOfEqual() {
        let values: [Float] = [1, 5, 2, 5, 0, 7]
        values.withUnsafeBufferPointer { v in
            #expect(argmax(v.baseAddress!, count: 4) == 1)
            #expect(argmax(v.baseAddress!, count: 6) == 5)
            #expect(argmax(v.baseAddress! + 1, count: 3, stride: 2) == 2)  // 5, 5, 7
            #expect(argmax(v.baseAddress!, count: 2, stride: 3) == 1)  // 1, 5
            #expect(argmax(v.baseAddress! + 4, count: 1) == 0)
        }
    }

    @Test("softmax cross-entropy: value, normalizer and gradient")
    func crossEntropy() {
        let logits = randomTensor([4, 5], seed: 9, scale: 3)
        let labels = [0, 3, 4, 1]
        let dLogits = Tensor(zeros: logits.shape)
        let value = softmaxCrossEntropy(dLogits: dLogits, logits: logits, labels: labels, normalizer: 10)
        var want = 0.0
        for i in 0..<4 {
            let row = (0..<5).map { Double(logits[flat: i * 5 + $0]) }
            want += log(row.map(exp).reduce(0, +)) - row[labels[i]]
        }
        #expect(abs(value - want / 10) < 1e-6)
        let loss = { softmaxCrossEntropy(dLogits: nil, logits: logits, labels: labels, normalizer: 10) }
        expectClose(dLogits.array.map(Double.init), numericalGradient(of: loss, at: logits, indices: Array(0..<20), step: 1e-2),
                    rtol: 1e-3, atol: 1e-4, "dLogits")
    }

    @Test("residual add and gradient accumulation")
    func residualAdd() {
        let a = randomTensor([2, 3, 2, 2], seed: 10), b = randomTensor([2, 3, 2, 2], seed: 11)
        let sum = a.clone()
        addInPlace(sum, b)
        expectClose(sum.array, zip(a.array, b.array).map { $0 + $1 }, rtol: 0, atol: 0, "a + b")
    }

    @Test("SGD follows PyTorch's update: coupled weight decay, momentum, Nesterov")
    func sgd() {
        for nesterov in [false, true] {
            let s = SGDSettings(learningRate: 0.1, momentum: 0.9, nesterov: nesterov, weightDecay: 0.01)
            var p: [Float] = [1, -2], v: [Float] = [0, 0]
            let grads: [[Float]] = [[0.5, 0.25], [-1, 2]]
            // reference: PyTorch's SGD step written out in Double
            var pr: [Double] = [1, -2], vr: [Double] = [0, 0]
            for g in grads {
                for i in 0..<2 {
                    let d = Double(g[i]) + 0.01 * pr[i]
                    vr[i] = 0.9 * vr[i] + d
                    pr[i] -= 0.1 * (nesterov ? d + 0.9 * vr[i] : vr[i])
                }
                g.withUnsafeBufferPointer { gp in
                    sgdStep(parameters: &p, velocity: &v, gradients: gp.baseAddress!, count: 2, settings: s)
                }
            }
            expectClose(p.map(Double.init), pr, rtol: 1e-6, atol: 1e-7, "parameters, nesterov \(nesterov)")
        }
    }

    @Test("the vector levels this processor lacks are reported as not run")
    func missingLevels() throws {
        let missing = VectorLevel.all.filter { !VectorLevel.supported.contains($0) }
        if !missing.isEmpty {
            print("Vector levels: skipped: this processor lacks \(missing.joined(separator: ", ")); only \(VectorLevel.supported) ran")
            try Test.cancel("skipped: this processor lacks \(missing.joined(separator: ", ")): the kernels of that level were not run here")
        }
        #expect(VectorLevel.supported == VectorLevel.all)
    }

    @Test("average pooling, SGD and plane sums agree bit for bit at every vector level the processor runs")
    func vectorLevels() {
        withProcessSettings {
            // sizes with vector bodies and tails: 37 planes of 9x11, sums over 4096 + 21 values
            let x = randomTensor([37, 9, 11], seed: 12)
            let p0 = randomTensor([1000], seed: 14), g = randomTensor([1000], seed: 15)
            let long = randomTensor([4096 + 21], seed: 16, scale: 3)
            let initial = VectorLevel.current
            var results: [String: [Float]] = [:], sums: [String: [Double]] = [:]
            for level in VectorLevel.supported {
                #expect(VectorLevel.select(level))
                let mean = Tensor(zeros: [1, 37])
                globalAveragePoolForward(output: mean, input: Tensor(x.array, shape: [1, 37, 9, 11]))
                var p = p0.array, v = [Float](repeating: 0.5, count: 1000)
                for nesterov in [false, true] {
                    sgdStep(parameters: &p, velocity: &v, gradients: g.data, count: 1000,
                            settings: SGDSettings(learningRate: 0.1, momentum: 0.9, nesterov: nesterov, weightDecay: 1e-3))
                }
                results[level] = mean.array + p + v
                sums[level] = [laneSum(long.data, count: long.count), laneSumOfSquares(long.data, count: long.count, around: 0.25)]
            }
            VectorLevel.select(initial)
            for level in VectorLevel.supported {
                #expect(results[level] == results["baseline"], "\(level) differs from baseline")
                #expect(sums[level] == sums["baseline"], "\(level) sums differ from baseline")
            }
            // and the sums are right (Double reference)
            let values = long.array.map(Double.init)
            let want = [values.reduce(0, +), values.reduce(0) { $0 + ($1 - 0.25) * ($1 - 0.25) }]
            expectClose(sums["baseline"] ?? [], want, rtol: 1e-6, atol: 1e-6, "plane sums")
            // the mean of one plane, checked directly
            let plane: [Float] = Array(x.array[0..<99]), baseline: [Float] = results["baseline"] ?? []
            let planeMean: Double = plane.map(Double.init).reduce(0, +) / 99
            #expect(abs(Double(baseline[0]) - planeMean) < 1e-6)
        }
    }
}
