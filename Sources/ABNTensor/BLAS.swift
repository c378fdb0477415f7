import CBLAS

/// Thin wrappers over OpenBLAS; matrices are row-major. OpenBLAS runs single-threaded:
/// the engine's workers call it in parallel on separate blocks (see `Parallel`).
public enum BLAS {
    /// Runs `body` with OpenBLAS's own threading at `threads`, then back to one thread; for
    /// measuring raw multi-threaded sgemm next to the engine's kernels.
    public static func withLibraryThreads<R>(_ threads: Int, _ body: () -> R) -> R {
        _ = Parallel.threadCount  // settle the configuration first, so it cannot reset ours
        openblas_set_num_threads(Int32(threads))
        defer { openblas_set_num_threads(1) }
        return body()
    }

    /// C (m x n) = alpha * op(A) * op(B) + beta * C, with op(A) (m x k) and op(B) (k x n).
    /// `lda`, `ldb`, `ldc` are the row strides of A, B, C as stored.
    @inlinable
    public static func sgemm(transA: Bool = false, transB: Bool = false,
                             m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0,
                             c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        if k == 0 {  // an empty sum: C = beta * C
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        _ = Parallel.threadCount  // keeps OpenBLAS single-threaded from the first call on
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
