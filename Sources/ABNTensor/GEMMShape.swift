/// One row-major product C (m x n) = op(A) (m x k) op(B) (k x n) as the engine calls it, with
/// the row strides of A, B and C as stored.
public struct GEMMShape: Hashable, Sendable, Codable, CustomStringConvertible {
    public let transA, transB: Bool
    public let m, n, k: Int
    public let lda, ldb, ldc: Int

    /// Row strides default to packed matrices.
    public init(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil) {
        self.transA = transA
        self.transB = transB
        self.m = m
        self.n = n
        self.k = k
        self.lda = lda ?? (transA ? m : k)
        self.ldb = ldb ?? (transB ? k : n)
        self.ldc = ldc ?? n
    }

    /// Multiply-adds x 2.
    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }

    /// e.g. "NT 64x576x784" (transposes of A and B, then m x n x k).
    public var description: String { "\(transA ? "T" : "N")\(transB ? "T" : "N") \(m)x\(n)x\(k)" }
}
