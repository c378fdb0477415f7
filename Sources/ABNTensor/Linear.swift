/// output (N, out) = input (N, in) * weight^T + bias, with weight (out, in) as in PyTorch.
public func linearForward(output: Tensor, input: Tensor, weight: Tensor, bias: Tensor?) {
    checkShape(input.shape.count == 2 && weight.shape.count == 2 && input.shape[1] == weight.shape[1],
               "linear: input shape \(input.shape) does not match weight shape \(weight.shape) (want (N, in) and (out, in))")
    let n = input.shape[0], inF = weight.shape[1], outF = weight.shape[0]
    checkShape(output.shape == [n, outF], "linear: output shape \(output.shape) does not match the expected shape \([n, outF])")
    if let bias { checkShape(bias.shape == [outF], "linear: bias shape \(bias.shape) does not match the expected shape \([outF])") }
    BLAS.sgemm(transB: true, m: n, n: outF, k: inF, a: input.data, lda: inF, b: weight.data, ldb: inF,
               c: output.data, ldc: outF)
    if let bias {
        let y = output.data, b = bias.data
        for i in 0..<n { for o in 0..<outF { y[i * outF + o] += b[o] } }
    }
}

/// Gradients of `linearForward` from dOutput (N, out): dInput (N, in) is overwritten;
/// dWeight (out, in) and dBias (out) are overwritten, or added to when `accumulate`.
public func linearBackward(dInput: Tensor?, dWeight: Tensor?, dBias: Tensor?,
                           dOutput: Tensor, input: Tensor, weight: Tensor, accumulate: Bool = false) {
    let n = input.shape[0], inF = weight.shape[1], outF = weight.shape[0]
    checkShape(dOutput.shape == [n, outF], "linear: dOutput shape \(dOutput.shape) does not match the expected shape \([n, outF])")
    if let dInput {
        checkShape(dInput.shape == input.shape, "linear: dInput shape \(dInput.shape) does not match the input shape \(input.shape)")
        BLAS.sgemm(m: n, n: inF, k: outF, a: dOutput.data, lda: outF, b: weight.data, ldb: inF,
                   c: dInput.data, ldc: inF)
    }
    if let dWeight {
        checkShape(dWeight.shape == weight.shape, "linear: dWeight shape \(dWeight.shape) does not match the weight shape \(weight.shape)")
        BLAS.sgemm(transA: true, m: outF, n: inF, k: n, a: dOutput.data, lda: outF, b: input.data, ldb: inF,
                   beta: accumulate ? 1 : 0, c: dWeight.data, ldc: inF)
    }
    if let dBias {
        checkShape(dBias.shape == [outF], "linear: dBias shape \(dBias.shape) does not match the expected shape \([outF])")
        let dy = dOutput.data, db = dBias.data
        for o in 0..<outF {
            var s = 0.0
            for i in 0..<n { s += Double(dy[i * outF + o]) }
            db[o] = accumulate ? db[o] + Float(s) : Float(s)
        }
    }
}
