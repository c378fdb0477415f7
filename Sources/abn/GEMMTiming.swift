import ABNTensor

/// Timing of one product shape on random operands, for the benchmarks.
extension GEMMShape {
    /// GFLOP/s with OpenBLAS's own threads (median of `repeats` products).
    func gflops(repeats: Int, rng: inout SplitMix64) -> Double {
        let o = operands(rng: &rng)
        let seconds = BLAS.withLibraryThreads(Parallel.threadCount) { medianSeconds(repeats: repeats) { o.multiply(self, library: .openblas) } }
        return flops / seconds / 1e9
    }

    /// One product, timed once, with the library in use single-threaded and the engine's workers
    /// each computing a contiguous share of C's columns, as the convolutions run their GEMMs.
    func gflopsSplitOverWorkers(_ o: GEMMOperands) -> Double {
        precondition(!transA && !transB, "the split sgemm is for plain products")
        let workers = Parallel.threadCount
        let t0 = monotonicSeconds()
        Parallel.forEachClaimed(workers) { _, share in
            let first = n * share / workers, last = n * (share + 1) / workers
            BLAS.sgemm(m: m, n: last - first, k: k, a: o.a.data, lda: lda, b: o.b.data + first, ldb: ldb, c: o.c.data + first, ldc: ldc)
        }
        return flops / (monotonicSeconds() - t0) / 1e9
    }
}
