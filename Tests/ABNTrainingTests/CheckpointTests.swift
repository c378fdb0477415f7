import ABNTraining
import CZlib
import Foundation
import Testing

@Suite("Checkpoint files")
struct CheckpointFileTests {
    let entries = [Safetensors.Entry(name: "a.weight", shape: [2, 3], values: [1, 2, 3, 4, 5, 6]),
                   Safetensors.Entry(name: "b", shape: [1], values: [-7.5])]

    @Test("safetensors round trip, header aligned to 8 bytes")
    func roundTrip() throws {
        let data = try Safetensors.encode(entries, metadata: ["step": "3"])
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect(headerLength % 8 == 0)
        let (decoded, metadata) = try Safetensors.decode(data, source: "test")
        #expect(decoded["a.weight"] == entries[0] && decoded["b"] == entries[1])
        #expect(metadata["step"] == "3" && metadata[Safetensors.checksumKey]?.count == 8)
    }

    @Test("a truncated or corrupted file is refused with a message")
    func corrupt() throws {
        let data = try Safetensors.encode(entries, metadata: [:])
        for broken in [data.prefix(data.count - 4), data.prefix(20), Data()] {
            #expect(throws: TrainingError.self) { try Safetensors.decode(Data(broken), source: "x") }
        }
        var flipped = data
        flipped[flipped.count - 1] ^= 0x01
        do {
            _ = try Safetensors.decode(flipped, source: "x.safetensors")
            Issue.record("a corrupted file was accepted")
        } catch let e as TrainingError {
            #expect(e.message.contains("x.safetensors") && e.message.contains("CRC"))
        }
    }

    @Test("the checksum covers the header and is required")
    func headerChecksum() throws {
        let data = try Safetensors.encode(entries, metadata: ["note": "std 0.3530"])
        // one changed digit inside the header's metadata
        let text = String(decoding: data, as: UTF8.self)
        let digit = try #require(text.range(of: "0.3530")).lowerBound.utf16Offset(in: text) + 2
        var altered = data
        altered[digit] = UInt8(ascii: "4")
        #expect(throws: TrainingError.self) { try Safetensors.decode(altered, source: "x") }
        // a header rewritten without the checksum
        var stripped = data
        let key = try #require(text.range(of: "\"\(Safetensors.checksumKey)\"")).lowerBound.utf16Offset(in: text)
        stripped[key + 1] = UInt8(ascii: "X")
        do {
            _ = try Safetensors.decode(stripped, source: "x")
            Issue.record("a file without a checksum was accepted")
        } catch let e as TrainingError {
            #expect(e.message.contains("no checksum"), "\(e.message)")
        }
        #expect(try Safetensors.decode(data, source: "x").entries.count == 2)  // the control reads
    }

    @Test("hostile headers with a valid checksum are refused, never trusted")
    func hostileHeaders() throws {
        let tensors = "\"a\":{\"dtype\":\"F32\",\"shape\":SHAPE,\"data_offsets\":OFFSETS}"
        func file(shape: String, offsets: String, dataBytes: Int = 8) -> Data {
            let header = "{" + tensors.replacingOccurrences(of: "SHAPE", with: shape).replacingOccurrences(of: "OFFSETS", with: offsets) + "}"
            return withChecksum(header: header, data: Data(count: dataBytes))
        }
        #expect(try Safetensors.decode(file(shape: "[2]", offsets: "[0,8]"), source: "x").entries["a"]?.values == [0, 0])  // the control
        let hostile = [
            file(shape: "[4611686018427387904,4]", offsets: "[0,8]"),  // 2^62 x 4: the byte count overflows
            file(shape: "[-2]", offsets: "[0,8]"),
            file(shape: "[2]", offsets: "[8,0]"),
            file(shape: "[2]", offsets: "[-8,0]"),
            file(shape: "[2]", offsets: "[0,8]", dataBytes: 12),  // bytes follow the last tensor
            file(shape: "[1,1,1,1,1,1,1,1,1,2]", offsets: "[0,8]"),
            withChecksum(header: "{" + tensors.replacingOccurrences(of: "SHAPE", with: "[2]").replacingOccurrences(of: "OFFSETS", with: "[0,8]")
                         + "," + tensors.replacingOccurrences(of: "\"a\"", with: "\"b\"").replacingOccurrences(of: "SHAPE", with: "[1]")
                            .replacingOccurrences(of: "OFFSETS", with: "[4,8]") + "}", data: Data(count: 8)),  // overlapping tensors
        ]
        for (i, bytes) in hostile.enumerated() {
            #expect(throws: TrainingError.self, "hostile header \(i)") { try Safetensors.decode(bytes, source: "x") }
        }
    }

