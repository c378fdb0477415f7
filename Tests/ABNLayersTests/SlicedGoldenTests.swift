import ABNComm
import ABNLayers
import ABNTensor
import ABNTestSupport
import Foundation
import Testing

@Suite("InPlace-ABN golden cases across emulated ranks")
struct SlicedGoldenTests {
    /// The fields of a case as one process or N slices computed them, in Float.
    struct Fields {
        var z, dx, dweight, dbias, runningMean, runningVar: [Float]
    }

    /// Runs a case's forward and backward on its batch cut into `slices` (image counts), each
    /// slice in a thread of its own with a layer synchronized with the others (the cross-rank
    /// reducer over ranks that are threads, `ThreadCommunicator`); one slice is one process. Parameter gradients are summed over slices in rank order, as the gradient
    /// averager sums them.
    func run(_ c: GoldenCase, mode: NormMode, slices: [Int]) throws -> Fields {
        let channels = c.shape[1], size = c.x.count / c.shape[0]
        let comms = ThreadCommunicator.group(size: slices.count)
        let layers = try slices.indices.map { rank in
            let layer = try NormAct("golden", channels: channels, mode: mode,
                                    activation: try Activation(name: c.activation, parameter: c.activation_param), eps: c.eps, momentum: c.momentum)
            layer.weight.value.copy(from: Tensor(c.weight, shape: [channels]))
            layer.bias.value.copy(from: Tensor(c.bias, shape: [channels]))
            layer.runningMean.value.copy(from: Tensor(c.running_mean_in, shape: [channels]))
            layer.runningVar.value.copy(from: Tensor(c.running_var_in, shape: [channels]))
            layer.reducer = slices.count > 1 ? SynchronizedStatistics(comms[rank]) : LocalReducer()
            _ = ParameterStore(layer.allParameters)  // gives the parameters their gradients
            return layer
        }
        // each thread touches only its own layer and its own result
        nonisolated(unsafe) var results = Array(repeating: (z: [Float](), dx: [Float]()), count: slices.count)
        nonisolated(unsafe) let threadLayers = layers
        let done = DispatchGroup()
        for rank in slices.indices {
            let first = slices[..<rank].reduce(0, +), shape = [slices[rank]] + c.shape.dropFirst()
            let range = first * size..<(first + slices[rank]) * size
            done.enter()
            Thread {
                let z = try! threadLayers[rank].forward(Tensor(Array(c.x[range]), shape: shape)).array
                let dx = threadLayers[rank].backward(Tensor(Array(c.dz[range]), shape: shape)).array
                results[rank] = (z, dx)
                done.leave()
            }.start()
        }
        done.wait()
        let outputs = results
        func summed(_ gradient: (NormAct) -> [Float]) -> [Float] {
            (0..<channels).map { i in layers.dropFirst().reduce(gradient(layers[0])[i]) { $0 + gradient($1)[i] } }
        }
        return Fields(z: outputs.flatMap(\.z), dx: outputs.flatMap(\.dx), dweight: summed { $0.weight.gradient!.array },
                      dbias: summed { $0.bias.gradient!.array }, runningMean: layers[0].runningMean.value.array,
                      runningVar: layers[0].runningVar.value.array)
    }

    /// The largest |got - truth| over a field, in units of the float spacing at the field's
    /// largest |truth| (so fields of any scale compare).
    func error(_ got: [Float], _ truth: [Double]) -> Double {
        let scale = truth.reduce(0.0) { max($0, abs($1)) }
        let ulp = Double(Float(max(scale, 1e-30)).ulp)
        return zip(got, truth).reduce(0.0) { max($0, abs(Double($1.0) - $1.1)) } / ulp
    }

    @Test("Golden, in training: N synchronized slices are as close to the float64 truth as one process", arguments: NormMode.allCases)
    func slicesAsCloseAsOneProcess(mode: NormMode) throws {
        var compared = 0
        for file in goldenFiles() {
            let c = try JSONDecoder().decode(GoldenCase.self, from: Data(contentsOf: file))
            guard c.training, c.shape[0] >= 2 else { continue }
            let n = c.shape[0]
            let one = try run(c, mode: mode, slices: [n])
            for slices in [[1, n - 1], Array(repeating: 1, count: n)] {
                let many = try run(c, mode: mode, slices: slices)
                let truth = [c.z, c.dx, c.dweight, c.dbias, c.running_mean_out, c.running_var_out]
                let names = ["z", "dx", "dweight", "dbias", "running_mean", "running_var"]
                let fieldsOne = [one.z, one.dx, one.dweight, one.dbias, one.runningMean, one.runningVar]
                let fieldsMany = [many.z, many.dx, many.dweight, many.dbias, many.runningMean, many.runningVar]
                for f in names.indices {
                    let e1 = error(fieldsOne[f], truth[f]), eN = error(fieldsMany[f], truth[f])
                    // both are float computations of the same formulas: their errors are of one
                    // order; 4 float spacings cover a field whose one-process error happens to be 0
                    #expect(eN <= 4 * e1 + 4, "\(c.name) [\(mode)] slices \(slices) \(names[f]): \(eN) float spacings from the truth, one process \(e1)")
                }
                compared += 1
            }
        }
        #expect(compared >= 10, "only \(compared) slicings of training cases compared")
    }
}
