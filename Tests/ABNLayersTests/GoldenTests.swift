import ABNLayers
import ABNTensor
import ABNTestSupport
import Foundation
import Testing

/// One golden case (format: Tests/Fixtures/golden/README.md).
struct GoldenCase: Decodable {
    let name: String
    let activation: String
    let activation_param: Float
    let eps: Float
    let momentum: Float
    let training: Bool
    let shape: [Int]
    let x, weight, bias, running_mean_in, running_var_in, dz: [Float]
    let z, dx, dweight, dbias, running_mean_out, running_var_out: [Double]
    let tolerance: Tolerance

    struct Tolerance: Decodable { let rtol: Double; let atol: Double }
}

/// The repository's golden cases (Tests/Fixtures/golden).
let fixtureDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/golden")

/// The `*.json` files of `directory`, sorted by name.
func goldenFiles(in directory: URL) -> [URL] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
    return names.filter { $0.hasSuffix(".json") }.sorted().map { directory.appendingPathComponent($0) }
}

/// The repository's cases, then those of the folder named by ABN_GOLDEN_DIR, if set.
func goldenFiles() -> [URL] {
    var files = goldenFiles(in: fixtureDirectory)
    if let extra = ProcessInfo.processInfo.environment["ABN_GOLDEN_DIR"], !extra.isEmpty {
        files += goldenFiles(in: URL(fileURLWithPath: extra))
    }
    return files
}

@Suite("InPlace-ABN golden cases")
struct GoldenTests {
    @Test("the repository holds golden cases, and ABN_GOLDEN_DIR (when set) adds some")
    func directoriesHaveCases() {
        #expect(goldenFiles(in: fixtureDirectory).count >= 10, "the golden cases are missing from \(fixtureDirectory.path); run python/make_golden.py")
        if let extra = ProcessInfo.processInfo.environment["ABN_GOLDEN_DIR"], !extra.isEmpty {
            #expect(!goldenFiles(in: URL(fileURLWithPath: extra)).isEmpty, "ABN_GOLDEN_DIR=\(extra) holds no *.json case")
        }
    }

    @Test("Golden: z, dx, dweight, dbias and running statistics match PyTorch", arguments: NormMode.allCases)
    func golden(mode: NormMode) throws {
        for file in goldenFiles() {
            let c = try JSONDecoder().decode(GoldenCase.self, from: Data(contentsOf: file))
            let label = "\(c.name) [\(mode)]"
            let channels = c.shape[1]
            let layer = try NormAct("golden", channels: channels, mode: mode,
                                    activation: try Activation(name: c.activation, parameter: c.activation_param),
                                    eps: c.eps, momentum: c.momentum)
            layer.training = c.training
            let store = ParameterStore(layer.allParameters)
            layer.weight.value.copy(from: Tensor(c.weight, shape: [channels]))
            layer.bias.value.copy(from: Tensor(c.bias, shape: [channels]))
            layer.runningMean.value.copy(from: Tensor(c.running_mean_in, shape: [channels]))
            layer.runningVar.value.copy(from: Tensor(c.running_var_in, shape: [channels]))
            let x = Tensor(c.x, shape: c.shape)
            let z = try layer.forward(x)
            let tol = c.tolerance
            expectClose(z.array.map(Double.init), c.z, rtol: tol.rtol, atol: tol.atol, "\(label) field z")
            expectClose(layer.runningMean.value.array.map(Double.init), c.running_mean_out, rtol: tol.rtol, atol: tol.atol, "\(label) field running_mean")
            expectClose(layer.runningVar.value.array.map(Double.init), c.running_var_out, rtol: tol.rtol, atol: tol.atol, "\(label) field running_var")
            let dx = layer.backward(Tensor(c.dz, shape: c.shape))
            expectClose(dx.array.map(Double.init), c.dx, rtol: tol.rtol, atol: tol.atol, "\(label) field dx")
            expectClose(layer.weight.gradient!.array.map(Double.init), c.dweight, rtol: tol.rtol, atol: tol.atol, "\(label) field dweight")
            expectClose(layer.bias.gradient!.array.map(Double.init), c.dbias, rtol: tol.rtol, atol: tol.atol, "\(label) field dbias")
            _ = store
        }
    }
}
