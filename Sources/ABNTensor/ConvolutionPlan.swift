// The choice of lowering for a convolution and how its batch is cut into work items.

import Foundation

/// How a convolution's batch is cut into work items for the workers, so that a worker's
/// lowered matrix stays in its core's cache: a chunk of whole images when one image's lowered
/// matrix fits the budget, else a block of one image's output rows. With row-shifted lowering
/// the chunk is as small as gives GEMMs `minimumColumns` wide (one image unless they are small).
struct ConvolutionPlan {
    /// Images per item (1 when items are row blocks).
    let images: Int
    /// Output rows per item (all rows when items are chunks of images).
    let rows: Int
    let blocksPerImage: Int
    let items: Int
    /// Columns of the largest item's GEMM (output pixels, with row-shifted lowering also the
    /// junk rows between stacked images; with stacked phases, a chunk's tiles).
    let maxColumns: Int
    /// Elements of the largest item's lowered matrix (im2col columns, row-shifted rows, Winograd
    /// tiles, or a chunk's stacked phase planes).
    let loweredCount: Int

    /// How an item is lowered: im2col columns, optionally with items split into row blocks (not
    /// for col2im, which adds whole images); row-shifted rows (RowShiftLowering.swift);
    /// Winograd-transformed tiles (WinogradLowering.swift); im2col by split rows (stride 2,
    /// PhaseLowering.swift); dilated phase planes stacked into images for Winograd
    /// (PhaseStackLowering.swift); or not at all, one image convolved directly
    /// (DirectLowering.swift).
    enum Lowering { case im2col(splitRows: Bool), rowShift, winograd, phases, phaseStack, direct }

    /// How this plan's items are lowered.
    let lowering: Lowering

    /// The plan of the forward pass (or the weight gradient): direct, Winograd, stacked phases,
    /// row-shifted or phase lowering where the geometry allows it, else im2col with row blocks
    /// for large images.
    init(_ g: Conv2DGeometry, budget: Int, weightGradient: Bool = false) {
        self.init(g, budget: budget, lowering: Self.lowering(of: g, weightGradient: weightGradient))
    }

    /// The lowering of the forward pass (or the weight gradient) of `g`: the one `ABN_LOWERING`
    /// forces for it where that one applies, else the automatic choice.
    ///
    /// Stacked phases beat row shifts where most of the stacked tiles' outputs are wanted:
    /// measured on 24x24 maps, 96 channels, as a training rank runs them (a Zen 4, AMD EPYC
    /// family 25 model 17; one thread, 8 images, `abn bench kernels --network deeplab`),
    /// dilation 2 and 4 (92% and 86% of the outputs wanted) ran at 90-130% of sgemm against
    /// row shifts' 64-92% in every direction;
    /// dilation 8 and 12 (56%, 67%) ran forward at 55-63% against 78-90%, but their weight
    /// gradients at 50-56% against 30-37%. (With 2 threads at 16 images the forward pass and
    /// input gradient were even, the weight gradients still ahead.)
    static func lowering(of g: Conv2DGeometry, weightGradient: Bool = false) -> Lowering {
        if let forced = forcedLowering(of: g) { return forced }
        if g.convolvesDirectly { return .direct }
        if g.usesWinograd { return .winograd }
        if g.stacksPhases && (weightGradient || g.stackedOutputsWanted >= 0.75) { return .phaseStack }
        return g.lowersByRowShift ? .rowShift : g.lowersByPhases ? .phases : .im2col(splitRows: true)
    }

    /// `ABN_LOWERING`, for A/B runs: `NAME` (every convolution it applies to) or comma-separated
    /// `TEXT=NAME` rules, the first rule whose TEXT is part of the geometry's description
    /// (e.g. "64->64 3x3") deciding; NAME is winograd, row-shift, phases or im2col. A lowering that
    /// does not apply to a shape (Winograd needs 3x3, stride 1, pad 1, 16+ channels; row-shift
    /// stride 1; phases stride 2 and dilation 1) leaves that shape's automatic choice.
    static let overrides: [(text: String, name: String)] = {
        guard let value = ProcessInfo.processInfo.environment["ABN_LOWERING"], !value.isEmpty else { return [] }
        return value.split(separator: ",").map { rule in
            let parts = rule.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            return parts.count == 2 ? (parts[0], parts[1]) : ("", parts[0])
        }
    }()

    private static func forcedLowering(of g: Conv2DGeometry) -> Lowering? {
        guard let rule = overrides.first(where: { $0.text.isEmpty || g.description.contains($0.text) }) else { return nil }
        switch rule.name {
        case "direct" where g.convolvesDirectly: return .direct
        case "winograd" where g.usesWinograd: return .winograd
        case "phase-stack" where g.stacksPhases: return .phaseStack
        case "row-shift" where g.lowersByRowShift: return .rowShift
        case "phases" where g.lowersByPhases: return .phases
        case "im2col": return .im2col(splitRows: true)
        default: return nil
        }
    }

