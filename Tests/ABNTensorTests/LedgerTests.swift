import ABNTensor
import ABNTestSupport
import Testing

@Suite("Memory ledger and shape checks")
struct LedgerTests {
    @Test("live and peak bytes follow a known sequence of allocations")
    func ledgerCounts() {
        let ledger = MemoryLedger()
        MemoryLedger.$current.withValue(ledger) {
            var a: Tensor? = Tensor(zeros: [10, 10])  // 400 bytes
            #expect(ledger.liveBytes == 400 && ledger.peakBytes == 400)
            var b: Tensor? = Tensor(uninitialized: [25])  // 100 bytes
            #expect(ledger.liveBytes == 500 && ledger.peakBytes == 500)
            let view = a!.reshaped([100])  // a view allocates nothing
            #expect(ledger.liveBytes == 500 && view.sharesStorage(with: a!))
            a = nil  // the view keeps the storage alive
            #expect(ledger.liveBytes == 500)
            _ = view
            b = nil
            #expect(ledger.liveBytes == 400 && ledger.peakBytes == 500)
            ledger.resetPeak()
            #expect(ledger.peakBytes == 400)
            do {
                let c = Tensor(zeros: [50])  // 200 bytes, freed at the end of the scope
                #expect(ledger.liveBytes == 600 && c.count == 50)
            }
            #expect(ledger.liveBytes == 400 && ledger.peakBytes == 600)
            _ = b
        }
        #expect(ledger.liveBytes == 0 && ledger.peakBytes == 600 && ledger.allocationCount == 3)
    }

    @Test("convolution scratch is counted and reused")
    func workspaceCounted() {
        let ledger = MemoryLedger()
        MemoryLedger.$current.withValue(ledger) {
            let g = Conv2DGeometry(input: [4, 3, 8, 8], outChannels: 5, kernel: 3, padding: 1)
            let x = randomTensor(g.inputShape, seed: 1), w = randomTensor(g.weightShape, seed: 2)
            let y = Tensor(zeros: g.outputShape)
            let tensors = x.byteCount + w.byteCount + y.byteCount
            let workspace = Workspace(columnBudget: 1 << 20)
            conv2dForward(output: y, input: x, weight: w, bias: nil, geometry: g, workspace: workspace)
            #expect(workspace.byteCount >= g.patchSize * g.outPixels * 4)  // at least one image's columns
            #expect(ledger.liveBytes == tensors + workspace.byteCount)
            let allocations = ledger.allocationCount
            conv2dForward(output: y, input: x, weight: w, bias: nil, geometry: g, workspace: workspace)
            #expect(ledger.allocationCount == allocations)  // the second call reuses the scratch
        }
    }

    @Test("a shape mismatch stops with a message naming both shapes")
    func shapeMismatchMessage() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let a = Tensor(zeros: [2, 3]), b = Tensor(zeros: [3, 2])
            addInPlace(a, b)
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("[2, 3]") && stderr.contains("[3, 2]"), "stderr was: \(stderr)")
    }

    @Test("a convolution with the wrong weight shape names both shapes")
    func convMismatchMessage() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let g = Conv2DGeometry(input: [1, 2, 5, 5], outChannels: 3, kernel: 3)
            conv2dForward(output: Tensor(zeros: g.outputShape), input: Tensor(zeros: g.inputShape),
                          weight: Tensor(zeros: [3, 4, 3, 3]), bias: nil, geometry: g, workspace: Workspace())
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("[3, 4, 3, 3]") && stderr.contains("[3, 2, 3, 3]"), "stderr was: \(stderr)")
    }
}
