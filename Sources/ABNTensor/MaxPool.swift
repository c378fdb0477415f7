import CKernels

/// A square max-pooling window: kernel k, stride s, padding p (padded positions never win).
/// Output size = (H + 2p - k) / s + 1 (floor), as PyTorch with ceil_mode false.
public struct MaxPoolGeometry: Sendable, Equatable {
    public let kernel: Int
    public let stride: Int
    public let padding: Int

    /// Padding at most half the kernel, as PyTorch requires (every window then holds an input position).
    public init(kernel: Int, stride: Int, padding: Int) {
        precondition(kernel >= 1 && stride >= 1 && padding >= 0 && padding <= kernel / 2,
                     "max pool: kernel and stride must be >= 1 and padding in 0...kernel / 2, got kernel \(kernel), stride \(stride), padding \(padding)")
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
    }

    /// Output size along a dimension of `size` input positions (0 when the window does not fit).
    public func outputSize(_ size: Int) -> Int {
        size + 2 * padding >= kernel ? (size + 2 * padding - kernel) / stride + 1 : 0
    }

    /// (N, C, OH, OW) for an input (N, C, H, W).
    public func outputShape(for input: [Int]) -> [Int] {
        checkShape(input.count == 4, "max pool: input shape \(input) is not (N, C, H, W)")
        let shape = [input[0], input[1], outputSize(input[2]), outputSize(input[3])]
        checkShape(shape[2] >= 1 && shape[3] >= 1,
                   "max pool: a \(kernel)x\(kernel) window with padding \(padding) does not fit an input of shape \(input)")
        return shape
    }
}

/// output (N, C, OH, OW) = the maximum of each window of input (N, C, H, W); a NaN in a window wins.
public func maxPool2dForward(output: Tensor, input: Tensor, geometry g: MaxPoolGeometry) {
    let want = g.outputShape(for: input.shape)
    checkShape(output.shape == want, "max pool: output shape \(output.shape) does not match \(want) for input shape \(input.shape)")
    let (h, w) = (input.shape[2], input.shape[3]), (oh, ow) = (want[2], want[3])
    let x = input.data, y = output.data
    Parallel.forRanges(input.shape[0] * input.shape[1], minimumPerThread: minimumPlanes(h * w)) { r in
        abn_max_pool_forward(y + r.lowerBound * oh * ow, x + r.lowerBound * h * w, r.count, h, w, g.kernel, g.stride, g.padding)
    }
}

/// dInput (N, C, H, W) overwritten: each output position's gradient in dOutput (N, C, OH, OW) is
/// added to the input position that won its window: the first maximum in row-major window order
/// (PyTorch CPU's choice; a NaN wins, the last one when several). The winner is recomputed from
/// `input` (no index tensor is kept); the adds run in output row-major order, each plane on one
/// thread, so the result does not depend on the thread count.
public func maxPool2dBackward(dInput: Tensor, dOutput: Tensor, input: Tensor, geometry g: MaxPoolGeometry) {
    let want = g.outputShape(for: input.shape)
    checkShape(dInput.shape == input.shape, "max pool: dInput shape \(dInput.shape) does not match input shape \(input.shape)")
    checkShape(dOutput.shape == want, "max pool: dOutput shape \(dOutput.shape) does not match \(want) for input shape \(input.shape)")
    let (h, w) = (input.shape[2], input.shape[3]), (oh, ow) = (want[2], want[3])
    let x = input.data, dx = dInput.data, dy = dOutput.data
    Parallel.forRanges(input.shape[0] * input.shape[1], minimumPerThread: minimumPlanes(h * w)) { r in
        abn_max_pool_backward(dx + r.lowerBound * h * w, dy + r.lowerBound * oh * ow, x + r.lowerBound * h * w, r.count,
                              h, w, g.kernel, g.stride, g.padding)
    }
}

/// Planes per worker for about 64K input values each.
private func minimumPlanes(_ pixels: Int) -> Int { max(1, 65_536 / max(1, pixels)) }
