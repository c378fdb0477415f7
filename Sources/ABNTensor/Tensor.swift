/// A contiguous row-major Float32 array with a shape (NCHW for images, (N, C) for features).
///
/// A reference type: layers overwrite a tensor's storage in place and every holder sees it.
/// `reshaped(_:)` gives a view of the same storage without allocating.
public final class Tensor {
    /// Dimensions, outermost first, e.g. [N, C, H, W].
    public let shape: [Int]
    /// Number of elements (product of `shape`).
    public let count: Int
    private let storage: TensorStorage
    /// Elements of `storage` before this tensor's first element (non-zero for views).
    private let offset: Int

    /// Creates a zero-filled tensor, charged to `MemoryLedger.current`.
    public convenience init(zeros shape: [Int]) {
        self.init(uninitialized: shape)
        data.initialize(repeating: 0, count: count)
    }

    /// Creates a tensor whose elements are not set, charged to `MemoryLedger.current`.
    public init(uninitialized shape: [Int]) {
        checkShape(shape.allSatisfy { $0 >= 0 }, "a tensor shape must not have negative dimensions, got \(shape)")
        self.shape = shape
        count = shape.reduce(1, *)
        storage = TensorStorage(count: count, ledger: MemoryLedger.current)
        offset = 0
    }

    /// Creates a tensor holding `values` (row-major) with the given shape.
    public convenience init(_ values: [Float], shape: [Int]) {
        self.init(uninitialized: shape)
        checkShape(values.count == count, "\(values.count) values do not fill shape \(shape) of \(count) elements")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    private init(shape: [Int], storage: TensorStorage, offset: Int) {
        self.shape = shape
        count = shape.reduce(1, *)
        self.storage = storage
        self.offset = offset
    }

    /// The first element; `count` elements follow contiguously.
    public var data: UnsafeMutablePointer<Float> { storage.pointer + offset }

    /// A view of the same storage with another shape of the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        checkShape(newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape): element counts differ")
        return Tensor(shape: newShape, storage: storage, offset: offset)
    }

    /// A view of `shape.reduce(1, *)` elements starting `start` elements into this tensor.
    public func slice(from start: Int, shape newShape: [Int]) -> Tensor {
        let n = newShape.reduce(1, *)
        checkShape(start >= 0 && start + n <= count, "a slice of shape \(newShape) at \(start) does not fit a tensor of shape \(shape)")
        return Tensor(shape: newShape, storage: storage, offset: offset + start)
    }

    /// True when both tensors use the same storage.
    public func sharesStorage(with other: Tensor) -> Bool { storage === other.storage }

    /// Bytes of this tensor's elements.
    public var byteCount: Int { count * MemoryLayout<Float>.stride }

    /// The elements as an array (a copy).
    public var array: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// Element at a flat index.
    public subscript(flat index: Int) -> Float {
        get { data[index] }
        set { data[index] = newValue }
    }

    /// Sets every element to zero (in parallel blocks).
    public func zero() {
        let data = data
        forBlocks(count) { r in (data + r.lowerBound).update(repeating: 0, count: r.count) }
    }

    /// Sets every element to `value`.
    public func fill(_ value: Float) {
        data.update(repeating: value, count: count)
    }

    /// Copies `other`'s elements, which must have the same count (in parallel blocks).
    public func copy(from other: Tensor) {
        checkShape(other.count == count, "cannot copy a tensor of shape \(other.shape) into one of shape \(shape)")
        let data = data, source = other.data
        forBlocks(count) { r in (data + r.lowerBound).update(from: source + r.lowerBound, count: r.count) }
    }

    /// A new tensor with the same shape and elements.
    public func clone() -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.copy(from: self)
        return t
    }
}

/// Stops with `message` when `condition` is false. Used for shape checks, whose message
/// (naming both shapes) must survive optimized builds, unlike `precondition`'s.
@inline(__always)
public func checkShape(_ condition: Bool, _ message: @autoclosure () -> String,
                       file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fatalError(message(), file: file, line: line) }
}