    /// Row-shifted lowering stacks small images until a GEMM has at least this many columns.
    static let minimumColumns = 256
    /// Winograd items hold about this many tiles (the GEMMs' columns): as many whole images as
    /// fit, or blocks of one image's tile rows, so that a worker's transformed input and
    /// products stay in its core's cache.
    static let winogradTiles = 200
    /// Stacked-phase chunks hold about this many Winograd tiles: enough items of
    /// `winogradTiles` for the workers, few enough images to keep the stacked copies small.
    static let stackedTiles = 800

    init(_ g: Conv2DGeometry, budget: Int, lowering: Lowering) {
        self.lowering = lowering
        switch lowering {
        case .winograd:
            let perImage = g.tileStride(tileRows: g.tileRows)
            if perImage <= Self.winogradTiles {
                images = max(1, min(g.batch, Self.winogradTiles / perImage))
                rows = g.outHeight
                maxColumns = images * perImage
            } else {  // blocks of tile rows, as even as they can be
                let blocks = (perImage + Self.winogradTiles - 1) / Self.winogradTiles
                let tileRows = (g.tileRows + blocks - 1) / blocks
                images = 1
                rows = 2 * tileRows
                maxColumns = g.tileStride(tileRows: tileRows)
            }
            loweredCount = winogradPositions * g.inChannels * maxColumns
        case .phaseStack:
            let stacked = g.stackedGeometry(images: 1)
            let perImage = stacked.tileStride(tileRows: stacked.tileRows)
            images = max(1, min(g.batch, Self.stackedTiles / perImage))
            rows = g.outHeight
            maxColumns = images * perImage
            loweredCount = images * g.inChannels * g.stackedPixels
        case .direct:
            images = 1
            rows = g.outHeight
            maxColumns = g.outPixels
            loweredCount = g.directScratch
        case .phases:
            rows = g.outHeight
            images = max(1, min(g.batch, budget / (g.patchSize * g.outPixels)))
            maxColumns = images * g.outPixels
            loweredCount = g.patchSize * (maxColumns + Self.splitRowSlack)
        case .rowShift:
            let perOutputRow = g.shiftedPatchSize * g.outWidth
            let perImage = perOutputRow * g.paddedRows(outputRows: g.outHeight)
            if perImage <= budget {
                rows = g.outHeight
                let wanted = g.stacksImages ? (Self.minimumColumns + g.outPixels - 1) / g.outPixels : 1
                let fitting = g.stacksImages ? 1 + (budget - perImage) / (perOutputRow * g.rowPeriod) : 1
                images = max(1, min(g.batch, wanted, fitting))
            } else {
                images = 1
                rows = max(1, min(g.outHeight, budget / perOutputRow - g.dilationHeight * (g.kernelHeight - 1)))
            }
            let stackedRows = (images - 1) * g.rowPeriod
            loweredCount = perOutputRow * (stackedRows + g.paddedRows(outputRows: rows))
            maxColumns = (stackedRows + rows) * g.outWidth
        case .im2col(let splitRows):
            let perImage = g.patchSize * g.outPixels
            if perImage <= budget || !splitRows {
                images = max(1, min(g.batch, budget / max(1, perImage)))
                rows = g.outHeight
            } else {
                images = 1
                rows = max(1, min(g.outHeight, budget / (g.patchSize * g.outWidth)))
            }
            loweredCount = g.patchSize * images * rows * g.outWidth
            maxColumns = images * rows * g.outWidth
        }
        blocksPerImage = (g.outHeight + rows - 1) / rows
        items = images > 1 ? (g.batch + images - 1) / images : g.batch * blocksPerImage
    }

    /// The weight gradient sums its items in this many contiguous groups, each into its own
    /// partial sum, and adds the partials in group order: a fixed split, so that the result
    /// does not depend on the thread count or on which worker ran which group. (Four for
    /// Winograd, whose partials hold 16 values per kernel instead of 9.)
    var groups: Int {
        if case .winograd = lowering { return min(items, 4) }
        return min(items, 8)
    }

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

extension ConvolutionPlan.Lowering {
    /// The name reports and `ABN_LOWERING` use.
    var name: String {
        switch self {
        case .direct: "direct"
        case .winograd: "winograd"
        case .phaseStack: "phase-stack"
        case .rowShift: "row-shift"
        case .phases: "phases"
        case .im2col: "im2col"
        }
    }
}
