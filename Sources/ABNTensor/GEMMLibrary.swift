/// The libraries that can compute the engine's matrix products: OpenBLAS (the default) and
/// oneDNN's sgemm, which brings its own AVX-512 code whatever `OPENBLAS_CORETYPE` says.
public enum GEMMLibrary: String, CaseIterable, Sendable, Codable {
    case openblas, onednn
}
