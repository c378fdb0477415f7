/// A 64-byte aligned Float32 buffer charged to a `MemoryLedger` for its whole life.
final class TensorStorage {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    let ledger: MemoryLedger

    init(count: Int, ledger: MemoryLedger) {
        self.count = count
        self.ledger = ledger
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        pointer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            .bindMemory(to: Float.self, capacity: max(count, 1))
        ledger.recordAllocation(bytes: count * MemoryLayout<Float>.stride)
    }

    deinit {
        pointer.deallocate()
        ledger.recordFree(bytes: count * MemoryLayout<Float>.stride)
    }
}
