/// The three computations of a convolution.
enum ConvolutionDirection {
    case forward, inputGradient, weightGradient
}

/// One way of computing convolutions: by GEMMs over a lowered (rearranged) input, or directly.
/// Each lowering file declares one; `ConvolutionPlan.lowerings` lists them in order of
/// preference. Adding a lowering is a new file and a line in that list.
///
/// The computations take their arguments in one order: outputs, inputs, options
/// (`accumulate`), the workspace, then the geometry; each sizes its work items by `plan`.
protocol ConvolutionLowering {
    /// The name reports and `ABN_LOWERING` use.
    static var name: String { get }
    /// Older names `ABN_LOWERING` still accepts (default: none).
    static var aliases: [String] { get }
    /// Whether it can compute `g`'s forward pass and weight gradient (what `ABN_LOWERING` may force).
    static func applies(to g: Conv2DGeometry) -> Bool
    /// Whether the automatic choice takes it for `direction` of `g`, where it applies (default: yes).
    static func isPreferred(for direction: ConvolutionDirection, of g: Conv2DGeometry) -> Bool
    /// The work items of `direction` of `g` and the sizes of their scratch, with `budget`
    /// elements for one worker's lowered matrix.
    static func plan(for direction: ConvolutionDirection, of g: Conv2DGeometry, budget: Int) -> ConvolutionPlan
    /// Partial sums of the weight gradient: its items are summed in at most this many groups
    /// (default 8; see `ConvolutionPlan.groups`).
    static var weightGradientGroups: Int { get }

    /// y (N, outC, outH, outW) = conv(x (N, C, H, W), w (outC, C, kH, kW)) + bias (outC), added
    /// to y with `accumulate`.
    static func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                        _ bias: UnsafePointer<Float>?, accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry)
    /// dW (outC, C, kH, kW) = the weight gradient from dy (N, outC, outH, outW) and x (N, C, H,
    /// W), summed in the plan's groups of items added in order (so that it does not depend on
    /// the thread count); added to dW with `accumulate`.
    static func weightGradient(_ dW: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                               accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry)
    /// The lowering that computes its input gradient, where that is not the forward pass of the
    /// transposed geometry (`Conv2DGeometry.inputGradientConvolution`); nil (the default): its
    /// own `inputGradient`.
    static var inputGradientFallback: (any ConvolutionLowering.Type)? { get }
    /// The name reports give its own input gradient (default: `name`).
    static var inputGradientName: String { get }
    /// dx (N, C, H, W) = the input gradient from dy (N, outC, outH, outW) and w, added to dx
    /// with `accumulate`. Default: `inputGradientFallback`'s.
    static func inputGradient(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                              accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry)
}

extension ConvolutionLowering {
    static var aliases: [String] { [] }
    static func isPreferred(for direction: ConvolutionDirection, of g: Conv2DGeometry) -> Bool { true }
    static var weightGradientGroups: Int { 8 }
    static var inputGradientFallback: (any ConvolutionLowering.Type)? { nil }
    static var inputGradientName: String { name }

    /// The lowering whose own input gradient runs for this one: itself or the end of its fallbacks.
    static var inputGradientLowering: any ConvolutionLowering.Type { inputGradientFallback?.inputGradientLowering ?? Self.self }

    static func inputGradient(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                              accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
        guard let fallback = inputGradientFallback else { preconditionFailure("the \(name) lowering has no input gradient and no fallback") }
        fallback.inputGradient(dx, dy, w, accumulate: accumulate, workspace, g)
    }
}
