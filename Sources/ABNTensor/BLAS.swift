import CBLAS
import CDNNL
import Foundation
import Synchronization

/// Thin wrappers over the GEMM libraries; matrices are row-major. The libraries run
/// single-threaded: the engine's workers call them in parallel on separate blocks (see
/// `Parallel`).
public enum BLAS {
    /// OpenBLAS's kernel set on this processor (`openblas_get_corename`), e.g. "Haswell".
    public static var openBLASCore: String { String(cString: openblas_get_corename()) }

    /// A sentence for the user when OpenBLAS runs kernels without AVX2 on a processor that has
    /// AVX2 and FMA: an OpenBLAS older than the processor does not recognize it and falls back
    /// to its SSE kernels (0.3.21 runs "Prescott" on Xeons of 2023), a quarter of the speed
    /// of its AVX2 ones or less. Nil otherwise, and when OPENBLAS_CORETYPE chose the kernels.
    public static var openBLASFallbackWarning: String? {
        let core = openBLASCore
        let withAVX2 = ["haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"]
        guard VectorLevel.supported.contains("avx2"), !withAVX2.contains(core.lowercased()),
              ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil else { return nil }
        return "abn: OpenBLAS runs its \(core) kernels, without AVX2, on this processor, which has AVX2 and FMA: this OpenBLAS "
            + "does not recognize it, and its matrix products run at a quarter of their speed or less. Set "
            + "OPENBLAS_CORETYPE=Haswell in the environment of every rank (launch/train.sh passes it on), or "
            + "train.gemm: auto to use oneDNN's sgemm where it is faster."
    }

    /// Runs `body` with OpenBLAS's own threading at `threads`, then back to one thread; for
    /// measuring raw multi-threaded sgemm next to the engine's kernels.
    public static func withLibraryThreads<R>(_ threads: Int, _ body: () -> R) -> R {
        _ = Parallel.threadCount  // settle the configuration first, so it cannot reset ours
        openblas_set_num_threads(Int32(threads))
        defer { openblas_set_num_threads(1) }
        return body()
    }

    /// C (m x n) = alpha * op(A) * op(B) + beta * C, with op(A) (m x k) and op(B) (k x n).
    /// `lda`, `ldb`, `ldc` are the row strides of A, B, C as stored. `library` computes it
    /// (default: the run's library for the shape, `RunContext.library(for:)`).
    public static func sgemm(transA: Bool = false, transB: Bool = false,
                             m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0,
                             c: UnsafeMutablePointer<Float>, ldc: Int, library: GEMMLibrary? = nil) {
        guard m > 0, n > 0 else { return }
        let shape = GEMMShape(transA: transA, transB: transB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc)
        if recording.load(ordering: .relaxed) { recorded.withLock { $0[shape, default: 0] += 1 } }
        if k == 0 {  // an empty sum: C = beta * C
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        switch library ?? RunContext.process.library(for: shape) {
        case .openblas:
            _ = Parallel.threadCount  // keeps OpenBLAS single-threaded from the first call on
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        case .onednn:
            SignalReceiver.start()
            let status = abn_dnnl_sgemm(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            precondition(status == 0, "oneDNN sgemm failed (status \(status)) on \(m)x\(n)x\(k)")
        }
    }

    private static let recording = Atomic<Bool>(false)
    private static let recorded = Mutex<[GEMMShape: Int]>([:])

    /// Runs `body` and returns the products it computed: each shape with its number of calls
    /// (none when `when` is false: then it only runs `body`).
    public static func recordingShapes(when: Bool = true, _ body: () throws -> Void) rethrows -> [GEMMShape: Int] {
        guard when else {
            try body()
            return [:]
        }
        recorded.withLock { $0 = [:] }
        recording.store(true, ordering: .relaxed)
        defer { recording.store(false, ordering: .relaxed) }
        try body()
        return recorded.withLock { $0 }
    }
}
