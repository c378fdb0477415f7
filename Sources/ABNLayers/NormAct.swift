import ABNTensor
import CKernels
import Foundation

/// How a norm layer trades memory for computation; all three compute the same values.
public enum NormMode: String, Sendable, CaseIterable {
    /// InPlace-ABN: overwrites its input with its output and keeps only the output (plus
    /// per-channel variance and count); backward inverts the activation and the affine step.
    case inplace
    /// Batch norm into a new tensor, then the activation in place on it; keeps input and output.
    case standard
    /// Keeps only the input and recomputes normalization and activation in backward.
    case checkpoint
}

/// Batch normalization fused with an invertible activation, in one of the three `NormMode`s,
/// with the semantics of the reference InPlace-ABN:
/// z = act(gamma' * (x - mean) / sqrt(var + eps) + beta), gamma' = |weight| + eps, biased batch
/// variance, running_var updated with the unbiased M/(M-1) variance, M the global count.
///
/// Input and output are (N, C, ...) (any trailing spatial dimensions). Batch statistics and the
/// backward sums pass through `reducer`, so the layer is synchronized across replicas by
/// giving it a cross-rank reducer. Statistics are two-pass (stable): Float lanes within a
/// plane, Double across planes.
public final class NormAct: ProbedLayer {
    public let name: String
    public let channels: Int
    public let mode: NormMode
    public let activation: Activation
    public let eps: Float
    public let momentum: Float
    /// (C) weight; the layer uses gamma' = |weight| + eps.
    public let weight: Parameter
    /// (C) beta.
    public let bias: Parameter
    /// (C) running mean and (C) running (unbiased) variance.
    public let runningMean: Parameter
    public let runningVar: Parameter
    /// Where batch statistics and backward sums are combined across replicas.
    public var reducer: StatisticsReducer = LocalReducer()
    /// Training normalizes by batch statistics and updates the running ones; eval uses the running ones.
    public var training = true
    public var probe: ((any ProbedLayer, NormProbe, Tensor) -> Void)?
    public var gradientFactors: [(index: Int, factor: Float)] = []
    /// Computes the batch statistics image by image, merged with Chan's formula as ranks merge
    /// theirs, instead of over the whole batch at once: the same values in another valid
    /// summation order, for measuring rounding noise (`abn verify`; `ABN_MOMENTS_BY_IMAGE=1`
    /// sets it for every layer of a run).
    public var momentsByImage = NormAct.momentsByImageFromEnvironment
    private static let momentsByImageFromEnvironment = ProcessInfo.processInfo.environment["ABN_MOMENTS_BY_IMAGE"] == "1"

    // What the forward pass keeps for backward, by mode: inplace z; standard x and z; checkpoint x.
    private var savedInput: Tensor?
    private var savedOutput: Tensor?
    /// (C) per-channel statistics of the last forward pass, in Double.
    private var mean: [Double]
    private var variance: [Double]
    /// Values per channel over all replicas in the last forward pass (M).
    private var globalCount = 0.0
    private var usedBatchStatistics = true

    public init(_ name: String, channels: Int, mode: NormMode, activation: Activation,
                eps: Float = 1e-5, momentum: Float = 0.1) throws {
        guard channels >= 1 else { throw LayerError.invalidSetting("\(name): a norm layer needs at least one channel.") }
        guard eps > 0 else { throw LayerError.invalidSetting("\(name): eps must be positive, got \(eps).") }
        guard momentum >= 0 && momentum <= 1 else {
            throw LayerError.invalidSetting("\(name): momentum must be in [0, 1], got \(momentum).")
        }
        self.name = name
        self.channels = channels
        self.mode = mode
        self.activation = activation
        self.eps = eps
        self.momentum = momentum
        weight = Parameter("\(name).weight", shape: [channels], initial: .constant(1))
        bias = Parameter("\(name).bias", shape: [channels], initial: .constant(0))
        runningMean = Parameter("\(name).running_mean", .buffer, shape: [channels], initial: .constant(0))
        runningVar = Parameter("\(name).running_var", .buffer, shape: [channels], initial: .constant(1))
        mean = Array(repeating: 0, count: channels)
        variance = Array(repeating: 1, count: channels)
    }

