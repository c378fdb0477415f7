import ABNTraining
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
        #expect(metadata["step"] == "3" && metadata["data_crc32"] != nil)
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

    @Test("the learning rate warms up linearly and decays to zero")
    func schedule() {
        let s = LearningRateSchedule(peak: 0.1, warmupSteps: 9, totalSteps: 109, kind: "cosine")
        #expect(abs(s.rate(step: 0) - 0.01) < 1e-7 && abs(s.rate(step: 9) - 0.1) < 1e-7)
        #expect(s.rate(step: 59) < 0.051 && s.rate(step: 59) > 0.049)
        #expect(s.rate(step: 108) < 1e-4)
        let poly = LearningRateSchedule(peak: 0.1, warmupSteps: 0, totalSteps: 100, kind: "poly", power: 1)
        #expect(abs(poly.rate(step: 50) - 0.05) < 1e-6)
    }
}
