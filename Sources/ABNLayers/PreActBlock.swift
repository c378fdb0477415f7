import ABNTensor

/// Pre-activation residual block (docs/design.md#reference-network):
///   h = bn1(x); shortcut = proj(h) if the shape changes, else x
///   out = conv2(bn2(conv1(h))) + shortcut
/// With an in-place bn1 and an identity shortcut, x is copied before bn1 overwrites it. Its
/// output has the stage's width.
final class PreActBlock: ResidualBlock {
    let bn1: NormAct
    let conv1: Conv2DLayer
    let bn2: NormAct
    let conv2: Conv2DLayer
    let proj: Conv2DLayer?

    // kept for backward: the inputs of the convolutions (nil in checkpoint mode, recomputed)
    private var h1: Tensor?
    private var h2: Tensor?

    /// The 3x3 convolutions use `dilation` (and padding = dilation).
    init(_ name: String, inChannels: Int, width outChannels: Int, stride: Int, dilation: Int, norm: NormSettings, rng: inout SplitMix64) throws {
        bn1 = try norm.layer("\(name).bn1", channels: inChannels)
        conv1 = Conv2DLayer("\(name).conv1", inChannels: inChannels, outChannels: outChannels, kernel: 3, stride: stride,
                            padding: dilation, dilation: dilation, rng: &rng)
        bn2 = try norm.layer("\(name).bn2", channels: outChannels)
        conv2 = Conv2DLayer("\(name).conv2", inChannels: outChannels, outChannels: outChannels, kernel: 3, padding: dilation,
                            dilation: dilation, rng: &rng)
        proj = (stride != 1 || inChannels != outChannels)
            ? Conv2DLayer("\(name).proj", inChannels: inChannels, outChannels: outChannels, kernel: 1, stride: stride, rng: &rng)
            : nil
    }

    /// In PyTorch state-dict order: bn1, conv1, bn2, conv2, proj.
    var allParameters: [Parameter] {
        bn1.allParameters + conv1.allParameters + bn2.allParameters + conv2.allParameters + (proj?.allParameters ?? [])
    }

    var normLayers: [NormAct] { [bn1, bn2] }

    var outChannels: Int { conv2.outChannels }

    func multiplyAdds(from size: (height: Int, width: Int), total: inout Double) -> (height: Int, width: Int) {
        func conv(_ layer: Conv2DLayer, _ size: (height: Int, width: Int)) -> (height: Int, width: Int) {
            let m = layer.multiplyAdds(height: size.height, width: size.width)
            total += m.count
            return (m.height, m.width)
        }
        if let proj { _ = conv(proj, size) }
        return conv(conv2, conv(conv1, size))
    }

    func forward(_ x: Tensor, workspace: Workspace) throws -> Tensor {
        // the identity shortcut must survive bn1 when bn1 overwrites x
        let identity: Tensor? = proj == nil ? (bn1.mode == .inplace ? x.clone() : x) : nil
        let h = try bn1.forward(x)
        let shortcut = proj?.forward(h, workspace: workspace) ?? identity!
        let a = conv1.forward(h, workspace: workspace)
        let hb = try bn2.forward(a)
        let out = conv2.forward(hb, workspace: workspace)
        addInPlace(out, shortcut)
        let keep = bn1.mode != .checkpoint
        h1 = keep ? h : nil
        h2 = keep ? hb : nil
        return out
    }

    func backward(_ dOut: Tensor, workspace: Workspace, gradientsReady: (Parameter) -> Void) -> Tensor {
        let hb = h2 ?? bn2.recomputeOutput()
        let dhb = conv2.backward(dOut, input: hb, inputGradient: true, workspace: workspace)!
        gradientsReady(conv2.weight)
        h2 = nil
        let da = bn2.backward(dhb)
        gradientsReady(bn2.weight); gradientsReady(bn2.bias)
        let h = h1 ?? bn1.recomputeOutput()
        if let proj {
            let dh = conv1.backward(da, input: h, inputGradient: true, workspace: workspace)!
            gradientsReady(conv1.weight)
            proj.backward(dOut, input: h, addingInputGradientTo: dh, workspace: workspace)  // no second tensor of h's size
            gradientsReady(proj.weight)
            h1 = nil
            let dx = bn1.backward(dh)
            gradientsReady(bn1.weight); gradientsReady(bn1.bias)
            return dx
        }
        let dh = conv1.backward(da, input: h, inputGradient: true, workspace: workspace)!
        gradientsReady(conv1.weight)
        h1 = nil
        let dx = bn1.backward(dh)
        gradientsReady(bn1.weight); gradientsReady(bn1.bias)
        addInPlace(dx, dOut)
        return dx
    }
}
