/// Scratch memory reused by the kernels across layers and steps: it grows to the largest
/// request and never shrinks, so a steady-state training step allocates nothing. Its
/// buffers are tensors, so the memory ledger counts them.
///
/// Not thread-safe: request buffers on the calling thread, then hand the pointers to workers.
public final class Workspace {
    /// What a scratch buffer is used for; each purpose has its own buffer per worker.
    public enum Slot: Int, CaseIterable {
        /// A work item's lowered input: im2col columns (C*kH*kW, images*outH*outW), row-shifted
        /// rows (C*kW, paddedRows*outW), Winograd-transformed tiles (16, C, tiles) or the direct
        /// convolution's shifted copies of an image.
        case loweredInput
        /// A work item's output or output gradient as a GEMM operand: (outC, images*outH*outW),
        /// kernel-row-shifted output gradients (kH*outC, columns), or Winograd products and their
        /// gradients (16, outC, tiles).
        case loweredOutput
        /// The weight gradient's partial sums, one per group of items: (outC, C*kH*kW) or the
        /// lowering's weight layout.
        case weightGradientPartials
        /// A convolution kernel flipped and transposed for the input gradient: (C, outC, kH, kW).
        case flippedWeight
        /// A convolution kernel in a lowering's layout: split by kernel row (kH, outC, C*kW), or
        /// Winograd-transformed (16, outC, C).
        case loweredWeight
        /// A chunk's input stacked by phase planes: (images, C, stackedHeight, Wp).
        case stackedInput
        /// A chunk's output or output gradient stacked by phase planes: (images, outC, stackedHeight, Wp).
        case stackedOutput
        /// A worker's padded input-gradient row and its even and odd halves (the stride-2 col2im).
        case rowHalves
    }

    /// Upper bound, in elements, of one worker's lowered matrix for im2col, row-shifted and
    /// stride-2 lowering (1 MiB): a convolution processes its batch in chunks of images that fit
    /// (at least one image, or a block of its rows). Winograd items are sized in tiles instead
    /// (`WinogradLowering.tilesPerItem`).
    public var columnBudget: Int

    private var buffers: [Tensor?] = Array(repeating: nil, count: Slot.allCases.count)

    public init(columnBudget: Int = 1 << 18) {
        self.columnBudget = columnBudget
    }

    /// One buffer of at least `count` elements per worker, 64-byte aligned; contents unspecified.
    public func buffers(_ slot: Slot, workers: Int, count: Int) -> [UnsafeMutablePointer<Float>] {
        let stride = (count + 15) / 16 * 16
        let needed = stride * workers
        if buffers[slot.rawValue].map({ $0.count < needed }) ?? true {
            buffers[slot.rawValue] = nil  // free the old buffer before allocating the larger one
            buffers[slot.rawValue] = Tensor(uninitialized: [needed])
        }
        let base = buffers[slot.rawValue]!.data
        return (0..<workers).map { base + $0 * stride }
    }

    /// Bytes held by all scratch buffers.
    public var byteCount: Int { buffers.reduce(0) { $0 + ($1?.byteCount ?? 0) } }

    /// Frees all scratch buffers.
    public func release() {
        buffers = Array(repeating: nil, count: Slot.allCases.count)
    }
}