    /// weight, bias, running_mean, running_var.
    public var allParameters: [Parameter] { [weight, bias, runningMean, runningVar] }

    private func checkInput(_ x: Tensor) {
        checkShape(x.shape.count >= 2 && x.shape[1] == channels,
                   "\(name): input shape \(x.shape) does not match the layer's \(channels) channels (want (N, \(channels), ...))")
    }

    // MARK: Forward

    /// Normalizes and activates x (N, C, ...). In `inplace` mode the result is written over x
    /// and x is returned; otherwise a new tensor is returned and x is left as it was.
    /// Throws when training sees fewer than 2 values per channel over all replicas.
    public func forward(_ x: Tensor) throws -> Tensor {
        checkInput(x)
        let n = x.shape[0], C = channels, hw = x.count / max(1, n * C)
        if training {
            try computeBatchStatistics(x, images: n, pixels: hw)
        } else {
            for c in 0..<C {
                mean[c] = Double(runningMean.value[flat: c])
                variance[c] = Double(runningVar.value[flat: c])
            }
        }
        usedBatchStatistics = training
        let z = mode == .inplace ? x : Tensor(uninitialized: x.shape)
        normalizeAndActivate(z, x, images: n, pixels: hw)
        switch mode {
        case .inplace: savedInput = nil; savedOutput = z
        case .standard: savedInput = x; savedOutput = z
        case .checkpoint: savedInput = x; savedOutput = nil
        }
        probe?(self, .output, z)
        return z
    }

    /// checkpoint mode: recomputes the output of the last forward pass from its saved input,
    /// for the backward pass of the layer that consumed it.
    public func recomputeOutput() -> Tensor {
        precondition(mode == .checkpoint, "\(name): recomputeOutput() is for checkpoint mode")
        guard let x = savedInput else { preconditionFailure("\(name): recomputeOutput() before forward") }
        let z = Tensor(uninitialized: x.shape)
        normalizeAndActivate(z, x, images: x.shape[0], pixels: x.count / max(1, x.shape[0] * channels))
        return z
    }

    private func computeBatchStatistics(_ x: Tensor, images n: Int, pixels hw: Int) throws {
        let C = channels
        var count = Double(n * hw)
        let data = x.data
        mean.withUnsafeMutableBufferPointer { meanBuffer in
            variance.withUnsafeMutableBufferPointer { m2Buffer in
                let meanOut = meanBuffer.baseAddress!, m2Out = m2Buffer.baseAddress!
                let byImage = momentsByImage
                Parallel.forEach(C) { c in
                    if byImage {
                        var merged: [Double] = [0, 0, 0], image: [Double] = [Double(hw), 0, 0]
                        for i in 0..<n {
                            let plane = data + (i * C + c) * hw
                            image[1] = laneSum(plane, count: hw) / Double(hw)
                            image[2] = laneSumOfSquares(plane, count: hw, around: Float(image[1]))
                            mergeMomentsChan(into: &merged, image, channels: 1)
                        }
                        meanOut[c] = merged[1]
                        m2Out[c] = merged[2]
                        return
                    }
                    var sum = 0.0
                    for i in 0..<n { sum += laneSum(data + (i * C + c) * hw, count: hw) }
                    let m = count > 0 ? sum / count : 0
                    var m2 = 0.0
                    for i in 0..<n { m2 += laneSumOfSquares(data + (i * C + c) * hw, count: hw, around: Float(m)) }
                    meanOut[c] = m
                    m2Out[c] = m2
                }
                reducer.mergeMoments(count: &count, mean: meanOut, m2: m2Out, channels: C, layer: name)
            }
        }
        let total = Int(count.rounded())
        guard total >= 2 else { throw LayerError.tooFewValuesPerChannel(layer: name, count: total) }
        globalCount = count
        let m = Double(momentum)
        for c in 0..<C {
            variance[c] /= count  // M2 -> biased variance
            let rm = runningMean.value.data, rv = runningVar.value.data
            rm[c] = Float((1 - m) * Double(rm[c]) + m * mean[c])
            rv[c] = Float((1 - m) * Double(rv[c]) + m * variance[c] * count / (count - 1))
        }
    }

