import Synchronization

/// How often a geometry's directions ran, for `ConvolutionCalls.recording`.
public struct ConvolutionCalls: Sendable, Equatable {
    public var forward = 0
    public var inputGradient = 0
    public var weightGradient = 0

    /// Floating-point operations of these calls of `g` (each direction costs `g.forwardFlops`).
    public func flops(_ g: Conv2DGeometry) -> Double { Double(forward + inputGradient + weightGradient) * g.forwardFlops }

    private static let recording = Atomic<Bool>(false)
    private static let recorded = Mutex<[(Conv2DGeometry, ConvolutionCalls)]>([])

    /// Runs `body` and returns the geometries that `conv2dForward` and `conv2dBackward` ran
    /// in it, in the order of their first call, each with its calls per direction.
    public static func recording(_ body: () throws -> Void) rethrows -> [(geometry: Conv2DGeometry, calls: ConvolutionCalls)] {
        recorded.withLock { $0 = [] }
        recording.store(true, ordering: .relaxed)
        defer { recording.store(false, ordering: .relaxed) }
        try body()
        return recorded.withLock { $0.map { (geometry: $0.0, calls: $0.1) } }
    }

    /// Counts a call of `g` while recording.
    static func record(_ g: Conv2DGeometry, _ count: (inout ConvolutionCalls) -> Void) {
        guard recording.load(ordering: .relaxed) else { return }
        recorded.withLock { list in
            if let i = list.firstIndex(where: { $0.0 == g }) {
                count(&list[i].1)
            } else {
                var calls = ConvolutionCalls()
                count(&calls)
                list.append((g, calls))
            }
        }
    }
}
