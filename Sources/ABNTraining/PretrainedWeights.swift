import ABNLayers
import Foundation

/// `model.pretrained`: initial weights taken by name from a checkpoint (one `abn convert`
/// wrote, or another run's). Every parameter and running statistic of the network that the file
/// holds under the same name and shape is copied. Only the output layer, the layer of the
/// network's last parameter (`fc` of a classifier, `classifier.4` of DeepLabV3, `cls` of
/// DeepLab), may be left out, absent from the file or of another shape (another class count):
/// it keeps its initial weights. Any other tensor that the file lacks or holds in another shape
/// is an error, and so is a file that matches nothing; the network is left unchanged then.
public struct PretrainedWeights {
    /// The file read.
    public let source: String
    /// Tensors copied into the network.
    public let loaded: Int
    /// The output layer's tensors left out, and why (`("fc.weight", "the file's shape is [1000, 512], the network's [10, 512]")`).
    public let leftOut: [(name: String, reason: String)]
    /// How many of the file's tensors the network does not have (optimizer state not counted).
    public let unused: Int

    /// The checkpoint at `path`; for a safetensors file that is not one, an error that says how
    /// to convert a torchvision state dict.
    public static func read(_ path: String) throws -> Checkpoint {
        do { return try Checkpoint(path: path) } catch {
            if let data = FileManager.default.contents(atPath: path),
               let plain = try? Safetensors.decode(data, source: path, requireChecksum: false), plain.metadata["format"] != "abn-checkpoint" {
                throw TrainingError("model.pretrained: \(path) is a safetensors file but not an abn checkpoint. If it holds a torchvision state dict, "
                                    + "convert it first (abn convert torchvision \(path) OUT.safetensors) and give OUT.safetensors.")
            }
            throw TrainingError("model.pretrained: \(error)")
        }
    }

    /// Copies `checkpoint` into `net` by the rule above.
    public init(_ checkpoint: Checkpoint, into net: any Network) throws {
        let store = net.parameters
        let targets = store.parameters + store.buffers
        let outputLayer = store.parameters.last.map { String($0.name.prefix(upTo: $0.name.lastIndex(of: ".") ?? $0.name.endIndex)) + "." } ?? ""
        var matched: [(Parameter, Safetensors.Entry)] = [], leftOut: [(name: String, reason: String)] = [], refused: [String] = []
        for p in targets {
            let reason: String
            if let e = checkpoint.entries[p.name] {
                if e.shape == p.shape {
                    matched.append((p, e))
                    continue
                }
                reason = "the file's shape is \(e.shape), the network's \(p.shape)"
            } else {
                reason = "not in the file"
            }
            if p.name.hasPrefix(outputLayer) { leftOut.append((p.name, reason)) } else { refused.append("\(p.name): \(reason)") }
        }
        guard !matched.isEmpty else {
            throw TrainingError("model.pretrained: no tensor of \(checkpoint.source) has the name and shape of one of this network's (\(net.summary)); "
                                + "the names must be the network's (a DeepLabV3's start with backbone. and classifier.).")
        }
        guard refused.isEmpty else {
            throw TrainingError("model.pretrained: \(checkpoint.source) does not fit this network (\(net.summary)) outside its output layer "
                                + "\(outputLayer.dropLast()), which alone may differ:\n  " + refused.prefix(12).joined(separator: "\n  ")
                                + (refused.count > 12 ? "\n  and \(refused.count - 12) more" : "")
                                + "\nUse a file of the same architecture and widths (model.arch, model.base_width).")
        }
        for (p, e) in matched {
            e.values.withUnsafeBufferPointer { p.value.data.update(from: $0.baseAddress!, count: p.count) }
        }
        let names = Set(targets.map(\.name))
        source = checkpoint.source
        loaded = matched.count
        self.leftOut = leftOut
        unused = checkpoint.entries.keys.filter { !names.contains($0) && !$0.hasPrefix("optimizer.") }.count
    }

    /// One line for the log: what was loaded, left out and unused.
    public var summary: String {
        "model.pretrained: loaded \(loaded) tensors from \(source)"
            + (leftOut.isEmpty ? "" : "; left out (initial weights kept): " + leftOut.map { "\($0.name) (\($0.reason))" }.joined(separator: ", "))
            + (unused > 0 ? "; \(unused) of the file's tensors are not in this network" : "")
    }
}
