import ABNTensor

/// The end of a torchvision residual block (`BasicBlock`, `Bottleneck`):
///   out = act(branch + shortcut),  shortcut = x, or `downsample` = norm(conv1x1(x)) when the
///   block changes the shape,
/// where `branch` is the output of the block's last norm layer (identity activation). The sum
/// and the activation are written over `branch`, and only the output is kept: the activation's
/// derivative is read from it, and in `inplace` mode the last norm layer's output (which the sum
/// overwrote) is recovered from it in backward as act^-1(out) - shortcut.
final class ResidualJoin: ProbedLayer {
    /// The block's name and "join" ("layer2.0.join"): the sum and its activation.
    let name: String
    let activation: Activation
    var probe: ((any ProbedLayer, NormProbe, Tensor) -> Void)?
    var gradientFactors: [(index: Int, factor: Float)] = []
    /// `downsample.0` (1x1 convolution with the block's stride) and `downsample.1` (its norm).
    let downsample: (conv: Conv2DLayer, norm: NormAct)?

    // kept for backward
    private var output: Tensor?
    /// x: the block's input (kept by reference; the block keeps it anyway).
    private var input: Tensor?
    /// The shortcut's value when the inplace recovery needs it: x, or the downsample norm's output.
    private var shortcut: Tensor?

    /// A downsample branch `name.downsample` when the block's stride or width changes the shape.
    init(_ name: String, inChannels: Int, outChannels: Int, stride: Int, norm: NormSettings, rng: inout SplitMix64) throws {
        self.name = "\(name).join"
        activation = norm.activation
        if stride != 1 || inChannels != outChannels {
            let conv = Conv2DLayer("\(name).downsample.0", inChannels: inChannels, outChannels: outChannels, kernel: 1, stride: stride, rng: &rng)
            downsample = (conv, try norm.layer("\(name).downsample.1", channels: outChannels, activation: .identity))
        } else {
            downsample = nil
        }
    }

    /// In PyTorch state-dict order.
    var allParameters: [Parameter] { downsample.map { $0.conv.allParameters + $0.norm.allParameters } ?? [] }
    var normLayers: [NormAct] { downsample.map { [$0.norm] } ?? [] }
    /// The downsample's norm layer, then the join.
    var probedLayers: [any ProbedLayer] { normLayers + [self] }

    /// Forward multiply-adds of the downsample convolution for one image of `size`.
    func multiplyAdds(from size: (height: Int, width: Int)) -> Double {
        downsample?.conv.multiplyAdds(height: size.height, width: size.width).count ?? 0
    }

    /// act(branch + shortcut(x)) written over `branch` (N, C', H', W'), which is returned;
    /// `lastNorm` produced `branch`. x (N, C, H, W) is read, not changed.
    func forward(branch: Tensor, input x: Tensor, lastNorm: NormAct, workspace: Workspace) throws -> Tensor {
        let shortcut = try downsample.map { try $0.norm.forward($0.conv.forward(x, workspace: workspace)) } ?? x
        checkShape(shortcut.shape == branch.shape, "residual join: branch \(branch.shape) and shortcut \(shortcut.shape) differ")
        let y = branch.data, s = shortcut.data, act = activation
        Parallel.forRanges(branch.count, minimumPerThread: 4096) { r in
            if case .leakyReLU(let slope) = act {
                for i in r { let v = y[i] + s[i]; y[i] = v < 0 ? v * slope : v }  // branch-free: vectorizes
            } else {
                for i in r { y[i] = act.apply(y[i] + s[i]) }
            }
        }
        output = branch
        input = x
        self.shortcut = lastNorm.mode == .inplace ? shortcut : nil
        probe?(self, .output, branch)
        return branch
    }

    /// From the output's gradient `dOut` (overwritten with the gradient of the sum, which is
    /// returned as `branch`): restores the last norm layer's output in inplace mode, runs the
    /// downsample's backward, and returns the input gradient of the shortcut (x's shape) for the
    /// branch's input gradient to be added to.
    func backward(_ dOut: Tensor, workspace: Workspace, gradientsReady ready: (Parameter) -> Void) -> (branch: Tensor, input: Tensor) {
        guard let output, let x = input else { preconditionFailure("ResidualJoin.backward before forward") }
        checkShape(dOut.shape == output.shape, "residual join: gradient \(dOut.shape) does not match the output \(output.shape)")
        let g = dOut.data, z = output.data, act = activation
        let shortcut = self.shortcut?.data
        for (index, factor) in gradientFactors { g[index] *= factor }
        gradientFactors = []
        Parallel.forRanges(output.count, minimumPerThread: 4096) { r in
            if case .leakyReLU(let slope) = act {
                // branch-free: vectorizes
                for i in r { g[i] *= z[i] < 0 ? slope : 1 }
                if let s = shortcut {
                    for i in r { let v = z[i]; z[i] = (v < 0 ? v / slope : v) - s[i] }
                }
                return
            }
            for i in r { g[i] *= act.derivative(atOutput: z[i]) }
            if let s = shortcut {
                for i in r { z[i] = act.inverse(z[i]) - s[i] }
            }
        }
        self.output = nil
        self.input = nil
        self.shortcut = nil
        probe?(self, .inputGradient, dOut)
        guard let (conv, norm) = downsample else { return (dOut, dOut.clone()) }
        let dShortcut = norm.backward(dOut.clone())
        ready(norm.weight); ready(norm.bias)
        let dx = conv.backward(dShortcut, input: x, inputGradient: true, workspace: workspace)!
        ready(conv.weight)
        return (dOut, dx)
    }
}
