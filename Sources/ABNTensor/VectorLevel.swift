import CKernels

/// The instruction set the C kernels run with: the best the processor has (avx512, avx2 or
/// baseline), chosen at first use; `ABN_SIMD=avx2` or `ABN_SIMD=baseline` forces a lower one.
/// All levels compute bit-identical results, except the direct convolution, whose fused
/// multiply-adds round differently (see `CKernels.h`).
public enum VectorLevel {
    /// The level in use.
    public static var current: String { String(cString: abn_simd_name(abn_simd_level())) }

    /// The vector code in use, ours and OpenBLAS's, for start-up lines: "kernels avx512, OpenBLAS Haswell".
    public static var summary: String { "kernels \(current), OpenBLAS \(BLAS.openBLASCore)" }

    /// Every level the kernels are built for, lowest first.
    public static var all: [String] { (1...3).map { String(cString: abn_simd_name($0)) } }

    /// The levels this processor runs, lowest first.
    public static var supported: [String] { Array(all.prefix(Int(abn_simd_best_level()))) }

    /// Runs the kernels at `level` from now on (for tests); false when the processor lacks it.
    @discardableResult
    public static func select(_ level: String) -> Bool {
        guard let index = all.firstIndex(of: level) else { return false }
        return abn_simd_select(Int32(index + 1)) != 0
    }
}
