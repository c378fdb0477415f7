import ABNTensor
import ABNTestSupport
import Testing

/// Direct convolution in Double, for reference: output (N, outC, outH, outW).
func naiveConvolution(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, _ g: Conv2DGeometry) -> [Double] {
    var out = [Double](repeating: 0, count: g.outputShape.reduce(1, *))
    for n in 0..<g.batch {
        for o in 0..<g.outChannels {
            for oh in 0..<g.outHeight {
                for ow in 0..<g.outWidth {
                    var s = Double(bias?[flat: o] ?? 0)
                    for c in 0..<g.inChannels {
                        for i in 0..<g.kernelHeight {
                            for j in 0..<g.kernelWidth {
                                let ih = oh * g.strideHeight - g.padHeight + i * g.dilationHeight
                                let iw = ow * g.strideWidth - g.padWidth + j * g.dilationWidth
                                guard ih >= 0, ih < g.inHeight, iw >= 0, iw < g.inWidth else { continue }
                                let xv = x[flat: ((n * g.inChannels + c) * g.inHeight + ih) * g.inWidth + iw]
                                let wv = w[flat: ((o * g.inChannels + c) * g.kernelHeight + i) * g.kernelWidth + j]
                                s += Double(xv) * Double(wv)
                            }
                        }
                    }
                    out[((n * g.outChannels + o) * g.outHeight + oh) * g.outWidth + ow] = s
                }
            }
        }
    }
    return out
}