    @Test("2,000 seeded mutations of a checkpoint are refused with an error, never a trap")
    func fuzz() throws {
        let data = try Safetensors.encode(entries, metadata: ["step": "3", "config": "train:\n  lr: 0.1\n"])
        var rng = FuzzRandom(seed: 12)
        var accepted = 0
        for _ in 0..<2_000 {
            var bytes = [UInt8](data)
            switch rng.next(4) {
            case 0: for _ in 0...rng.next(3) { bytes[rng.next(bytes.count)] ^= UInt8(1 << rng.next(8)) }
            case 1: bytes.removeLast(1 + rng.next(bytes.count - 1))
            case 2: bytes.insert(UInt8(rng.next(256)), at: rng.next(bytes.count))
            default: for i in 0..<8 { bytes[i] = UInt8(rng.next(256)) }  // the header length
            }
            if (try? Safetensors.decode(Data(bytes), source: "fuzz")) != nil { accepted += 1 }
        }
        #expect(accepted == 0, "\(accepted) mutated files were accepted")
    }

    @Test("checkpoint metadata out of range is refused, naming the field")
    func metadataRanges() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("abn-meta-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var metadata = ["format": "abn-checkpoint", "format_version": Checkpoint.formatVersion, "step": "7", "epoch": "0",
                        "step_in_epoch": "7", "world_size": "2"]
        try Safetensors.encode(entries, metadata: metadata).write(to: URL(fileURLWithPath: path))
        #expect(try Checkpoint(path: path).step == 7)  // the control
        for (key, value) in [("step", "-5"), ("step", "99999999999999999999"), ("world_size", "0"), ("epoch", "x")] {
            metadata[key] = value
            try Safetensors.encode(entries, metadata: metadata).write(to: URL(fileURLWithPath: path))
            do {
                _ = try Checkpoint(path: path)
                Issue.record("\(key) = \(value) was accepted")
            } catch let e as TrainingError {
                #expect(e.message.contains(key), "\(e.message)")
            }
            metadata = ["format": "abn-checkpoint", "format_version": Checkpoint.formatVersion, "step": "7", "epoch": "0",
                        "step_in_epoch": "7", "world_size": "2"]
        }
    }

    @Test("the learning rate warms up linearly and decays to zero")
    func schedule() {
        let s = LearningRateSchedule(peak: 0.1, warmupSteps: 9, totalSteps: 109, kind: .cosine)
        #expect(abs(s.rate(step: 0) - 0.01) < 1e-7 && abs(s.rate(step: 9) - 0.1) < 1e-7)
        #expect(s.rate(step: 59) < 0.051 && s.rate(step: 59) > 0.049)
        #expect(s.rate(step: 108) < 1e-4)
        let poly = LearningRateSchedule(peak: 0.1, warmupSteps: 0, totalSteps: 100, kind: .poly, power: 1)
        #expect(abs(poly.rate(step: 50) - 0.05) < 1e-6)
    }
}

/// A safetensors file with `header` (JSON without the metadata), a valid checksum and `data`.
func withChecksum(header: String, data: Data) -> Data {
    let withKey = header.dropLast() + ",\"__metadata__\":{\"\(Safetensors.checksumKey)\":\"00000000\"}}"
    var json = Data(withKey.utf8)
    while json.count % 8 != 0 { json.append(0x20) }
    var out = Data()
    var length = UInt64(json.count).littleEndian
    withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
    out.append(json)
    out.append(data)
    let digits = out.range(of: Data("00000000".utf8))!
    let crc = out.withUnsafeBytes { raw in crc32(0, raw.baseAddress!.assumingMemoryBound(to: Bytef.self), uInt(raw.count)) }
    out.replaceSubrange(digits, with: Data(String(format: "%08x", UInt32(crc)).utf8))
    return out
}

/// SplitMix64, for seeded fuzzing.
struct FuzzRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    /// A value in 0..<bound.
    mutating func next(_ bound: Int) -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int((z ^ (z >> 31)) % UInt64(max(1, bound)))
    }
}
