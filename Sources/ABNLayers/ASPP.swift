import ABNTensor

/// torchvision's atrous spatial pyramid pooling (`classifier.0` of its DeepLabV3), every norm
/// layer a `NormAct` with the activation:
///   convs.0: 1x1 conv + norm;  convs.1-3: 3x3 conv with dilation d1-d3 + norm;
///   convs.4: global average pool + 1x1 conv (`convs.4.1`) + norm (`convs.4.2`), broadcast;
///   project: 1x1 conv over the five branches' concatenation (5 width -> width) + norm, then
///   dropout (training only).
/// The projection is computed as the sum of its five column blocks applied to the branches, so
/// the concatenation (5 width channels at full size) is never built; the pooling branch's block
/// is applied at 1x1 and added at every position.
final class ASPP {
    let branches: [(conv: Conv2DLayer, norm: NormAct)]
    let poolConv: Conv2DLayer
    let poolNorm: NormAct
    /// `project.0.weight` (width, 5 width, 1, 1).
    let project: Parameter
    let projectNorm: NormAct
    let dropout: Dropout
    let width: Int

    // kept for backward (the norm outputs are nil in checkpoint mode: recomputed)
    private var input: Tensor?
    private var branchOutputs: [Tensor?] = []
    private var pooled: Tensor?
    private var poolOutput: Tensor?
    private var projected: Tensor?
    private var imageKeys: [UInt64] = []

    /// An ASPP named `name` ("classifier.0") over `inChannels` channels.
    init(_ name: String, inChannels: Int, width: Int, dilations: [Int], dropout: Float, norm: NormSettings, rng: inout SplitMix64) throws {
        self.width = width
        var branches: [(Conv2DLayer, NormAct)] = []
        for (j, d) in ([1] + dilations).enumerated() {
            let conv = Conv2DLayer("\(name).convs.\(j).0", inChannels: inChannels, outChannels: width, kernel: j == 0 ? 1 : 3,
                                   padding: j == 0 ? 0 : d, dilation: d, rng: &rng)
            branches.append((conv, try norm.layer("\(name).convs.\(j).1", channels: width)))
        }
        self.branches = branches
        let j = branches.count
        poolConv = Conv2DLayer("\(name).convs.\(j).1", inChannels: inChannels, outChannels: width, kernel: 1, rng: &rng)
        poolNorm = try norm.layer("\(name).convs.\(j).2", channels: width)
        project = Parameter("\(name).project.0.weight", shape: [width, (j + 1) * width, 1, 1],
                            normalStd: Float((2.0 / Double((j + 1) * width)).squareRoot()), rng: &rng)
        projectNorm = try norm.layer("\(name).project.1", channels: width)
        self.dropout = Dropout(probability: dropout)
    }

    /// In PyTorch state-dict order.
    var allParameters: [Parameter] {
        branches.flatMap { $0.conv.allParameters + $0.norm.allParameters } + poolConv.allParameters + poolNorm.allParameters
            + [project] + projectNorm.allParameters
    }

    var normLayers: [NormAct] { branches.map(\.norm) + [poolNorm, projectNorm] }

    /// Forward multiply-adds for one image of h x w input positions.
    func multiplyAdds(height: Int, width: Int) -> Double {
        let positions = Double(height * width)
        return branches.reduce(0) { $0 + $1.conv.multiplyAdds(height: height, width: width).count }
            + poolConv.multiplyAdds(height: 1, width: 1).count + Double(project.count) / Double(branches.count + 1) * (Double(branches.count) * positions + 1)
    }

    /// The projection's output (N, width, h, w) after dropout for the body's output x (N, C, h, w),
    /// which is kept (not changed). In training the dropout mask of image n is drawn from `imageKeys[n]`.
    func forward(_ x: Tensor, imageKeys: [UInt64], workspace: Workspace) throws -> Tensor {
        let n = x.shape[0], h = x.shape[2], w = x.shape[3]
        let blocks = projectBlocks()
        let projected = Tensor(uninitialized: [n, width, h, w])
        let keep = projectNorm.mode != .checkpoint
        branchOutputs = []
        for (j, (conv, norm)) in branches.enumerated() {
            let b = try norm.forward(conv.forward(x, workspace: workspace))
            conv2dForward(output: projected, input: b, weight: blocks[j], bias: nil, geometry: blockGeometry(b), accumulate: j > 0,
                          workspace: workspace)
            branchOutputs.append(keep ? b : nil)
        }
        let pooled = Tensor(uninitialized: [n, x.shape[1]])
        globalAveragePoolForward(output: pooled, input: x)
        let pooledMap = pooled.reshaped([n, x.shape[1], 1, 1])
        let poolOutput = try poolNorm.forward(poolConv.forward(pooledMap, workspace: workspace))
        let poolProjected = Tensor(uninitialized: [n, width, 1, 1])
        conv2dForward(output: poolProjected, input: poolOutput, weight: blocks[branches.count], bias: nil,
                      geometry: blockGeometry(poolOutput), workspace: workspace)
        addBroadcast(projected, poolProjected)
        let normed = try projectNorm.forward(projected)
        input = x
        self.pooled = pooledMap
        self.poolOutput = keep ? poolOutput : nil
        self.projected = keep ? normed : nil
        guard projectNorm.training else { return normed }
        self.imageKeys = imageKeys
        let dropped = Tensor(uninitialized: normed.shape)
        dropout.apply(dropped, normed, imageKeys: imageKeys)
        return dropped
    }

