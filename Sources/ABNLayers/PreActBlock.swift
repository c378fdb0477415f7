import ABNTensor

/// Pre-activation residual block (docs/design.md#reference-network):
///   h = bn1(x); shortcut = proj(h) if the shape changes, else x
///   out = conv2(bn2(conv1(h))) + shortcut
/// With an in-place bn1 and an identity shortcut, x is copied before bn1 overwrites it.
final class PreActBlock {
    let bn1: NormAct
    let conv1: Conv2DLayer
    let bn2: NormAct
    let conv2: Conv2DLayer
    let proj: Conv2DLayer?

    // kept for backward: the inputs of the convolutions (nil in checkpoint mode, recomputed)
    private var h1: Tensor?
    private var h2: Tensor?

    /// The 3x3 convolutions use `dilation` (and padding = dilation).
    init(_ name: String, inChannels: Int, outChannels: Int, stride: Int, dilation: Int = 1, norm: NormSettings, rng: inout SplitMix64) throws {
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

    /// Forward multiply-adds of `stages` from an input of `size`, added to `total`; returns
    /// the output size.
    static func multiplyAdds(_ stages: [[PreActBlock]], from size: (Int, Int), total: inout Double) -> (Int, Int) {
        func conv(_ l: Conv2DLayer, _ s: (Int, Int)) -> (Int, Int) {
            let m = l.multiplyAdds(height: s.0, width: s.1)
            total += m.count
            return (m.height, m.width)
        }
        var size = size
        for block in stages.joined() {
            if let proj = block.proj { _ = conv(proj, size) }
            size = conv(block.conv2, conv(block.conv1, size))
        }
        return size
    }

    /// The body both networks share, forward: `stem` on images (N, C, H, W), then the blocks of
    /// `stages` in order; returns the last block's output.
    static func bodyForward(_ images: Tensor, stem: Conv2DLayer, stages: [[PreActBlock]], workspace: Workspace) throws -> Tensor {
        var x = stem.forward(images, workspace: workspace)
        for block in stages.joined() { x = try block.forward(x, workspace: workspace) }
        return x
    }

    /// The body's backward from `gradient`, the gradient of the last block's output: the blocks
    /// in reverse, then the stem's weight gradient (the images need none). `gradient` is
    /// replaced block by block (inout, so that no caller's reference keeps a spent one alive).
    static func bodyBackward(_ gradient: inout Tensor, images: Tensor, stem: Conv2DLayer, stages: [[PreActBlock]],
                             workspace: Workspace, gradientsReady ready: (Parameter) -> Void) {
        for block in stages.joined().reversed() { gradient = block.backward(gradient, workspace: workspace, gradientsReady: ready) }
        _ = stem.backward(gradient, input: images, inputGradient: false, workspace: workspace)
        ready(stem.weight)
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

    /// Gradients of the parameters (written) and of the block's input (returned).
    /// dOut is read but not changed.
    /// `gradientsReady` is called with each parameter as soon as its gradient is final.
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
