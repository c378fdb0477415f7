import ABNTensor
import ABNTestSupport
import Testing

@Suite("Run context")
struct RunContextTests {
    let shapes = [GEMMShape(m: 3, n: 5, k: 7), GEMMShape(m: 4, n: 4, k: 4)]

    @Test("the installed choice gives each shape its library; ABN_GEMM overrides it")
    func gemmChoice() {
        let run = RunContext(environment: [:])
        #expect(run.forcedGEMM == nil && run.library(for: shapes[0]) == .openblas && run.defaultLibrary == .openblas)
        run.gemm = GEMMChoice([shapes[0]: .onednn])
        #expect(run.library(for: shapes[0]) == .onednn && run.library(for: shapes[1]) == .openblas)
        run.gemm = GEMMChoice(otherwise: .onednn)
        #expect(run.library(for: shapes[1]) == .onednn && run.defaultLibrary == .onednn)

        let forced = RunContext(environment: ["ABN_GEMM": "openblas"])
        forced.gemm = GEMMChoice([shapes[0]: .onednn], otherwise: .onednn)
        #expect(forced.forcedGEMM == .openblas && forced.library(for: shapes[0]) == .openblas && forced.defaultLibrary == .openblas)
        #expect(forced.warnings.isEmpty)
    }

    @Test("the process's context gives the library of its installed choice")
    func processChoice() {
        withProcessSettings {
            let run = RunContext.process, saved = run.gemm
            defer { run.gemm = saved }
            run.gemm = GEMMChoice([shapes[0]: .onednn])
            #expect(run.library(for: shapes[0]) == (run.forcedGEMM ?? .onednn) && run.library(for: shapes[1]) == (run.forcedGEMM ?? .openblas))
        }
    }

    @Test("an ABN_GEMM that names no library is ignored with a sentence")
    func unknownLibrary() {
        let run = RunContext(environment: ["ABN_GEMM": "mkl"])
        #expect(run.forcedGEMM == nil)
        #expect(run.warnings == ["ABN_GEMM=mkl is not a GEMM library (openblas or onednn); ignored."])
    }

    @Test("ABN_LOWERING reads as rules in order: a bare name applies to every convolution")
    func loweringRules() {
        #expect(RunContext(environment: [:]).loweringRules.isEmpty)
        #expect(RunContext(environment: ["ABN_LOWERING": "direct"]).loweringRules == [LoweringRule(text: "", name: "direct")])
        #expect(RunContext(environment: ["ABN_LOWERING": "64->64 3x3=winograd, s2=phases"]).loweringRules
                == [LoweringRule(text: "64->64 3x3", name: "winograd"), LoweringRule(text: "s2", name: "phases")])
    }

    @Test("the wait limit is never negative; the step starts at -1 (not training)")
    func progress() {
        let run = RunContext(environment: [:])
        #expect(run.step == -1 && run.collectiveTimeout == 0)
        run.step = 12
        run.collectiveTimeout = -5
        #expect(run.step == 12 && run.collectiveTimeout == 0)
        run.collectiveTimeout = 30
        #expect(run.collectiveTimeout == 30)
    }
}
