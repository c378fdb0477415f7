import Foundation
import Synchronization

/// What a run sets for its whole process, in one place, for the kernels, the collectives and
/// the training loop to read (the thread count stays with `Parallel`, the vector level with
/// `VectorLevel`, stop requests with the signal handling):
///
/// - `forcedGEMM` and `gemm`: which library computes each matrix product (`ABN_GEMM` when set,
///   else the choice the run installed from `train.gemm`).
/// - `loweringRules`: the convolution lowerings `ABN_LOWERING` forces, for A/B runs.
/// - `ledger`: the memory ledger tensors are charged to (unless a task sets `MemoryLedger.current`).
/// - `collectiveTimeout` and `step`: the limit on each wait for other ranks and the step the job
///   is at, which the watchdog names when that limit runs out.
public final class RunContext: Sendable {
    /// This process's context, made from its environment (a value it cannot use is reported on
    /// standard error and ignored).
    public static let process: RunContext = {
        let context = RunContext(environment: ProcessInfo.processInfo.environment)
        for warning in context.warnings { FileHandle.standardError.write(Data("abn: \(warning)\n".utf8)) }
        return context
    }()

    /// `ABN_GEMM` (openblas or onednn): the library of every product, whatever the config or
    /// `gemm` say; nil when unset.
    public let forcedGEMM: GEMMLibrary?
    /// `ABN_LOWERING`'s rules (see `LoweringRule`), in order; empty when unset.
    public let loweringRules: [LoweringRule]
    /// The ledger of every tensor buffer not charged to a task's own (`MemoryLedger.current`).
    public let ledger = MemoryLedger()
    /// Why an environment value was ignored, one sentence each.
    public let warnings: [String]

    private let choice = Mutex(GEMMChoice())
    private let timeoutBits = Atomic<UInt64>(0)
    private let currentStep = Atomic<Int>(-1)

    /// A context from `environment` (the variables `ABN_GEMM` and `ABN_LOWERING`).
    public init(environment: [String: String]) {
        var warnings: [String] = []
        if let name = environment["ABN_GEMM"], !name.isEmpty {
            forcedGEMM = GEMMLibrary(rawValue: name)
            if forcedGEMM == nil { warnings.append("ABN_GEMM=\(name) is not a GEMM library (openblas or onednn); ignored.") }
        } else {
            forcedGEMM = nil
        }
        loweringRules = LoweringRule.parse(environment["ABN_LOWERING"] ?? "")
        self.warnings = warnings
    }

    /// The library of each product shape the run installed (`forcedGEMM` wins over it).
    public var gemm: GEMMChoice {
        get { choice.withLock { $0 } }
        set { choice.withLock { $0 = newValue } }
    }

    /// The library that computes `shape`.
    public func library(for shape: GEMMShape) -> GEMMLibrary { forcedGEMM ?? choice.withLock { $0.library(for: shape) } }

    /// The library of shapes the installed choice does not list.
    public var defaultLibrary: GEMMLibrary { forcedGEMM ?? choice.withLock { $0.otherwise } }

    /// Seconds a rank waits for the others before the job ends (0: no limit).
    public var collectiveTimeout: Double {
        get { Double(bitPattern: timeoutBits.load(ordering: .relaxed)) }
        set { timeoutBits.store(max(0, newValue).bitPattern, ordering: .relaxed) }
    }

    /// The global step being computed (-1: not training).
    public var step: Int {
        get { currentStep.load(ordering: .relaxed) }
        set { currentStep.store(newValue, ordering: .relaxed) }
    }
}
