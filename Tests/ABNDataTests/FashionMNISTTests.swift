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

    @Test("1,000 seeded mutations of IDX headers and lengths give a DataError or a consistent set, never a trap")
    func fuzz() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("abn-idx-fuzz-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // zlib reads a file without gzip framing as it is, so the mutations are written raw
        let images: [UInt8] = [0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2] + Array(1...12)
        let labels: [UInt8] = [0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 0]
        var state: UInt64 = 77
        func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
        var refused = 0, loaded = 0
        for _ in 0..<1_000 {
            var a = images, b = labels
            switch next(4) {
            case 0: a[next(16)] = UInt8(next(256))
            case 1: b[next(8)] = UInt8(next(256))
            case 2: a.removeLast(next(a.count))
            default: a += Array(repeating: 9, count: next(40)); b[7] = UInt8(next(256))
            }
            try Data(a).write(to: dir.appendingPathComponent("train-images-idx3-ubyte.gz"))
            try Data(b).write(to: dir.appendingPathComponent("train-labels-idx1-ubyte.gz"))
            do {
                let set = try FashionMNIST(root: dir.path, split: .train)
                #expect(set.pixels.count == set.count * set.height * set.width && set.labels.count == set.count)
                for i in 0..<set.count { _ = try set.sample(i) }
                loaded += 1
            } catch is DataError {
                refused += 1
            }
        }
        #expect(refused > 500 && loaded > 0, "\(refused) refused, \(loaded) loaded")
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