    /// gamma' (C) = |weight| + eps.
    private func effectiveGamma(_ c: Int) -> Double { Double(abs(weight.value[flat: c])) + Double(eps) }

    /// Per channel (C): scale = gamma' / sqrt(var + eps).
    private func scales() -> [Float] {
        (0..<channels).map { c in Float(effectiveGamma(c) / (variance[c] + Double(eps)).squareRoot()) }
    }

    /// z = act((x - mean) * scale + beta); z may be x. The mean is subtracted first (exactly, for
    /// x near it) rather than folded into a shift, so inputs far from zero keep their precision.
    private func normalizeAndActivate(_ z: Tensor, _ x: Tensor, images n: Int, pixels hw: Int) {
        let scale = scales(), center = mean.map(Float.init), beta = (0..<channels).map { bias.value[flat: $0] }
        let C = channels, act = activation
        let src = x.data, dst = z.data
        Parallel.forEach(n * C, minimumPerThread: 4) { plane in
            let a = scale[plane % C], m = center[plane % C], b = beta[plane % C]
            let p = src + plane * hw, q = dst + plane * hw
            switch act {
            case .leakyReLU(let slope):
                abn_norm_leaky_plane(q, p, hw, a, m, b, slope)
            case .elu, .identity:
                for j in 0..<hw { q[j] = act.apply((p[j] - m) * a + b) }
            }
        }
    }

    // MARK: Backward

    /// From dz (the gradient at the output, same shape) computes dx and writes it over dz's
    /// storage, which is returned; writes the gradients of weight and bias (overwriting).
    /// In checkpoint mode the output is recomputed from the saved input.
    @discardableResult
    public func backward(_ dz: Tensor) -> Tensor {
        let reference = savedOutput ?? savedInput
        guard let reference else { preconditionFailure("\(name): backward without forward") }
        checkShape(dz.shape == reference.shape, "\(name): gradient shape \(dz.shape) does not match the output shape \(reference.shape)")
        let n = dz.shape[0], C = channels, hw = dz.count / max(1, n * C)
        for (index, factor) in gradientFactors { dz.data[index] *= factor }
        gradientFactors = []
        let recovery = PlaneRecovery(
            mode: mode, activation: activation, pixels: hw, z: savedOutput?.data, x: savedInput?.data, dz: dz.data,
            beta: (0..<C).map { bias.value[flat: $0] }, inverseGamma: (0..<C).map { Float(1 / effectiveGamma($0)) },
            mean: mean.map(Float.init), inverseStd: variance.map { Float(1 / ($0 + Double(eps)).squareRoot()) },
            scale: scales())
        // sums (2C): [sum dy (C), sum dy * xhat (C)], per channel over all its planes
        var sums = [Double](repeating: 0, count: 2 * C)
        sums.withUnsafeMutableBufferPointer { buffer in
            let s = buffer.baseAddress!
            Parallel.forRanges(C) { channels in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * max(1, hw)) { scratch in
                    for c in channels {
                        var s1 = 0.0, s2 = 0.0
                        for i in 0..<n {
                            let (p1, p2) = recovery.sums(plane: i * C + c, channel: c, scratch: scratch.baseAddress!)
                            s1 += p1
                            s2 += p2
                        }
                        s[c] = s1
                        s[C + c] = s2
                    }
                }
            }
        }
        // parameter gradients from the local sums (the gradient averager sums them over ranks)
        let dWeight = weight.gradient!.data, dBias = bias.gradient!.data
        for c in 0..<C {
            dBias[c] = Float(sums[c])
            dWeight[c] = Float(sums[C + c]) * (weight.value[flat: c] < 0 ? -1 : 1)
        }
        if usedBatchStatistics {
            sums.withUnsafeMutableBufferPointer { reducer.sum($0.baseAddress!, count: 2 * C, layer: name) }
        }
        // dx = gamma'/sqrt(var + eps) * (dy - S1/M - xhat * S2/M)   (training)
        // dx = gamma'/sqrt(running_var + eps) * dy                    (eval)
        var coefficients = [Float](repeating: 0, count: 3 * C)  // a (C), S1/M (C), S2/M (C)
        for c in 0..<C {
            coefficients[c] = Float(effectiveGamma(c) / (variance[c] + Double(eps)).squareRoot())
            if usedBatchStatistics {
                coefficients[C + c] = Float(sums[c] / globalCount)
                coefficients[2 * C + c] = Float(sums[C + c] / globalCount)
            }
        }
        coefficients.withUnsafeBufferPointer { k in
            let k = k.baseAddress!
            Parallel.forRanges(n * C, minimumPerThread: 4) { planes in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * max(1, hw)) { scratch in
                    for plane in planes {
                        let c = plane % C
                        recovery.writeInputGradient(plane: plane, channel: c, a: k[c], m1: k[C + c], m2: k[2 * C + c],
                                                    scratch: scratch.baseAddress!)
                    }
                }
            }
        }
        savedInput = nil
        savedOutput = nil
        probe?(self, .inputGradient, dz)
        return dz
    }
}

