// The choice of lowering for each direction of a convolution, and how its batch is cut into
// work items.

import Foundation

/// How a convolution's batch is cut into work items for the workers, so that a worker's
/// lowered matrix stays in its core's cache: a chunk of whole images when one image's lowered
/// matrix fits the budget, else a block of one image's output rows. Each lowering sizes its
/// own (`ConvolutionLowering.plan`).
struct ConvolutionPlan {
    /// The lowerings in order of preference: the first that applies to a geometry, and is
    /// preferred for the direction, computes it (`Im2colLowering`, last, applies to every one).
    static let lowerings: [any ConvolutionLowering.Type] = [
        DirectLowering.self,
        WinogradLowering.self,
        TapLowering.self,
        PhaseStackLowering.self,
        RowShiftLowering.self,
        Stride2Im2colLowering.self,
        Im2colLowering.self,
    ]

    /// The lowering that computes the items.
    let lowering: any ConvolutionLowering.Type
    /// Images per item (1 when items are row blocks).
    let images: Int
    /// Output rows per item (all rows when items are chunks of images).
    let rows: Int
    let blocksPerImage: Int
    let items: Int
    /// Columns of the largest item's GEMM (output pixels, with row-shifted lowering also the
    /// junk rows between stacked images; with stacked phase planes, a chunk's tiles).
    let maxColumns: Int
    /// Elements of the largest item's lowered matrix (im2col columns, row-shifted rows, Winograd
    /// tiles, a chunk's stacked phase planes, or the direct convolution's scratch).
    let loweredCount: Int

    /// Items of `images` images (1: blocks of `rows` output rows of one image) of `g`.
    init(_ lowering: any ConvolutionLowering.Type, _ g: Conv2DGeometry, images: Int, rows: Int, maxColumns: Int, loweredCount: Int) {
        self.lowering = lowering
        self.images = images
        self.rows = rows
        self.maxColumns = maxColumns
        self.loweredCount = loweredCount
        blocksPerImage = (g.outHeight + rows - 1) / rows
        items = images > 1 ? (g.batch + images - 1) / images : g.batch * blocksPerImage
    }

    /// The lowering of `direction` of `g`: the one `ABN_LOWERING` forces for it where that one
    /// applies (not for every input gradient, see `LoweringRule`), else the first of `lowerings`
    /// that applies and is preferred.
    static func lowering(for direction: ConvolutionDirection, of g: Conv2DGeometry) -> any ConvolutionLowering.Type {
        if direction != .inputGradient, let forced = forcedLowering(of: g) { return forced }
        return lowerings.first { $0.applies(to: g) && $0.isPreferred(for: direction, of: g) }!
    }

    private static func forcedLowering(of g: Conv2DGeometry) -> (any ConvolutionLowering.Type)? {
        guard let rule = RunContext.process.loweringRules.first(where: { $0.text.isEmpty || g.description.contains($0.text) }) else { return nil }
        return lowerings.first { ($0.name == rule.name || $0.aliases.contains(rule.name)) && $0.applies(to: g) }
    }

    /// The weight gradient sums its items in this many contiguous groups, each into its own
    /// partial sum, and adds the partials in group order: a fixed split, so that the result
    /// does not depend on the thread count or on which worker ran which group.
    var groups: Int { min(items, lowering.weightGradientGroups) }

    /// The items of weight-gradient group `group`.
    func items(ofGroup group: Int) -> Range<Int> { items * group / groups..<items * (group + 1) / groups }

    /// The images and output rows of item `index`.
    func item(_ index: Int, _ g: Conv2DGeometry) -> (firstImage: Int, images: Int, rows: Range<Int>) {
        if images > 1 || blocksPerImage == 1 {
            let n0 = index * images
            return (n0, min(images, g.batch - n0), 0..<g.outHeight)
        }
        let r0 = (index % blocksPerImage) * rows
        return (index / blocksPerImage, 1, r0..<min(g.outHeight, r0 + rows))
    }
}