/// Geometries covering kernel sizes, strides, paddings, dilations and non-square inputs.
let convCases: [Conv2DGeometry] = [
    Conv2DGeometry(input: [3, 2, 7, 7], outChannels: 4, kernel: 3, padding: 1),
    Conv2DGeometry(input: [2, 3, 8, 6], outChannels: 5, kernel: 3, stride: 2, padding: 1),
    Conv2DGeometry(input: [2, 2, 9, 9], outChannels: 3, kernel: 3, padding: 2, dilation: 2),
    Conv2DGeometry(input: [3, 4, 6, 6], outChannels: 2, kernel: 1, stride: 2),
    Conv2DGeometry(input: [2, 1, 10, 9], outChannels: 3, kernel: 5, stride: 3, padding: 2),
    Conv2DGeometry(input: [2, 3, 6, 7], outChannels: 2, kernel: (2, 3), stride: (1, 2), padding: (0, 1), dilation: (2, 1)),
    Conv2DGeometry(input: [4, 2, 5, 5], outChannels: 3, kernel: 3),
    // 8+ input channels and stride 1: the input gradient is a transposed convolution
    Conv2DGeometry(input: [2, 8, 6, 5], outChannels: 3, kernel: 3, padding: 1),
    Conv2DGeometry(input: [2, 9, 7, 7], outChannels: 4, kernel: 3, padding: 1, dilation: 2),
    Conv2DGeometry(input: [3, 8, 4, 4], outChannels: 2, kernel: 1),
    // C*kW >= 16 and stride 1: row-shifted lowering (also for the transposed input gradients),
    // with images stacked (budget 1 << 20) except for the last case, whose padding exceeds the
    // kernel's extent
    Conv2DGeometry(input: [2, 6, 7, 6], outChannels: 8, kernel: 3),
    Conv2DGeometry(input: [2, 8, 5, 6], outChannels: 9, kernel: 3, padding: 2),
    Conv2DGeometry(input: [2, 8, 6, 7], outChannels: 6, kernel: (2, 3), padding: (1, 0), dilation: (1, 2)),
    Conv2DGeometry(input: [3, 8, 4, 4], outChannels: 3, kernel: 2, padding: 2),
    // atrous branches on small feature maps: the dilation spans more than the image, so some
    // kernel taps never touch it (row-shifted, and im2col for few channels)
    Conv2DGeometry(input: [2, 8, 3, 2], outChannels: 4, kernel: 3, padding: 3, dilation: 3),
    Conv2DGeometry(input: [2, 16, 6, 5], outChannels: 5, kernel: 3, padding: 6, dilation: 6),
    Conv2DGeometry(input: [2, 2, 3, 4], outChannels: 3, kernel: 3, padding: 4, dilation: 4),
    // strided with 8 channels (the stride-2 im2col; im2col and col2im where dilated)
    Conv2DGeometry(input: [2, 8, 9, 8], outChannels: 5, kernel: 3, stride: 2, padding: 1),
    Conv2DGeometry(input: [2, 6, 11, 10], outChannels: 4, kernel: (3, 3), stride: (3, 2), padding: (1, 1), dilation: (2, 1)),
    Conv2DGeometry(input: [2, 8, 9, 9], outChannels: 3, kernel: 3, stride: 2, padding: 2, dilation: 2),
    // 3x3, stride 1, pad 1, 16+ channels in and out: Winograd F(2x2, 3x3) (also for the input
    // gradients), odd sizes leaving half-empty tiles, and several images per item
    Conv2DGeometry(input: [3, 16, 7, 7], outChannels: 16, kernel: 3, padding: 1),
    Conv2DGeometry(input: [2, 17, 6, 9], outChannels: 20, kernel: 3, padding: 1),
    Conv2DGeometry(input: [5, 16, 3, 4], outChannels: 18, kernel: 3, padding: 1),
    Conv2DGeometry(input: [2, 16, 31, 29], outChannels: 16, kernel: 3, padding: 1),  // blocks of tile rows
    // stride 2, dilation 1: the stride-2 im2col (StrideTwo.c), with even and odd kernels, sizes and paddings
    Conv2DGeometry(input: [3, 5, 11, 10], outChannels: 6, kernel: 5, stride: 2, padding: 2),
    Conv2DGeometry(input: [2, 4, 9, 7], outChannels: 3, kernel: 2, stride: 2),
    Conv2DGeometry(input: [2, 6, 7, 8], outChannels: 5, kernel: (4, 3), stride: (2, 2), padding: (3, 0)),
    // stride 1, at most 4 input channels: direct convolution (also the 2-channel cases above),
    // planes of 16 or more pixels in vectors (a last vector overlapping the one before), output
    // channels beyond the blocks of 4 (forward) and 2 (weight gradient)
    Conv2DGeometry(input: [2, 1, 12, 28], outChannels: 6, kernel: 3, padding: 1),
    Conv2DGeometry(input: [2, 3, 5, 21], outChannels: 5, kernel: (3, 5), padding: (1, 2)),
    Conv2DGeometry(input: [1, 4, 4, 16], outChannels: 4, kernel: 1),
    // 3x3 dilated by d with padding d, 16+ channels: stacked phase planes (also for the input
    // gradients), with d not dividing the size; a dilation wider than the image (its
    // weight gradient only: too few of the stacked outputs are wanted for the forward); and
    // chunks of one image each whose Winograd items are blocks of tile rows
    Conv2DGeometry(input: [2, 16, 17, 12], outChannels: 16, kernel: 3, padding: 2, dilation: 2),
    Conv2DGeometry(input: [2, 17, 25, 24], outChannels: 16, kernel: 3, padding: 3, dilation: 3),
    Conv2DGeometry(input: [2, 16, 5, 4], outChannels: 18, kernel: 3, padding: 6, dilation: 6),
    Conv2DGeometry(input: [3, 16, 40, 40], outChannels: 16, kernel: 3, padding: 2, dilation: 2),
    // 8 channels to 2, stride 1: the input gradient is a direct convolution of planes of 100
    // pixels (a last vector overlapping the one before), added to the existing gradient when asked
    Conv2DGeometry(input: [2, 8, 5, 20], outChannels: 2, kernel: 3, padding: 1),
    // stride 2 on rows of 21 pixels: the stride-2 col2im copies its rows in vectors, the last
    // overlapping the one before, also when added to an existing gradient
    Conv2DGeometry(input: [2, 4, 9, 21], outChannels: 3, kernel: 3, stride: 2, padding: 1),
    // stride 2 with 19 output columns: the im2col's slices take two vectors, the second moved
    // back to end at the slice's end; an image's first and last rows read 32-float windows that
    // would leave it
    Conv2DGeometry(input: [2, 3, 7, 37], outChannels: 4, kernel: 3, stride: 2, padding: 1),
    // stride 2 with 8 output columns: slices of 8 values, every lane of the vector used
    Conv2DGeometry(input: [2, 5, 6, 16], outChannels: 3, kernel: 3, stride: 2, padding: 1),
    // one GEMM per kernel tap (TapLowering): a 1x1 kernel on 1024+ pixels (no copy), and padded
    // (every column staged, the block zeroed first); dilated kernels with 64+ channels whose taps
    // mostly fall on padding (also for the input gradients), one with a centre column whose
    // window is copied but covers every output column
    Conv2DGeometry(input: [2, 8, 32, 32], outChannels: 12, kernel: 1),
    Conv2DGeometry(input: [1, 8, 32, 31], outChannels: 5, kernel: 1, padding: 1),
    Conv2DGeometry(input: [2, 64, 9, 11], outChannels: 64, kernel: 3, padding: 5, dilation: 5),
    Conv2DGeometry(input: [2, 64, 10, 10], outChannels: 16, kernel: 3, padding: 6, dilation: 6),
    Conv2DGeometry(input: [2, 64, 12, 10], outChannels: 64, kernel: (3, 3), padding: (4, 1), dilation: (4, 2)),
]