/// Recovers, for one (image, channel) plane in the backward pass, dy (the gradient before the
/// activation) and xhat (the normalized input) from what the layer's mode kept:
/// inplace: both from z, inverting the activation and the affine step; standard: dy from z,
/// xhat from x; checkpoint: both from x, recomputing the forward pass.
private struct PlaneRecovery {
    let mode: NormMode
    let activation: Activation
    let pixels: Int
    /// The saved output z and input x (whichever the mode kept), and the incoming gradient dz.
    let z: UnsafeMutablePointer<Float>?
    let x: UnsafeMutablePointer<Float>?
    let dz: UnsafeMutablePointer<Float>
    /// Per channel: beta, 1/gamma', batch mean, 1/sqrt(var + eps), and the forward pass's
    /// scale (gamma'/sqrt(var + eps)).
    let beta, inverseGamma, mean, inverseStd, scale: [Float]

    /// Sum of dy and of dy * xhat over `plane`, of channel `c`. `scratch` (2 * pixels) holds dy
    /// and xhat for the combinations without a fused loop.
    func sums(plane: Int, channel c: Int, scratch: UnsafeMutablePointer<Float>) -> (Double, Double) {
        if let fused = fusedLeakyReLU(channel: c) {
            return fused.sums(dz + plane * pixels, z! + plane * pixels, x.map { $0 + plane * pixels }, count: pixels)
        }
        recover(plane: plane, channel: c, dy: scratch, xhat: scratch + pixels)
        return laneSumAndDot(scratch, scratch + pixels, count: pixels)
    }

    /// Overwrites dz of `plane` (channel `c`) with dx = a * (dy - m1 - xhat * m2).
    func writeInputGradient(plane: Int, channel c: Int, a: Float, m1: Float, m2: Float, scratch: UnsafeMutablePointer<Float>) {
        let q = dz + plane * pixels
        if let fused = fusedLeakyReLU(channel: c) {
            fused.writeInputGradient(q, z! + plane * pixels, x.map { $0 + plane * pixels }, count: pixels, a: a, m1: m1, m2: m2)
            return
        }
        let dy = scratch, xhat = scratch + pixels
        recover(plane: plane, channel: c, dy: dy, xhat: xhat)
        for j in 0..<pixels { q[j] = a * (dy[j] - m1 - xhat[j] * m2) }
    }

