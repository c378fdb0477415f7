import CZlib
import Foundation

/// The safetensors format: an 8-byte little-endian header length, a JSON header naming each
/// tensor's dtype, shape and byte range, then the data. Only F32 tensors are written and read
/// (PyTorch's int64 `num_batches_tracked` counters are accepted and skipped); checkpoints carry a
/// checksum, which must match.
public enum Safetensors {
    public struct Entry: Equatable, Sendable {
        public let name: String
        public let shape: [Int]
        public let values: [Float]

        public init(name: String, shape: [Int], values: [Float]) {
            self.name = name
            self.shape = shape
            self.values = values
        }
    }

    /// Metadata key of the CRC-32 (8 hex digits) of the whole file, computed with these 8
    /// digits written as "00000000": it covers the header (shapes, offsets, metadata) and the data.
    public static let checksumKey = "checksum"
    /// The largest header accepted (bytes).
    static let headerLimit = 64 << 20

    /// The file's bytes: header (padded with spaces to a multiple of 8) and data, with
    /// `metadata` in `__metadata__` plus the checksum.
    public static func encode(_ entries: [Entry], metadata: [String: String]) throws -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for e in entries {
            precondition(e.values.count == e.shape.reduce(1, *), "\(e.name): \(e.values.count) values for shape \(e.shape)")
            header[e.name] = ["dtype": "F32", "shape": e.shape, "data_offsets": [offset, offset + 4 * e.values.count]]
            offset += 4 * e.values.count
        }
        var meta = metadata
        meta[checksumKey] = "00000000"
        header["__metadata__"] = meta
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
        var length = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(json)
        for e in entries { e.values.withUnsafeBytes { out.append(contentsOf: $0) } }  // little-endian on x86-64 and arm64
        let digits = try checksumDigits(in: out, headerEnd: 8 + json.count, source: "the new checkpoint")
        out.replaceSubrange(digits, with: Data(String(format: "%08x", checksum(out, digits: digits)).utf8))
        return out
    }

    /// Parses and checks a file's bytes: its checksum (when `requireChecksum`, else only when it
    /// has one: files that other programs write have none), the header's bounds and fields, and
    /// that the tensors' byte ranges tile the data exactly. Every number read is range-checked
    /// before it is used. I64 tensors named `*num_batches_tracked` (BatchNorm's step counters in
    /// a PyTorch state dict) take part in the tiling check and are left out of `entries`; any
    /// other tensor that is not F32 is refused. `source` names the file in error messages.
    public static func decode(_ data: Data, source: String, requireChecksum: Bool = true) throws -> (entries: [String: Entry], metadata: [String: String]) {
        func corrupt(_ why: String) -> TrainingError {
            TrainingError("\(source) is not a valid checkpoint (\(why)); it may be truncated or corrupt. Use an older checkpoint.")
        }
        let data = data.startIndex == 0 ? data : Data(data)
        guard data.count >= 8 else { throw corrupt("only \(data.count) bytes") }
        let length = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard length > 0, length <= UInt64(min(data.count - 8, headerLimit)) else { throw corrupt("a header of \(length) bytes does not fit the file") }
        let headerEnd = 8 + Int(length)
        guard let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<headerEnd)) as? [String: Any] else {
            throw corrupt("the header is not JSON")
        }
        if let digits = try? checksumDigits(in: data, headerEnd: headerEnd, source: source) {
            guard String(decoding: data[digits], as: UTF8.self) == String(format: "%08x", checksum(data, digits: digits)) else {
                throw corrupt("its bytes do not match the CRC-32 checksum in its header")
            }
        } else if requireChecksum {
            throw corrupt("its header has no checksum")
        }
        let payload = data.subdata(in: headerEnd..<data.count)
        var metadata: [String: String] = [:]
        var ranges: [(range: Range<Int>, name: String, shape: [Int], skipped: Bool)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: String] else { throw corrupt("__metadata__ is not a map of strings") }
                metadata = m
                continue
            }
            guard let info = value as? [String: Any], let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int],
                  offsets.count == 2 else {
                throw corrupt("tensor \(name) is not described with a shape and data offsets")
            }
            let dtype = info["dtype"] as? String
            let skipped = dtype == "I64" && name.hasSuffix("num_batches_tracked")
            guard dtype == "F32" || skipped else {
                throw TrainingError("\(source): tensor \(name) is \(dtype ?? "of no dtype"), not F32 (float32); save the weights as float32, "
                                    + "e.g. save_file({k: v.float() if v.is_floating_point() else v for k, v in model.state_dict().items()}, FILE).")
            }
            guard shape.count <= 8, shape.allSatisfy({ $0 >= 0 }), let bytes = byteCount(shape, elementBytes: skipped ? 8 : 4),
                  offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] - offsets[0] == bytes, offsets[1] <= payload.count else {
                throw corrupt("tensor \(name) of shape \(shape) does not fit bytes \(offsets) of \(payload.count)")
            }
            ranges.append((offsets[0]..<offsets[1], name, shape, skipped))
        }
        ranges.sort { ($0.range.lowerBound, $0.range.upperBound) < ($1.range.lowerBound, $1.range.upperBound) }
        var end = 0
        for r in ranges {
            guard r.range.lowerBound == end else {
                throw corrupt(r.range.lowerBound < end ? "tensor \(r.name) overlaps another tensor" : "a gap of \(r.range.lowerBound - end) bytes before tensor \(r.name)")
            }
            end = r.range.upperBound
        }
        guard end == payload.count else { throw corrupt("\(payload.count - end) bytes follow the last tensor") }
        var entries: [String: Entry] = [:]
        for r in ranges where !r.skipped {
            var values = [Float](repeating: 0, count: r.range.count / 4)
            values.withUnsafeMutableBytes { dst in
                payload.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[r.range])) }
            }
            entries[r.name] = Entry(name: r.name, shape: r.shape, values: values)
        }
        return (entries, metadata)
    }

    /// `elementBytes` x the product of `shape`, or nil when it overflows.
    private static func byteCount(_ shape: [Int], elementBytes: Int) -> Int? {
        var n = elementBytes
        for d in shape {
            let (product, overflow) = n.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            n = product
        }
        return n
    }

    /// Where the checksum's 8 digits are: the one `"checksum":"XXXXXXXX"` in the header. (A
    /// quote inside a JSON string is escaped, so the pattern cannot come from a value.)
    private static func checksumDigits(in data: Data, headerEnd: Int, source: String) throws -> Range<Int> {
        let pattern = Data("\"\(checksumKey)\":\"".utf8)
        let header = data.startIndex + 8..<data.startIndex + headerEnd
        guard let found = data.range(of: pattern, in: header),
              data.range(of: pattern, in: found.upperBound..<header.upperBound) == nil,
              found.upperBound + 9 <= header.upperBound, data[found.upperBound + 8] == UInt8(ascii: "\"") else {
            throw TrainingError("\(source): no single checksum in the header")
        }
        return found.upperBound - data.startIndex..<found.upperBound - data.startIndex + 8
    }

    /// The CRC-32 of `data` with the bytes at `digits` counted as "00000000" (read in place).
    private static func checksum(_ data: Data, digits: Range<Int>) -> UInt32 {
        data.withUnsafeBytes { raw in
            var crc = crc32Of(UnsafeRawBufferPointer(rebasing: raw[0..<digits.lowerBound]))
            Array("00000000".utf8).withUnsafeBytes { crc = crc32Of($0, continuing: crc) }
            return crc32Of(UnsafeRawBufferPointer(rebasing: raw[digits.upperBound...]), continuing: crc)
        }
    }
}

/// CRC-32 (zlib) of `bytes`, continuing the CRC of what came before them.
func crc32Of(_ bytes: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
    var crc = uLong(previous)
    var offset = 0
    while offset < bytes.count {  // zlib takes 32-bit lengths
        let n = min(bytes.count - offset, 1 << 30)
        crc = crc32(crc, bytes.baseAddress!.assumingMemoryBound(to: Bytef.self) + offset, uInt(n))
        offset += n
    }
    return UInt32(crc)
}
