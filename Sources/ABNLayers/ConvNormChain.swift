import ABNTensor

/// Convolutions each followed by its norm layer, run in turn: the branch of a torchvision
/// residual block (`BasicBlock`, `Bottleneck`). It keeps its input and the outputs of all but
/// the last norm layer (nil in checkpoint mode: recomputed); the last norm layer's output goes
/// on to the block's `ResidualJoin`.
final class ConvNormChain {
    let links: [(conv: Conv2DLayer, norm: NormAct)]

    // kept for backward
    private var input: Tensor?
    private var outputs: [Tensor?] = []

    init(_ links: [(conv: Conv2DLayer, norm: NormAct)]) {
        self.links = links
    }

    /// In PyTorch state-dict order: each convolution, then its norm layer.
    var allParameters: [Parameter] { links.flatMap { $0.conv.allParameters + $0.norm.allParameters } }
    var normLayers: [NormAct] { links.map(\.norm) }
    var last: NormAct { links[links.count - 1].norm }
    var outChannels: Int { last.channels }

    /// Forward multiply-adds for one image of `size`, added to `total`; returns the output size.
    func multiplyAdds(from size: (height: Int, width: Int), total: inout Double) -> (height: Int, width: Int) {
        var size = size
        for (conv, _) in links {
            let m = conv.multiplyAdds(height: size.height, width: size.width)
            total += m.count
            size = (m.height, m.width)
        }
        return size
    }

    /// The last norm layer's output for x (N, C, H, W), which is kept (not changed).
    func forward(_ x: Tensor, workspace: Workspace) throws -> Tensor {
        var h = x
        outputs = []
        for (i, (conv, norm)) in links.enumerated() {
            h = try norm.forward(conv.forward(h, workspace: workspace))
            if i < links.count - 1 { outputs.append(norm.mode != .checkpoint ? h : nil) }
        }
        input = x
        return h
    }

    /// From the gradient of the last norm layer's output (overwritten), the parameter gradients
    /// and the input's gradient, added to `dInput`.
    func backward(_ dOut: Tensor, addingInputGradientTo dInput: Tensor, workspace: Workspace, gradientsReady ready: (Parameter) -> Void) {
        guard let x = input else { preconditionFailure("ConvNormChain.backward before forward") }
        var gradient = dOut
        for i in links.indices.reversed() {
            let (conv, norm) = links[i]
            let dConv = norm.backward(gradient)
            ready(norm.weight); ready(norm.bias)
            guard i > 0 else {
                conv.backward(dConv, input: x, addingInputGradientTo: dInput, workspace: workspace)
                ready(conv.weight)
                break
            }
            let h = outputs[i - 1] ?? links[i - 1].norm.recomputeOutput()
            outputs[i - 1] = nil
            gradient = conv.backward(dConv, input: h, inputGradient: true, workspace: workspace)!
            ready(conv.weight)
        }
        input = nil
    }
}