    /// The fused loops for leaky ReLU when z is kept (inplace, standard): xhat = (u - center) * factor
    /// with u = act^-1(z) (inplace: center beta, factor 1/gamma') or u = x (standard: the batch
    /// mean and 1/std).
    private func fusedLeakyReLU(channel c: Int) -> FusedLeakyReLU? {
        guard case .leakyReLU(let slope) = activation, mode != .checkpoint else { return nil }
        return mode == .inplace
            ? FusedLeakyReLU(slope: slope, center: beta[c], factor: inverseGamma[c])
            : FusedLeakyReLU(slope: slope, center: mean[c], factor: inverseStd[c])
    }

    /// Fills dy (pixels) and xhat (pixels) for `plane`, of channel `c`.
    private func recover(plane: Int, channel c: Int, dy: UnsafeMutablePointer<Float>, xhat: UnsafeMutablePointer<Float>) {
        let hw = pixels, base = plane * hw
        let g = dz + base
        if mode == .checkpoint {
            let xp = x! + base, a = scale[c], b = beta[c], m = mean[c], s = inverseStd[c]
            switch activation {
            case .leakyReLU(let slope):
                for j in 0..<hw { let y = (xp[j] - m) * a + b; dy[j] = g[j] * (y < 0 ? slope : 1) }
            case .elu(let alpha):
                for j in 0..<hw { let y = (xp[j] - m) * a + b; dy[j] = y >= 0 ? g[j] : g[j] * alpha * expf(y) }
            case .identity:
                for j in 0..<hw { dy[j] = g[j] }
            }
            for j in 0..<hw { xhat[j] = (xp[j] - m) * s }
            return
        }
        // dy from z; for inplace, y (kept in xhat) from z too
        let zp = z! + base
        switch activation {
        case .leakyReLU(let slope):
            // branch-free, so the loop vectorizes
            let inverseSlope = 1 / slope
            for j in 0..<hw {
                let v = zp[j]
                dy[j] = g[j] * (v < 0 ? slope : 1)
                xhat[j] = v * (v < 0 ? inverseSlope : 1)
            }
        case .elu(let alpha):
            for j in 0..<hw {
                let negative = zp[j] < 0
                dy[j] = negative ? g[j] * (zp[j] + alpha) : g[j]
                xhat[j] = negative ? Activation.eluInverse(zp[j], alpha: alpha) : zp[j]
            }
        case .identity:
            for j in 0..<hw { dy[j] = g[j]; xhat[j] = zp[j] }
        }
        if mode == .inplace {
            let b = beta[c], k = inverseGamma[c]
            for j in 0..<hw { xhat[j] = (xhat[j] - b) * k }
        } else {
            let xp = x! + base, m = mean[c], s = inverseStd[c]
            for j in 0..<hw { xhat[j] = (xp[j] - m) * s }
        }
    }
}

/// Recovery for leaky ReLU fused with its consumers (C kernels): dy = dz * act'(z),
/// xhat = (u - center) * factor, u = z inverted through the activation when `x` is nil, else x.
private struct FusedLeakyReLU {
    let slope: Float
    let center: Float
    let factor: Float

    /// Sum of dy and of dy * xhat over `count` values.
    func sums(_ g: UnsafePointer<Float>, _ z: UnsafePointer<Float>, _ x: UnsafePointer<Float>?, count: Int) -> (Double, Double) {
        var sums = (0.0, 0.0)
        withUnsafeMutableBytes(of: &sums) { raw in
            abn_leaky_backward_sums(g, z, x, count, slope, center, factor, raw.baseAddress!.assumingMemoryBound(to: Double.self))
        }
        return sums
    }

    /// q (the plane's dz, read as dy's source first) = a * (dy - m1 - xhat * m2).
    func writeInputGradient(_ q: UnsafeMutablePointer<Float>, _ z: UnsafePointer<Float>, _ x: UnsafePointer<Float>?,
                            count: Int, a: Float, m1: Float, m2: Float) {
        abn_leaky_backward_write(q, z, x, count, slope, center, factor, a, m1, m2)
    }
}
