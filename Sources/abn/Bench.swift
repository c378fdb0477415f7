import ABNTensor
import ArgumentParser
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure kernels, memory and training steps.",
        subcommands: [BenchStep.self, BenchMemory.self, BenchKernels.self, BenchGEMM.self])
}

/// Prints one JSON object per line, keys sorted, for machine-readable benchmark output.
func printJSONLine(_ object: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

func formatted(_ x: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", x) }
