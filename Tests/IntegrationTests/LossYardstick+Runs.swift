import ABNTestSupport
import Foundation
import Testing

extension LossYardstick {
    /// Runs CONFIG in one process twice (`launch/debug.sh`, with `arguments`), the second time
    /// in the other order; `name` tells the run directories apart.
    static func measure(_ config: String, _ arguments: [String], name: String) throws -> LossYardstick {
        let one = runDirectory("\(name)-reference"), other = runDirectory("\(name)-floor")
        defer { for dir in [one, other] { try? FileManager.default.removeItem(atPath: dir) } }
        let a = try BinaryRunner.script("launch/debug.sh", [config, "--run-dir", one] + arguments)
        let b = try BinaryRunner.script("launch/debug.sh", [config, "--run-dir", other, "--set", "train.gemm=onednn"] + arguments,
                                        environment: ["ABN_MOMENTS_BY_IMAGE": "1"])
        try #require(a.status == 0 && b.status == 0, "one-process runs failed: \(a.stderr) \(b.stderr)")
        return LossYardstick(reference: try losses(one), floor: try losses(other))
    }
}
