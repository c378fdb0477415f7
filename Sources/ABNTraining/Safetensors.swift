import CZlib
import Foundation

/// The safetensors format: an 8-byte little-endian header length, a JSON header naming each
/// tensor's dtype, shape and byte range, then the data. Only F32 tensors are written here.
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

    /// The file's bytes: header (padded with spaces to a multiple of 8) and data, with
    /// `metadata` in `__metadata__` plus `data_crc32`, the CRC-32 of the data section.
    public static func encode(_ entries: [Entry], metadata: [String: String]) throws -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for e in entries {
            precondition(e.values.count == e.shape.reduce(1, *), "\(e.name): \(e.values.count) values for shape \(e.shape)")
            header[e.name] = ["dtype": "F32", "shape": e.shape, "data_offsets": [offset, offset + 4 * e.values.count]]
            offset += 4 * e.values.count
        }
        var payload = Data(capacity: offset)
        for e in entries { e.values.withUnsafeBytes { payload.append(contentsOf: $0) } }  // little-endian on x86-64 and arm64
        var meta = metadata
        meta["data_crc32"] = String(crc32Of(payload))
        header["__metadata__"] = meta
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        var length = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(payload)
        return out
    }

    /// Parses and checks a file's bytes: header bounds, every tensor's range and size, the
    /// total length and the data's CRC-32. `source` names the file in error messages.
    public static func decode(_ data: Data, source: String) throws -> (entries: [String: Entry], metadata: [String: String]) {
        func corrupt(_ why: String) -> TrainingError {
            TrainingError("\(source) is not a valid checkpoint (\(why)); it may be truncated or corrupt. Use an older checkpoint.")
        }
        guard data.count >= 8 else { throw corrupt("only \(data.count) bytes") }
        let length = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard length > 0, length <= UInt64(data.count - 8) else { throw corrupt("a header of \(length) bytes does not fit the file") }
        let headerEnd = 8 + Int(length)
        guard let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<headerEnd)) as? [String: Any] else {
            throw corrupt("the header is not JSON")
        }
        let payload = data.subdata(in: headerEnd..<data.count)
        var metadata: [String: String] = [:]
        var entries: [String: Entry] = [:]
        var end = 0
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: String] else { throw corrupt("__metadata__ is not a map of strings") }
                metadata = m
                continue
            }
            guard let info = value as? [String: Any], info["dtype"] as? String == "F32",
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw corrupt("tensor \(name) is not described as F32 with a shape and data offsets")
            }
            let count = shape.reduce(1, *)
            guard offsets[0] >= 0, offsets[1] - offsets[0] == 4 * count, offsets[1] <= payload.count else {
                throw corrupt("tensor \(name) of shape \(shape) does not fit bytes \(offsets) of \(payload.count)")
            }
            var values = [Float](repeating: 0, count: count)
            values.withUnsafeMutableBytes { dst in
                payload.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[offsets[0]..<offsets[1]])) }
            }
            entries[name] = Entry(name: name, shape: shape, values: values)
            end = max(end, offsets[1])
        }
        guard end == payload.count else { throw corrupt("\(payload.count - end) bytes follow the last tensor") }
        if let expected = metadata["data_crc32"] {
            guard String(crc32Of(payload)) == expected else { throw corrupt("the data does not match its CRC-32") }
        }
        return (entries, metadata)
    }
}

/// CRC-32 (zlib) of `data`.
func crc32Of(_ data: Data) -> UInt32 {
    data.withUnsafeBytes { raw in
        var crc = crc32(0, nil, 0)
        var offset = 0
        while offset < raw.count {  // zlib takes 32-bit lengths
            let n = min(raw.count - offset, 1 << 30)
            crc = crc32(crc, raw.baseAddress!.assumingMemoryBound(to: Bytef.self) + offset, uInt(n))
            offset += n
        }
        return UInt32(crc)
    }
}
