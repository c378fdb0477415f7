import ABNTensor

/// A torchvision residual block: a branch of convolutions and norm layers (`ConvNormChain`)
/// whose output a `ResidualJoin` adds to the shortcut and activates. The blocks differ only in
/// their branches (`BasicBlock`, `Bottleneck`); this extension runs them.
protocol JoinedBlock: ResidualBlock {
    var branch: ConvNormChain { get }
    var join: ResidualJoin { get }
}

extension JoinedBlock {
    var outChannels: Int { branch.outChannels }

    /// In PyTorch state-dict order: the branch, then the downsample.
    var allParameters: [Parameter] { branch.allParameters + join.allParameters }
    var normLayers: [NormAct] { branch.normLayers + join.normLayers }
    var probedLayers: [any ProbedLayer] { branch.normLayers + join.probedLayers }

    func multiplyAdds(from size: (height: Int, width: Int), total: inout Double) -> (height: Int, width: Int) {
        total += join.multiplyAdds(from: size)
        return branch.multiplyAdds(from: size, total: &total)
    }

    func forward(_ x: Tensor, workspace: Workspace) throws -> Tensor {
        try join.forward(branch: branch.forward(x, workspace: workspace), input: x, lastNorm: branch.last, workspace: workspace)
    }

    func backward(_ dOut: Tensor, workspace: Workspace, gradientsReady ready: (Parameter) -> Void) -> Tensor {
        let (dBranch, dx) = join.backward(dOut, workspace: workspace, gradientsReady: ready)
        branch.backward(dBranch, addingInputGradientTo: dx, workspace: workspace, gradientsReady: ready)
        return dx
    }
}
