import ABNTensor

/// The layers a `Backbone` runs before its stages. It keeps the images for its weight gradient;
/// the images need no gradient.
protocol BackboneStem: AnyObject {
    /// Channels of the output.
    var outChannels: Int { get }
    /// In PyTorch state-dict order.
    var allParameters: [Parameter] { get }
    /// In forward order.
    var normLayers: [NormAct] { get }
    /// The output for images (N, C, H, W), which are kept (not changed) for `backward`.
    func forward(_ images: Tensor, workspace: Workspace) throws -> Tensor
    /// The parameter gradients from the output's gradient `gradient` (which may be overwritten),
    /// each passed to `gradientsReady` when final.
    func backward(_ gradient: Tensor, workspace: Workspace, gradientsReady: (Parameter) -> Void)
    /// Forward multiply-adds for one image of `size`, and the output's size.
    func multiplyAdds(from size: (height: Int, width: Int)) -> (count: Double, height: Int, width: Int)
}
