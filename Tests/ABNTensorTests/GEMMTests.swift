import ABNTensor
import ABNTestSupport
import Testing

@Suite("Matrix products: OpenBLAS, oneDNN and the choice between them", .serialized)
struct GEMMTests {
    /// Shapes with both transposes and row strides wider than the matrices.
    static let shapes = [
        GEMMShape(m: 7, n: 33, k: 19),
        GEMMShape(transA: true, m: 16, n: 40, k: 9, lda: 20, ldb: 44, ldc: 41),
        GEMMShape(transB: true, m: 12, n: 5, k: 300),
        GEMMShape(transA: true, transB: true, m: 3, n: 64, k: 17),
    ]

    @Test("both libraries compute C = alpha op(A) op(B) + beta C like a Double reference", arguments: shapes)
    func librariesAgree(shape: GEMMShape) {
        var rng = SplitMix64(seed: 3)
        let o = shape.operands(rng: &rng)
        let c0 = Tensor(uninitialized: [o.c.count]); c0.fillUniform(-1, 1, using: &rng)
        // reference: alpha 0.5, beta 2, only C's m x n block (the stride's padding stays)
        var want = c0.array.map(Double.init)
        for i in 0..<shape.m {
            for j in 0..<shape.n {
                var s = 0.0
                for p in 0..<shape.k {
                    let a = o.a[flat: shape.transA ? p * shape.lda + i : i * shape.lda + p]
                    let b = o.b[flat: shape.transB ? j * shape.ldb + p : p * shape.ldb + j]
                    s += Double(a) * Double(b)
                }
                want[i * shape.ldc + j] = 0.5 * s + 2 * Double(c0[flat: i * shape.ldc + j])
            }
        }
        for library in GEMMLibrary.allCases {
            let c = c0.clone()
            BLAS.sgemm(transA: shape.transA, transB: shape.transB, m: shape.m, n: shape.n, k: shape.k, alpha: 0.5, a: o.a.data, lda: shape.lda,
                       b: o.b.data, ldb: shape.ldb, beta: 2, c: c.data, ldc: shape.ldc, library: library)
            expectClose(c.array.map(Double.init), want, rtol: 1e-5, atol: 1e-5, "\(library) \(shape)")
        }
    }

    @Test("products are recorded with their counts, and only when asked")
    func recording() {
        withProcessSettings {
            let shape = Self.shapes[0]
            var rng = SplitMix64(seed: 4)
            let o = shape.operands(rng: &rng)
            let recorded = BLAS.recordingShapes {
                o.multiply(shape)
                o.multiply(shape)
                o.multiply(Self.shapes[2])
            }
            // (other tests may compute products meanwhile: only these shapes are checked)
            #expect(recorded[shape] == 2 && recorded[Self.shapes[2]] == 1, "\(recorded)")
            var ran = false
            #expect(BLAS.recordingShapes(when: false) { ran = true; o.multiply(shape) }.isEmpty && ran)
        }
    }

    @Test("a timing chooses oneDNN only when it is at least 5% faster; measuring gives both libraries' rates")
    func timingChoice() throws {
        try withProcessSettings {
            let faster = GEMMChoice.Timing(shape: Self.shapes[0], gflops: ["openblas": 100, "onednn": 106])
            let close = GEMMChoice.Timing(shape: Self.shapes[0], gflops: ["openblas": 100, "onednn": 104])
            #expect(faster.choice() == .onednn)
            #expect(close.choice() == .openblas)
            #expect(GEMMChoice(timings: [faster, close]).table == [Self.shapes[0]: .onednn])  // the first timing of a shape counts
            let measured = try #require(GEMMChoice.measure([Self.shapes[2]], rounds: 1, seconds: 0.0005).first)
            #expect(measured.shape == Self.shapes[2])
            for library in GEMMLibrary.allCases {
                let rate = try #require(measured.gflops[library.rawValue])
                #expect(rate > 0 && rate.isFinite, "\(library): \(rate)")
            }
        }
    }
}
