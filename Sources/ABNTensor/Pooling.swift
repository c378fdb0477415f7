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