/// Column budgets: one output row per item, several images per item, the whole batch at once.
let columnBudgets = [1, 200, 1 << 20]

@Suite("Convolution")
struct ConvTests {
    @Test("forward equals a direct convolution", arguments: convCases, columnBudgets)
    func forwardMatchesDirect(g: Conv2DGeometry, budget: Int) {
        let x = randomTensor(g.inputShape, seed: 1)
        let w = randomTensor(g.weightShape, seed: 2)
        let b = randomTensor([g.outChannels], seed: 3)
        let y = Tensor(zeros: g.outputShape)
        conv2dForward(output: y, input: x, weight: w, bias: b, geometry: g, workspace: Workspace(columnBudget: budget))
        expectClose(y.array.map(Double.init), naiveConvolution(x, w, b, g), rtol: 1e-5, atol: 1e-5, "\(g)")
    }

    @Test("backward equals finite differences", arguments: convCases, columnBudgets)
    func backwardMatchesFiniteDifferences(g: Conv2DGeometry, budget: Int) {
        let workspace = Workspace(columnBudget: budget)
        let x = randomTensor(g.inputShape, seed: 4)
        let w = randomTensor(g.weightShape, seed: 5)
        let b = randomTensor([g.outChannels], seed: 6)
        let r = randomTensor(g.outputShape, seed: 7)  // dLoss/dOutput
        let y = Tensor(zeros: g.outputShape)
        let loss = { () -> Double in
            conv2dForward(output: y, input: x, weight: w, bias: b, geometry: g, workspace: workspace)
            return dot(y, r)
        }
        let dx = Tensor(zeros: g.inputShape), dw = Tensor(zeros: g.weightShape), db = Tensor(zeros: [g.outChannels])
        conv2dBackward(dInput: dx, dWeight: dw, dBias: db, dOutput: r, input: x, weight: w, geometry: g, workspace: workspace)
        for (name, param, grad) in [("dInput", x, dx), ("dWeight", w, dw), ("dBias", b, db)] {
            let idx = sampleIndices(param.count, count: 40, seed: 8)
            // The loss is linear in each argument, so a large step is exact up to rounding.
            let numeric = numericalGradient(of: loss, at: param, indices: idx, step: 0.5)
            expectClose(idx.map { Double(grad[flat: $0]) }, numeric, rtol: 1e-3, atol: 1e-3, "\(name) of \(g)")
        }
    }

