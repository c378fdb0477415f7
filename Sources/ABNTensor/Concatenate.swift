/// Concatenation along channels and its adjoint, and the broadcast add of a per-channel value and its adjoint.

/// Copies input (N, C, H, W) into channels `first..<first + C` of output (N, C_total, H, W):
/// one part of a concatenation along channels.
public func placeChannels(_ input: Tensor, into output: Tensor, first: Int) {
    let s = output.shape, c = input.shape[1]
    checkShape(s.count == 4 && input.shape == [s[0], c, s[2], s[3]] && first + c <= s[1],
               "place channels: \(input.shape) at channel \(first) does not fit \(s)")
    let plane = s[2] * s[3]
    Parallel.forEach(s[0]) { n in
        (output.data + (n * s[1] + first) * plane).update(from: input.data + n * c * plane, count: c * plane)
    }
}

/// Copies channels `first..<first + C` of dOutput (N, C_total, H, W) into dInput (N, C, H, W),
/// or adds them when `accumulate`.
public func channelSlice(_ dInput: Tensor, of dOutput: Tensor, first: Int, accumulate: Bool = false) {
    let s = dOutput.shape, c = dInput.shape[1]
    checkShape(s.count == 4 && dInput.shape == [s[0], c, s[2], s[3]] && first + c <= s[1],
               "channel slice: \(dInput.shape) at channel \(first) does not fit \(s)")
    let plane = s[2] * s[3]
    Parallel.forEach(s[0]) { n in
        let from = dOutput.data + (n * s[1] + first) * plane, to = dInput.data + n * c * plane
        if accumulate {
            for i in 0..<c * plane { to[i] += from[i] }
        } else {
            to.update(from: from, count: c * plane)
        }
    }
}

/// output (N, C, H, W) += values (N, C) at every position (a per-image, per-channel bias).
public func addBroadcast(_ output: Tensor, _ values: Tensor) {
    let s = output.shape
    checkShape(s.count == 4 && values.count == s[0] * s[1], "broadcast add: \(values.shape) does not match (N, C) of \(s)")
    let plane = s[2] * s[3]
    Parallel.forEach(s[0] * s[1]) { t in
        let p = output.data + t * plane, v = values.data[t]
        for i in 0..<plane { p[i] += v }
    }
}

/// sums (N, C) = the sum over H, W of gradient (N, C, H, W): the adjoint of `addBroadcast`.
public func sumPlanes(_ sums: Tensor, _ gradient: Tensor) {
    let s = gradient.shape
    checkShape(s.count == 4 && sums.count == s[0] * s[1], "plane sums: \(sums.shape) does not match (N, C) of \(s)")
    let plane = s[2] * s[3]
    Parallel.forEach(s[0] * s[1]) { t in
        let p = gradient.data + t * plane
        var total: Float = 0
        for i in 0..<plane { total += p[i] }
        sums.data[t] = total
    }
}
