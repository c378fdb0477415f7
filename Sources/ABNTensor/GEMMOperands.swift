/// Random operands of a product, for timing it.
public struct GEMMOperands {
    public let a, b, c: Tensor

    /// C = op(A) op(B) with `library` (default: the chosen one).
    public func multiply(_ shape: GEMMShape, library: GEMMLibrary? = nil) {
        BLAS.sgemm(transA: shape.transA, transB: shape.transB, m: shape.m, n: shape.n, k: shape.k, a: a.data, lda: shape.lda,
                   b: b.data, ldb: shape.ldb, c: c.data, ldc: shape.ldc, library: library)
    }
}

extension GEMMShape {
    /// Random A and B, and a zero C, each as large as its row stride makes it.
    public func operands(rng: inout SplitMix64) -> GEMMOperands {
        let a = Tensor(uninitialized: [(transA ? k : m) * lda]), b = Tensor(uninitialized: [(transB ? n : k) * ldb])
        a.fillUniform(-1, 1, using: &rng)
        b.fillUniform(-1, 1, using: &rng)
        return GEMMOperands(a: a, b: b, c: Tensor(zeros: [m * ldc]))
    }
}