    @Test("backward accumulates into existing gradients when asked (every lowering)",
          arguments: [convCases[1], convCases[10], convCases[18], convCases[14], convCases[33], convCases[38], convCases[40]])
    func accumulate(g: Conv2DGeometry) {
        let workspace = Workspace(columnBudget: 200)
        let x = randomTensor(g.inputShape, seed: 9), w = randomTensor(g.weightShape, seed: 10)
        let dy = randomTensor(g.outputShape, seed: 11)
        let dw1 = Tensor(zeros: g.weightShape), db1 = Tensor(zeros: [g.outChannels])
        conv2dBackward(dInput: nil, dWeight: dw1, dBias: db1, dOutput: dy, input: x, weight: w, geometry: g, workspace: workspace)
        let dw2 = dw1.clone(), db2 = db1.clone()
        conv2dBackward(dInput: nil, dWeight: dw2, dBias: db2, dOutput: dy, input: x, weight: w, geometry: g,
                       accumulate: true, workspace: workspace)
        expectClose(dw2.array, dw1.array.map { 2 * $0 }, rtol: 1e-5, atol: 1e-6, "dWeight")
        expectClose(db2.array, db1.array.map { 2 * $0 }, rtol: 1e-5, atol: 1e-6, "dBias")
    }

    @Test("an empty batch (a rank with no samples) gives zero weight gradients (every lowering)",
          arguments: [convCases[1], convCases[10], convCases[18], convCases[14], convCases[33], convCases[38], convCases[40]])
    func emptyBatch(g: Conv2DGeometry) {
        let empty = Conv2DGeometry(input: [0] + g.inputShape.dropFirst(), outChannels: g.outChannels,
                                   kernel: (g.kernelHeight, g.kernelWidth), stride: (g.strideHeight, g.strideWidth),
                                   padding: (g.padHeight, g.padWidth), dilation: (g.dilationHeight, g.dilationWidth))
        let x = Tensor(zeros: empty.inputShape), dy = Tensor(zeros: empty.outputShape)
        let w = randomTensor(g.weightShape, seed: 19)
        let prior = randomTensor(g.weightShape, seed: 20)
        let dw = prior.clone(), summed = prior.clone()
        conv2dBackward(dInput: nil, dWeight: dw, dBias: nil, dOutput: dy, input: x, weight: w, geometry: empty, workspace: Workspace())
        conv2dBackward(dInput: nil, dWeight: summed, dBias: nil, dOutput: dy, input: x, weight: w, geometry: empty,
                       accumulate: true, workspace: Workspace())
        #expect(dw.array.allSatisfy { $0 == 0 }, "\(g)")
        #expect(summed.array == prior.array, "\(g)")
    }

    @Test("the input gradient can be added to an existing one (every lowering)",
          arguments: [convCases[1], convCases[7], convCases[9], convCases[11], convCases[18], convCases[20], convCases[22], convCases[33],
                      convCases[34], convCases[35], convCases[36], convCases[38], convCases[40], convCases[42]])
    func accumulateInput(g: Conv2DGeometry) {
        let workspace = Workspace(columnBudget: 200)
        let x = randomTensor(g.inputShape, seed: 15), w = randomTensor(g.weightShape, seed: 16)
        let dy = randomTensor(g.outputShape, seed: 17)
        let fresh = Tensor(zeros: g.inputShape)
        conv2dBackward(dInput: fresh, dWeight: nil, dBias: nil, dOutput: dy, input: x, weight: w, geometry: g, workspace: workspace)
        let prior = randomTensor(g.inputShape, seed: 18)
        let sum = prior.clone()
        conv2dBackward(dInput: sum, dWeight: nil, dBias: nil, dOutput: dy, input: x, weight: w, geometry: g,
                       accumulateInput: true, workspace: workspace)
        expectClose(sum.array, zip(prior.array, fresh.array).map { $0 + $1 }, rtol: 1e-5, atol: 1e-5, "\(g)")
    }

