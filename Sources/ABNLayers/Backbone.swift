import ABNTensor

/// The body of a network: a stem (`BackboneStem`) and stages of residual blocks, named
/// `<prefix>S.B` ("stage2.0", "backbone.layer3.5"), each stage's first block with the stage's
/// stride. Its forward and backward are those of every network; the heads stay with their networks.
final class Backbone<Block: ResidualBlock> {
    let stem: any BackboneStem
    let stages: [[Block]]
    /// Channels of the last block's output.
    let outChannels: Int

    /// Stage i (0-based) is named `stagePrefix` + (i + 1). Draws the blocks' weights from `rng`
    /// in order (the stem has drawn its own before).
    init(stem: any BackboneStem, stagePrefix: String, stages: [BackboneStage], norm: NormSettings, rng: inout SplitMix64) throws {
        self.stem = stem
        var built: [[Block]] = []
        var channels = stem.outChannels
        for (i, stage) in stages.enumerated() {
            var blocks: [Block] = []
            for b in 0..<stage.depth {
                let block = try Block("\(stagePrefix)\(i + 1).\(b)", inChannels: channels, width: stage.width, stride: b == 0 ? stage.stride : 1,
                                      dilation: b == 0 ? stage.firstDilation : stage.dilation, norm: norm, rng: &rng)
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

    var normLayers: [NormAct] { stem.normLayers + stages.joined().flatMap(\.normLayers) }
    var probedLayers: [any ProbedLayer] { stem.normLayers + stages.joined().flatMap(\.probedLayers) }

    /// The last block's output for images (N, C, H, W), which are kept (not changed) for `backward`.
    func forward(_ images: Tensor, workspace: Workspace) throws -> Tensor {
        var x = try stem.forward(images, workspace: workspace)
        for block in stages.joined() { x = try block.forward(x, workspace: workspace) }
        return x
    }

    /// Backward from `gradient`, the gradient of the last block's output: the blocks in reverse,
    /// then the stem's (the images need no gradient). `gradient` is replaced block by block
    /// (inout, so that no caller's reference keeps a spent one alive).
    func backward(_ gradient: inout Tensor, workspace: Workspace, gradientsReady ready: (Parameter) -> Void) {
        for block in stages.joined().reversed() { gradient = block.backward(gradient, workspace: workspace, gradientsReady: ready) }
        stem.backward(gradient, workspace: workspace, gradientsReady: ready)
    }

    /// Forward multiply-adds of the stem and blocks for one image of height x width, and the
    /// output's size.
    func multiplyAdds(height: Int, width: Int) -> (count: Double, height: Int, width: Int) {
        let stem = self.stem.multiplyAdds(from: (height, width))
        var total = stem.count
        var size = (height: stem.height, width: stem.width)
        for block in stages.joined() { size = block.multiplyAdds(from: size, total: &total) }
        return (total, size.height, size.width)
    }
}

/// One stage: the width its blocks are built for, their count, the first block's stride, and
/// the dilation of the 3x3 convolutions of the first block and of the others (torchvision
/// keeps the previous stage's dilation in the first block of a dilated stage).
struct BackboneStage {
    var width: Int
    var depth: Int
    var stride: Int
    var dilation: Int
    var firstDilation: Int

    init(width: Int, depth: Int, stride: Int, dilation: Int, firstDilation: Int? = nil) {
        self.width = width
        self.depth = depth
        self.stride = stride
        self.dilation = dilation
        self.firstDilation = firstDilation ?? dilation
    }
}