    /// The projection's output as `forward` returned it, computed again (the dropout's output is
    /// not kept: its consumer needs it once more for its weight gradient).
    func recomputeOutput() -> Tensor {
        let normed = projected ?? projectNorm.recomputeOutput()
        guard projectNorm.training else { return normed }
        let dropped = Tensor(uninitialized: normed.shape)
        dropout.apply(dropped, normed, imageKeys: imageKeys)
        return dropped
    }

    /// From the gradient of `forward`'s output (overwritten), the gradient of x (N, C, h, w).
    func backward(_ dOut: Tensor, workspace: Workspace, gradientsReady ready: (Parameter) -> Void) -> Tensor {
        guard let x = input, let pooled else { preconditionFailure("ASPP.backward before forward") }
        if projectNorm.training { dropout.apply(dOut, dOut, imageKeys: imageKeys) }
        let dProjected = projectNorm.backward(dOut)
        ready(projectNorm.weight); ready(projectNorm.bias)
        projected = nil
        let blocks = projectBlocks()
        let dBlocks = blocks.map { Tensor(uninitialized: $0.shape) }

        // the pooling branch: the broadcast add's gradient is the sum over positions
        let n = x.shape[0]
        let dPoolProjected = Tensor(uninitialized: [n, width, 1, 1])
        sumPlanes(dPoolProjected, dProjected)
        let poolOutput = self.poolOutput ?? poolNorm.recomputeOutput()
        let dPoolOutput = Tensor(uninitialized: poolOutput.shape)
        conv2dBackward(dInput: dPoolOutput, dWeight: dBlocks[branches.count], dBias: nil, dOutput: dPoolProjected, input: poolOutput,
                       weight: blocks[branches.count], geometry: blockGeometry(poolOutput), workspace: workspace)
        let dPoolConv = poolNorm.backward(dPoolOutput)
        ready(poolNorm.weight); ready(poolNorm.bias)
        let dPooled = poolConv.backward(dPoolConv, input: pooled, inputGradient: true, workspace: workspace)!
        ready(poolConv.weight)
        let dx = Tensor(uninitialized: x.shape)
        globalAveragePoolBackward(dInput: dx, dOutput: dPooled.reshaped([n, x.shape[1]]))

        // the convolution branches, one at a time
        for (j, (conv, norm)) in branches.enumerated().reversed() {
            let b = branchOutputs[j] ?? norm.recomputeOutput()
            branchOutputs[j] = nil
            let db = Tensor(uninitialized: b.shape)
            conv2dBackward(dInput: db, dWeight: dBlocks[j], dBias: nil, dOutput: dProjected, input: b, weight: blocks[j],
                           geometry: blockGeometry(b), workspace: workspace)
            let dConv = norm.backward(db)
            ready(norm.weight); ready(norm.bias)
            conv.backward(dConv, input: x, addingInputGradientTo: dx, workspace: workspace)
            ready(conv.weight)
        }
        scatterBlocks(dBlocks, into: project.gradient!)
        ready(project)
        input = nil
        self.pooled = nil
        self.poolOutput = nil
        return dx
    }

    /// The geometry of one column block of the projection applied to a branch's output.
    private func blockGeometry(_ branch: Tensor) -> Conv2DGeometry {
        Conv2DGeometry(input: branch.shape, outChannels: width, kernel: 1)
    }

    /// The projection's weight as five contiguous (width, width, 1, 1) column blocks.
    private func projectBlocks() -> [Tensor] {
        let blocks = branches.count + 1, src = project.value.data
        return (0..<blocks).map { j in
            let block = Tensor(uninitialized: [width, width, 1, 1])
            for o in 0..<width { (block.data + o * width).update(from: src + o * blocks * width + j * width, count: width) }
            return block
        }
    }

    /// Writes column blocks back into a (width, 5 width, 1, 1) tensor.
    private func scatterBlocks(_ parts: [Tensor], into whole: Tensor) {
        let blocks = parts.count, dst = whole.data
        for (j, part) in parts.enumerated() {
            for o in 0..<width { (dst + o * blocks * width + j * width).update(from: part.data + o * width, count: width) }
        }
    }
}
