import ABNData
import ABNTestSupport
import Foundation
import Testing

@Suite("Fashion-MNIST")
struct FashionMNISTTests {
    static let root = "/usr/share/datasets/fashion-mnist"

    @Test("Fashion-MNIST reads with its sizes and labels", .enabled(if: FileManager.default.fileExists(atPath: root)))
    func reads() throws {
        let train = try FashionMNIST(root: Self.root, split: .train)
        let test = try FashionMNIST(root: Self.root, split: .test, limit: 100)
        #expect(train.count == 60_000 && train.height == 28 && train.width == 28)
        #expect(test.count == 100)
        #expect(Set(train.labels) == Set(0...9))
        let mean = train.pixels.reduce(0.0) { $0 + Double($1) } / Double(train.pixels.count) / 255
        #expect(abs(mean - 0.2860) < 1e-3)
    }

    @Test("a missing, truncated or mislabelled file is refused with a message")
    func badFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("abn-idx-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: DataError.self) { try FashionMNIST(root: dir.path, split: .train) }
        // images: header says 2 images of 2x2 but only 5 bytes of data follow
        try gzipFile(dir.appendingPathComponent("t10k-images-idx3-ubyte.gz"), [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4, 5])
        try gzipFile(dir.appendingPathComponent("t10k-labels-idx1-ubyte.gz"), [0, 0, 8, 1, 0, 0, 0, 2, 3, 4])
        do {
            _ = try FashionMNIST(root: dir.path, split: .test)
            Issue.record("a truncated file was accepted")
        } catch let e as DataError {
            #expect(e.message.contains("truncated"))
        }
        // labels file given the images' magic number
        try gzipFile(dir.appendingPathComponent("t10k-images-idx3-ubyte.gz"), [0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 7])
        try gzipFile(dir.appendingPathComponent("t10k-labels-idx1-ubyte.gz"), [0, 0, 8, 3, 0, 0, 0, 1, 3])
        do {
            _ = try FashionMNIST(root: dir.path, split: .test)
            Issue.record("a file with the wrong magic number was accepted")
        } catch let e as DataError {
            #expect(e.message.contains("magic"))
        }
    }

    @Test("IDX dimensions whose product overflows or exceeds the file are refused with a message")
    func hostileDimensions() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("abn-idx-big-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try gzipFile(dir.appendingPathComponent("t10k-labels-idx1-ubyte.gz"), [0, 0, 8, 1, 0, 0, 0, 1, 3])
        let all: [UInt8] = Array(repeating: 0xFF, count: 12)
        let huge: [UInt8] = [0, 0, 0, 1, 0x7F, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF]
        let magic: [UInt8] = [0, 0, 8, 3], data: [UInt8] = [1, 2, 3]
        for dims in [all, huge] {
            try gzipFile(dir.appendingPathComponent("t10k-images-idx3-ubyte.gz"), magic + dims + data)
            #expect(dataError { _ = try FashionMNIST(root: dir.path, split: .test) }.contains("claims dimensions"))
        }
    }
}

/// Writes `bytes` gzip-compressed (via gzip(1)).
func gzipFile(_ url: URL, _ bytes: [UInt8]) throws {
    let raw = url.deletingPathExtension()
    try Data(bytes).write(to: raw)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/gzip")
    p.arguments = ["-f", raw.path]
    try p.run()
    p.waitUntilExit()
}
