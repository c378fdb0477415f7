import CZlib
import Foundation

/// Fashion-MNIST (or any MNIST-format set) read from its gzip-compressed IDX files:
/// `train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`, `t10k-...` in `root`. Small
/// enough to be held in memory, decoded.
public struct FashionMNIST: Dataset {
    /// (count, height, width) pixels, 0...255, row-major.
    public let pixels: [UInt8]
    public let labels: [UInt8]
    public let count: Int
    public let height: Int
    public let width: Int
    /// "0", "1", ...: one more than the largest label of the split (at least 2).
    public let classNames: [String]
    public var task: TaskKind { .classification }
    public var channels: Int { 1 }

    public enum Split: String, Sendable { case train, test }

    /// Loads a split; `limit` > 0 keeps only the first `limit` samples. `classes` (when given,
    /// e.g. the training split's count for the test split) bounds the labels.
    public init(root: String, split: Split, limit: Int = 0, classes: Int? = nil) throws {
        let prefix = split == .train ? "train" : "t10k"
        let imagePath = (root as NSString).appendingPathComponent("\(prefix)-images-idx3-ubyte.gz")
        let labelPath = (root as NSString).appendingPathComponent("\(prefix)-labels-idx1-ubyte.gz")
        let images = try IDXFile(path: imagePath, expectedMagic: 0x0000_0803)
        let labels = try IDXFile(path: labelPath, expectedMagic: 0x0000_0801)
        guard images.dimensions.count == 3, labels.dimensions.count == 1 else {
            throw DataError("\(imagePath) and \(labelPath) do not hold (count, rows, cols) images and (count) labels.")
        }
        guard images.dimensions[0] == labels.dimensions[0] else {
            throw DataError("\(imagePath) holds \(images.dimensions[0]) images but \(labelPath) \(labels.dimensions[0]) labels; the files do not belong together.")
        }
        let total = images.dimensions[0]
        count = limit > 0 ? min(limit, total) : total
        height = images.dimensions[1]
        width = images.dimensions[2]
        pixels = Array(images.payload.prefix(count * height * width))
        self.labels = Array(labels.payload.prefix(count))
        let largest = Int(self.labels.max() ?? 0)
        let classes = classes ?? max(2, largest + 1)
        if largest >= classes {
            throw DataError("\(labelPath) holds label \(largest), but the data set has \(classes) classes (0...\(classes - 1)); check that the files belong together.")
        }
        classNames = (0..<classes).map(String.init)
    }

    public func sample(_ index: Int) throws -> Sample {
        let plane = height * width
        return Sample(image: Image8(width: width, height: height, channels: 1, pixels: Array(pixels[index * plane..<(index + 1) * plane])),
                      target: .label(Int(labels[index])))
    }
}

/// One IDX file (big-endian header: magic, dimension sizes; then unsigned bytes), gunzipped.
struct IDXFile {
    let dimensions: [Int]
    let payload: [UInt8]

    init(path: String, expectedMagic: UInt32) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw DataError("cannot find \(path). Install Debian's dataset-fashion-mnist (launch/setup.sh does) or set data.root to the folder holding the IDX .gz files.")
        }
        let bytes = try gunzip(path: path)
        func word(_ i: Int) -> UInt32 {
            bytes[i..<i + 4].reduce(0) { $0 << 8 | UInt32($1) }
        }
        guard bytes.count >= 4, word(0) == expectedMagic else {
            let found = bytes.count >= 4 ? String(format: "0x%08x", word(0)) : "a file shorter than 4 bytes"
            throw DataError("\(path) is not an IDX file of the expected kind: magic number \(found), want \(String(format: "0x%08x", expectedMagic)).")
        }
        let rank = Int(expectedMagic & 0xFF)
        guard bytes.count >= 4 + 4 * rank else { throw DataError("\(path) is truncated inside its header.") }
        dimensions = (0..<rank).map { Int(word(4 + 4 * $0)) }
        let header = 4 + 4 * rank
        var expected = 1
        for d in dimensions {
            let (product, overflow) = expected.multipliedReportingOverflow(by: d)
            guard !overflow, product <= bytes.count else {
                throw DataError("\(path) claims dimensions \(dimensions), more data than its \(bytes.count) bytes hold; the file is truncated or corrupt, reinstall it.")
            }
            expected = product
        }
        guard bytes.count - header == expected else {
            throw DataError("\(path) should hold \(expected) bytes of data for dimensions \(dimensions) but holds \(bytes.count - header); the file is truncated or corrupt, reinstall it.")
        }
        payload = Array(bytes[header...])
    }
}

/// The decompressed contents of a gzip file.
func gunzip(path: String) throws -> [UInt8] {
    guard let file = gzopen(path, "rb") else { throw DataError("cannot open \(path) for reading.") }
    defer { gzclose(file) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = chunk.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32($0.count)) }
        if n < 0 { throw DataError("\(path) is not a valid gzip file (or is corrupt); reinstall it.") }
        if n == 0 { break }
        out.append(contentsOf: chunk[0..<Int(n)])
    }
    return out
}
