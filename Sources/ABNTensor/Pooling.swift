import CKernels

/// output (N, C) = mean over H, W of input (N, C, H, W).
public func globalAveragePoolForward(output: Tensor, input: Tensor) {
    checkShape(input.shape.count == 4 && output.shape == [input.shape[0], input.shape[1]],
               "global average pool: output shape \(output.shape) does not match input shape \(input.shape) (want (N, C) for (N, C, H, W))")
    let planes = input.shape[0] * input.shape[1], hw = input.shape[2] * input.shape[3]
    let x = input.data, y = output.data
    Parallel.forRanges(planes, minimumPerThread: 64) { r in abn_average_planes(y + r.lowerBound, x + r.lowerBound * hw, r.count, hw) }
}

/// dInput (N, C, H, W) = dOutput (N, C) / (H*W), broadcast over H, W (overwritten).
public func globalAveragePoolBackward(dInput: Tensor, dOutput: Tensor) {
    checkShape(dInput.shape.count == 4 && dOutput.shape == [dInput.shape[0], dInput.shape[1]],
               "global average pool: dOutput shape \(dOutput.shape) does not match dInput shape \(dInput.shape)")
    let planes = dInput.shape[0] * dInput.shape[1], hw = dInput.shape[2] * dInput.shape[3]
    let dx = dInput.data, dy = dOutput.data
    let scale = 1 / Float(hw)
    Parallel.forEach(planes, minimumPerThread: 64) { t in
        (dx + t * hw).update(repeating: dy[t] * scale, count: hw)
    }
}

private func checkMaxPoolShapes(_ output: Tensor, _ input: Tensor, _ what: String) {
    let s = input.shape
    checkShape(s.count == 4 && output.shape == [s[0], s[1], s[2] / 2, s[3] / 2],
               "max pool 2x2: \(what) shape \(output.shape) does not match input shape \(s) (want (N, C, H/2, W/2))")
}

/// output (N, C, H/2, W/2) = max over each 2x2 window (stride 2) of input (N, C, H, W);
/// a trailing odd row or column is dropped, as in PyTorch.
public func maxPool2x2Forward(output: Tensor, input: Tensor) {
    checkMaxPoolShapes(output, input, "output")
    let H = input.shape[2], W = input.shape[3], OH = H / 2, OW = W / 2
    let x = input.data, y = output.data
    Parallel.forRanges(input.shape[0] * input.shape[1], minimumPerThread: 16) { r in
        abn_max_pool(y + r.lowerBound * OH * OW, x + r.lowerBound * H * W, r.count, H, W)
    }
}

/// dInput (N, C, H, W) (overwritten) receives each window's dOutput at the window's first
/// maximum of `input`, as recomputed from `input` (nothing else is stored).
public func maxPool2x2Backward(dInput: Tensor, dOutput: Tensor, input: Tensor) {
    checkMaxPoolShapes(dOutput, input, "dOutput")
    checkShape(dInput.shape == input.shape, "max pool 2x2: dInput shape \(dInput.shape) does not match input shape \(input.shape)")
    let H = input.shape[2], W = input.shape[3], OH = H / 2, OW = W / 2
    let x = input.data, dx = dInput.data, dy = dOutput.data
    Parallel.forRanges(input.shape[0] * input.shape[1], minimumPerThread: 16) { r in
        abn_max_pool_backward(dx + r.lowerBound * H * W, dy + r.lowerBound * OH * OW, x + r.lowerBound * H * W, r.count, H, W)
    }
}
