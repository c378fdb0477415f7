import ABNTensor
import Foundation

/// `train.gemm`: one library for every matrix product, or the faster one per product shape.
public enum GEMMSetting: String, ConfigChoice {
    case openblas, onednn, auto

    /// The library of every product; nil for auto.
    public var library: GEMMLibrary? { GEMMLibrary(rawValue: rawValue) }
}

/// `train.gemm` for a run: which library computes each matrix product. With `auto`, the first
/// step of a fresh run computes on OpenBLAS while recording its products; then rank 0 takes the
/// timings of those shapes from this machine's cache (`GEMMCache`), measuring and adding the
/// missing ones, every rank installs the same choices (oneDNN where it is at least 5% faster),
/// and rank 0 writes them to RUN_DIR/gemm.json, which a resumed run installs before its first
/// step. With the timings cached, runs on one machine make the same choices, so they repeat
/// bit for bit; shapes that only other ranks compute (uneven slices) stay on OpenBLAS.
struct GEMMSelection {
    let config: TrainingConfig
    let runDirectory: String
    let coordinator: Coordinator

    /// RUN_DIR/gemm.json: the timings behind the run's choices.
    var path: String { (runDirectory as NSString).appendingPathComponent("gemm.json") }

    /// Before the first step: installs the configured library, or a resumed run's choices.
    /// True when the first step's products are still to be recorded and chosen (`choose`).
    func prepare(resume: Bool) throws -> Bool {
        if let library = config.train.gemm.library {
            RunContext.process.gemm = GEMMChoice(otherwise: library)
            return false
        }
        RunContext.process.gemm = GEMMChoice()
        guard resume else { return true }
        let stored = coordinator.isRoot ? ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "") : ""
        let shared = coordinator.broadcast(stored, what: "the run's GEMM choices")
        guard !shared.isEmpty else { return true }
        try install(shared)
        return false
    }

    /// After the first step: chooses for the products it computed (`shapes`, rank 0's count),
    /// installs the choices on every rank and keeps them in RUN_DIR/gemm.json.
    func choose(_ shapes: [GEMMShape: Int]) throws {
        let text = try coordinator.chooseProducts(shapes)
        if coordinator.isRoot {
            do {
                try text.write(toFile: path, atomically: true, encoding: .utf8)
            } catch {
                throw TrainingError("cannot write \(path): \(error.localizedDescription)")
            }
        }
        let choices = RunContext.process.gemm.table
        let onednn = choices.values.filter { $0 == .onednn }.count
        coordinator.say("train: matrix products: \(onednn) shape(s) on oneDNN, \(choices.count - onednn) on OpenBLAS (see \(path))")
    }

    private func install(_ text: String) throws {
        RunContext.process.gemm = GEMMChoice(timings: try GEMMCache.decode(text, source: path))
    }
}

extension Coordinator {
    /// Installs on every rank the library of each product in `shapes` (rank 0's): its timings
    /// from this machine's cache, the missing ones measured now by rank 0 and cached. Returns
    /// the timings as JSON (as RUN_DIR/gemm.json keeps them).
    public func chooseProducts(_ shapes: [GEMMShape: Int]) throws -> String {
        let text = isRoot ? try GEMMCache.encode(GEMMCache.forThisMachine().timings(for: shapes, say: say)) : ""
        let shared = broadcast(text, what: "rank 0's GEMM choices (it times the products first)")
        RunContext.process.gemm = GEMMChoice(timings: try GEMMCache.decode(shared, source: "rank 0's GEMM choices"))
        return shared
    }
}
