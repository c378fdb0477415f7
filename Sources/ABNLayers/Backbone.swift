import ABNTensor

/// The body of a network: a 3x3 stem convolution (`stem`, no bias) and stages `stage1` ...
/// `stageS` of residual blocks (`stageS.B`), each stage's first block with the stage's stride.
/// Its forward and backward are those of every network; the heads stay with their networks.
final class Backbone<Block: ResidualBlock> {
    /// One stage: the width its blocks are built for, their count, the first block's stride and
    /// the dilation of the 3x3 convolutions.
    struct Stage {
        var width: Int
        var depth: Int
        var stride: Int
        var dilation: Int
    }

    let stem: Conv2DLayer
    let stages: [[Block]]
    /// Channels of the last block's output.
    let outChannels: Int

    /// The images of the last forward, kept for the stem's weight gradient.
    private var images: Tensor?

    /// Draws the weights from `rng`: the stem's, then the blocks' in order.
    init(inChannels: Int, stemStride: Int, stages: [Stage], norm: NormSettings, rng: inout SplitMix64) throws {
        stem = Conv2DLayer("stem", inChannels: inChannels, outChannels: stages[0].width, kernel: 3, stride: stemStride, padding: 1, rng: &rng)
        var built: [[Block]] = []
        var channels = stages[0].width
        for (i, stage) in stages.enumerated() {
            var blocks: [Block] = []
            for b in 0..<stage.depth {
                let block = try Block("stage\(i + 1).\(b)", inChannels: channels, width: stage.width, stride: b == 0 ? stage.stride : 1,
                                      dilation: stage.dilation, norm: norm, rng: &rng)
                channels = block.outChannels
                blocks.append(block)
            }
            built.append(blocks)
        }
        self.stages = built
        outChannels = channels
    }

    /// In PyTorch state-dict order: the stem, then the blocks.
    var allParameters: [Parameter] { stem.allParameters + stages.joined().flatMap(\.allParameters) }

    var normLayers: [NormAct] { stages.joined().flatMap(\.normLayers) }

    /// The last block's output for images (N, C, H, W), which are kept (not changed) for `backward`.
    func forward(_ images: Tensor, workspace: Workspace) throws -> Tensor {
        var x = stem.forward(images, workspace: workspace)
        for block in stages.joined() { x = try block.forward(x, workspace: workspace) }
        self.images = images
        return x
    }

    /// Backward from `gradient`, the gradient of the last block's output: the blocks in reverse,
    /// then the stem's weight gradient (the images need none). `gradient` is replaced block by
    /// block (inout, so that no caller's reference keeps a spent one alive).
    func backward(_ gradient: inout Tensor, workspace: Workspace, gradientsReady ready: (Parameter) -> Void) {
        guard let images else { preconditionFailure("Backbone.backward before forward") }
        for block in stages.joined().reversed() { gradient = block.backward(gradient, workspace: workspace, gradientsReady: ready) }
        _ = stem.backward(gradient, input: images, inputGradient: false, workspace: workspace)
        ready(stem.weight)
        self.images = nil
    }

    /// Forward multiply-adds of the stem and blocks for one image of height x width, and the
    /// output's size.
    func multiplyAdds(height: Int, width: Int) -> (count: Double, height: Int, width: Int) {
        let stem = self.stem.multiplyAdds(height: height, width: width)
        var total = stem.count
        var size = (height: stem.height, width: stem.width)
        for block in stages.joined() { size = block.multiplyAdds(from: size, total: &total) }
        return (total, size.height, size.width)
    }
}