    @Test("results, weight gradient included, do not depend on the thread count (every lowering)",
          arguments: [Conv2DGeometry(input: [6, 3, 9, 9], outChannels: 4, kernel: 3, padding: 1),
                      Conv2DGeometry(input: [10, 1, 28, 28], outChannels: 8, kernel: 3, padding: 1),
                      Conv2DGeometry(input: [11, 8, 5, 5], outChannels: 6, kernel: 3, padding: 1),
                      Conv2DGeometry(input: [70, 16, 5, 5], outChannels: 16, kernel: 3, padding: 1),
                      Conv2DGeometry(input: [3, 16, 31, 29], outChannels: 16, kernel: 3, padding: 1),
                      Conv2DGeometry(input: [9, 8, 9, 9], outChannels: 5, kernel: 3, stride: 2, padding: 1),
                      Conv2DGeometry(input: [3, 16, 40, 40], outChannels: 16, kernel: 3, padding: 2, dilation: 2),
                      Conv2DGeometry(input: [3, 64, 33, 40], outChannels: 64, kernel: 1),
                      Conv2DGeometry(input: [3, 64, 40, 24], outChannels: 128, kernel: 3, padding: 12, dilation: 12)])
    func threadCountIndependent(g: Conv2DGeometry) {
        withProcessSettings {
            let x = randomTensor(g.inputShape, seed: 12), w = randomTensor(g.weightShape, seed: 13)
            let dy = randomTensor(g.outputShape, seed: 14)
            var outputs: [[Float]] = []
            let saved = Parallel.threadCount
            for threads in [1, 2, 3] {
                Parallel.setThreadCount(threads)
                let y = Tensor(zeros: g.outputShape), dx = Tensor(zeros: g.inputShape), dw = Tensor(zeros: g.weightShape)
                let workspace = Workspace(columnBudget: 400)
                conv2dForward(output: y, input: x, weight: w, bias: nil, geometry: g, workspace: workspace)
                conv2dBackward(dInput: dx, dWeight: dw, dBias: nil, dOutput: dy, input: x, weight: w, geometry: g, workspace: workspace)
                outputs.append(y.array + dx.array + dw.array)
            }
            Parallel.setThreadCount(saved)
            #expect(outputs[0] == outputs[1])
            #expect(outputs[0] == outputs[2])
        }
    }

    @Test("every vector level the processor runs gives bit-identical results, equal to a direct convolution",
          arguments: [Conv2DGeometry(input: [3, 16, 7, 7], outChannels: 16, kernel: 3, padding: 1),
                      Conv2DGeometry(input: [2, 17, 6, 9], outChannels: 20, kernel: 3, padding: 1),
                      Conv2DGeometry(input: [2, 16, 31, 29], outChannels: 18, kernel: 3, padding: 1),
                      Conv2DGeometry(input: [2, 8, 21, 20], outChannels: 6, kernel: 3, stride: 2, padding: 1),  // StrideTwo.c
                      Conv2DGeometry(input: [2, 3, 7, 37], outChannels: 4, kernel: 3, stride: 2, padding: 1)])
    func vectorLevels(g: Conv2DGeometry) {
        withProcessSettings {
            let x = randomTensor(g.inputShape, seed: 21), w = randomTensor(g.weightShape, seed: 22), b = randomTensor([g.outChannels], seed: 23)
            let dy = randomTensor(g.outputShape, seed: 24)
            let initial = VectorLevel.current
            var outputs: [String: [Float]] = [:]
            for level in VectorLevel.supported {
                #expect(VectorLevel.select(level) && VectorLevel.current == level)
                let y = Tensor(zeros: g.outputShape), dx = Tensor(zeros: g.inputShape), dw = Tensor(zeros: g.weightShape)
                let workspace = Workspace(columnBudget: 300)
                conv2dForward(output: y, input: x, weight: w, bias: b, geometry: g, workspace: workspace)
                conv2dBackward(dInput: dx, dWeight: dw, dBias: nil, dOutput: dy, input: x, weight: w, geometry: g, workspace: workspace)
                expectClose(y.array.map(Double.init), naiveConvolution(x, w, b, g), rtol: 1e-5, atol: 1e-5, "\(level) \(g)")
                outputs[level] = y.array + dx.array + dw.array
            }
            VectorLevel.select(initial)
            for level in VectorLevel.supported { #expect(outputs[level] == outputs["baseline"], "\(level) differs from baseline") }
            #expect(!VectorLevel.select("sse9"))  // the control: an unknown level is refused
        }
    }

    @Test("the direct convolution (few input channels) at every vector level: forward and weight gradient equal Double references",
          arguments: [Conv2DGeometry(input: [3, 1, 28, 28], outChannels: 10, kernel: 3, padding: 1),
                      // the one-channel 3x3 kernel with a last vector overlapping the one before
                      // and output channels beyond its blocks
                      Conv2DGeometry(input: [2, 1, 31, 20], outChannels: 11, kernel: 3, padding: 1),
                      Conv2DGeometry(input: [2, 3, 7, 19], outChannels: 3, kernel: (3, 5), padding: (1, 2))])
    func directAtEveryLevel(g: Conv2DGeometry) {
        withProcessSettings {
            #expect(g.lowering == "direct")
            let x = randomTensor(g.inputShape, seed: 25), w = randomTensor(g.weightShape, seed: 26), b = randomTensor([g.outChannels], seed: 27)
            let dy = randomTensor(g.outputShape, seed: 28)
            // dW[o, c, i, j] = sum over n, oh, ow of dy[n, o, oh, ow] * x[n, c, oh + i - padH, ow + j - padW], in Double
            var want = [Double](repeating: 0, count: g.weightShape.reduce(1, *))
            for n in 0..<g.batch {
                for o in 0..<g.outChannels {
                    for c in 0..<g.inChannels {
                        for i in 0..<g.kernelHeight {
                            for j in 0..<g.kernelWidth {
                                var s = 0.0
                                for oh in 0..<g.outHeight {
                                    let ih = oh + i - g.padHeight
                                    guard ih >= 0 && ih < g.inHeight else { continue }
                                    for ow in 0..<g.outWidth {
                                        let iw = ow + j - g.padWidth
                                        guard iw >= 0 && iw < g.inWidth else { continue }
                                        s += Double(dy[flat: ((n * g.outChannels + o) * g.outHeight + oh) * g.outWidth + ow])
                                            * Double(x[flat: ((n * g.inChannels + c) * g.inHeight + ih) * g.inWidth + iw])
                                    }
                                }
                                want[((o * g.inChannels + c) * g.kernelHeight + i) * g.kernelWidth + j] += s
                            }
                        }
                    }
                }
            }
            let initial = VectorLevel.current
            for level in VectorLevel.supported {
                #expect(VectorLevel.select(level))
                let y = Tensor(zeros: g.outputShape), dw = Tensor(zeros: g.weightShape)
                conv2dForward(output: y, input: x, weight: w, bias: b, geometry: g, workspace: Workspace())
                conv2dBackward(dInput: nil, dWeight: dw, dBias: nil, dOutput: dy, input: x, weight: w, geometry: g, workspace: Workspace())
                expectClose(y.array.map(Double.init), naiveConvolution(x, w, b, g), rtol: 1e-5, atol: 1e-5, "forward, \(level)")
                expectClose(dw.array.map(Double.init), want, rtol: 1e-5, atol: 1e-4, "weight gradient, \(level)")
            }
            VectorLevel.select(initial)
        }
    }

    @Test("the weight gradient of a batch is the sum of its images' (Winograd, with row blocks and several images per item)",
          arguments: [Conv2DGeometry(input: [3, 16, 32, 32], outChannels: 16, kernel: 3, padding: 1),
                      Conv2DGeometry(input: [3, 16, 8, 8], outChannels: 16, kernel: 3, padding: 1)])
    func weightGradientAddsOverImages(g: Conv2DGeometry) {
        let x = randomTensor(g.inputShape, seed: 30), w = randomTensor(g.weightShape, seed: 31), dy = randomTensor(g.outputShape, seed: 32)
        let whole = Tensor(zeros: g.weightShape)
        conv2dBackward(dInput: nil, dWeight: whole, dBias: nil, dOutput: dy, input: x, weight: w, geometry: g, workspace: Workspace())
        let one = Conv2DGeometry(input: [1] + g.inputShape.dropFirst(), outChannels: g.outChannels, kernel: 3, padding: 1)
        var sum = [Double](repeating: 0, count: whole.count)
        for n in 0..<g.batch {
            let xi = Tensor(Array(x.array[n * one.inputShape.reduce(1, *)..<(n + 1) * one.inputShape.reduce(1, *)]), shape: one.inputShape)
            let dyi = Tensor(Array(dy.array[n * one.outputShape.reduce(1, *)..<(n + 1) * one.outputShape.reduce(1, *)]), shape: one.outputShape)
            let dw = Tensor(zeros: g.weightShape)
            conv2dBackward(dInput: nil, dWeight: dw, dBias: nil, dOutput: dyi, input: xi, weight: w, geometry: one, workspace: Workspace())
            for (i, v) in dw.array.enumerated() { sum[i] += Double(v) }
        }
        #expect(g.lowering == "winograd")
        expectClose(whole.array.map(Double.init), sum, rtol: 1e-4, atol: 1e-4, "\(g)")
    }

    @Test("dilated 3x3 convolutions with 16+ channels run on stacked phases; fewer channels or other paddings do not")
    func stackedPhasesChosen() {
        for g in [convCases[30], convCases[31], convCases[33]] {
            #expect([g.lowering, g.inputGradientLowering, g.weightGradientLowering] == Array(repeating: "phase-stack", count: 3), "\(g)")
        }
        let wide = convCases[32]  // 20 of 144 stacked outputs wanted
        #expect([wide.lowering, wide.inputGradientLowering, wide.weightGradientLowering] == ["row-shift", "row-shift", "phase-stack"])
        // controls: 15 input channels, padding unlike the dilation, dilation 1
        #expect(Conv2DGeometry(input: [1, 15, 8, 8], outChannels: 16, kernel: 3, padding: 2, dilation: 2).lowering == "row-shift")
        #expect(Conv2DGeometry(input: [1, 16, 8, 8], outChannels: 16, kernel: 3, padding: 1, dilation: 2).lowering == "row-shift")
        #expect(Conv2DGeometry(input: [1, 16, 8, 8], outChannels: 16, kernel: 3, padding: 1).lowering == "winograd")
    }

    @Test("1x1 convolutions on 1024+ pixels and dilated kernels whose taps mostly fall on padding run tap by tap")
    func tapsChosen() {
        for g in [convCases[38], convCases[40], convCases[42]] {
            #expect([g.lowering, g.inputGradientLowering, g.weightGradientLowering] == ["taps", "taps", "taps"], "\(g)")
        }
        // the padded 1x1's input gradient is col2im's (a padding beyond the kernel), the 64->16's a
        // transposed convolution of 16 input channels
        #expect([convCases[39].lowering, convCases[39].inputGradientLowering, convCases[39].weightGradientLowering] == ["taps", "col2im", "taps"])
        #expect([convCases[41].lowering, convCases[41].weightGradientLowering] == ["taps", "taps"])
        for d in [12, 24, 36] {  // DeepLabV3's atrous branches at output stride 8 on 512x512 crops
            let aspp = Conv2DGeometry(input: [2, 2048, 64, 64], outChannels: 256, kernel: 3, padding: d, dilation: d)
            #expect([aspp.lowering, aspp.inputGradientLowering, aspp.weightGradientLowering] == ["taps", "taps", "taps"], "\(aspp)")
        }
        // controls: small maps, strides, few channels, and dilations the image holds
        #expect(Conv2DGeometry(input: [8, 96, 24, 24], outChannels: 64, kernel: 1).lowering == "im2col")
        #expect(Conv2DGeometry(input: [2, 256, 64, 64], outChannels: 512, kernel: 1, stride: 2).lowering == "im2col")
        #expect(Conv2DGeometry(input: [2, 32, 10, 10], outChannels: 64, kernel: 3, padding: 6, dilation: 6).lowering != "taps")
        #expect(Conv2DGeometry(input: [2, 512, 64, 64], outChannels: 512, kernel: 3, padding: 4, dilation: 4).lowering == "phase-stack")
    }
}
