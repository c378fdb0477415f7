/// A torchvision state dict (BatchNorm layers after convolutions) as abn weights of the same
/// names. An abn norm layer scales by gamma' = |weight| + eps, never by a negative number, so:
///
/// - a negative BN weight w of channel c is folded into the convolution before the BN: that
///   convolution's output channel c (its weights, and its bias if it has one) and the BN's
///   running mean of c are negated, which leaves the BN's output as it was with weight |w|;
/// - the abn weight is |w| - eps, so that gamma' = |w|. Below eps that would be negative: such a
///   weight becomes 0 (gamma' = eps, larger than |w| by eps - |w|), and the report lists it.
///
/// BN layers are found by their `running_var`; the convolution before `P.bnK` is `P.convK`
/// (the stem's `bn1` follows `conv1`), the one before `P.k` (k a number, in a Sequential such as
/// `downsample`, the ASPP branches or DeepLab's head) is `P.(k-1)`.
public enum TorchvisionConversion {
    /// A BN weight of magnitude below eps, which the conversion cannot keep exactly.
    public struct SmallWeight: Sendable, Equatable {
        /// The BN layer ("layer4.2.bn3") and the channel.
        public var layer: String
        public var channel: Int
        /// |w|.
        public var magnitude: Float
    }

    /// What a conversion did.
    public struct Report: Sendable, Equatable {
        /// The eps the abn weights are for (`model.eps`).
        public var eps: Float
        /// Tensors written.
        public var tensors = 0
        /// BN layers converted.
        public var normLayers = 0
        /// Negative BN weights folded into their convolutions.
        public var foldedWeights = 0
        /// The BN layers that had negative weights, sorted.
        public var foldedLayers: [String] = []
        /// The BN weights with |w| < eps (their gamma' is eps, not |w|), by layer and channel.
        public var belowEps: [SmallWeight] = []

        /// The largest |w| below eps (0 when there is none).
        public var largestBelowEps: Float { belowEps.map(\.magnitude).max() ?? 0 }
        /// The largest excess gamma' - |w| = eps - |w| of the weights below eps (0 when there is none).
        public var largestScaleExcess: Float { belowEps.map { eps - $0.magnitude }.max() ?? 0 }
    }

    /// `entries` (a torchvision state dict without `num_batches_tracked`) with every BN layer
    /// converted for norm layers of `eps`; the other tensors are kept as they are, apart from the
    /// convolutions that negative weights are folded into. Throws, naming the layer, when a BN
    /// layer's tensors are incomplete or when its convolution is missing or has another number of
    /// output channels.
    public static func convert(_ entries: [String: Safetensors.Entry], eps: Float) throws -> (entries: [String: Safetensors.Entry], report: Report) {
        var out = entries
        var report = Report(eps: eps)
        var convolutionOf: [String: String] = [:]  // convolution -> the BN layer after it
        let layers = entries.keys.filter { $0.hasSuffix(".running_var") }.map { String($0.dropLast(".running_var".count)) }.sorted()
        for bn in layers {
            let channels = entries[bn + ".running_var"]!.shape
            guard channels.count == 1 else {
                throw TrainingError("\(bn).running_var has shape \(channels), not (channels): \(bn) is not a BatchNorm layer abn can convert.")
            }
            for field in ["weight", "bias", "running_mean"] where entries["\(bn).\(field)"]?.shape != channels {
                let found = entries["\(bn).\(field)"].map { "has shape \($0.shape)" } ?? "is missing"
                throw TrainingError("\(bn).\(field) \(found), but \(bn).running_var has \(channels[0]) channels: the BN layer is incomplete; "
                                    + "convert a whole state dict with affine BatchNorm layers.")
            }
            guard let conv = convolution(before: bn) else {
                throw TrainingError("cannot tell which convolution comes before the BN layer \(bn): torchvision names a BN P.bnK (after P.convK) "
                                    + "or P.k (after P.(k-1)); this file does not follow torchvision's naming.")
            }
            guard let weights = entries[conv + ".weight"] else {
                throw TrainingError("the BN layer \(bn) follows the convolution \(conv), but the file has no \(conv).weight: "
                                    + "it is not a torchvision state dict abn can convert.")
            }
            guard weights.shape.count == 4, weights.shape[0] == channels[0] else {
                throw TrainingError("\(conv).weight has shape \(weights.shape), but a convolution before the BN layer \(bn) must have "
                                    + "\(channels[0]) output channels (shape (\(channels[0]), in, kH, kW)).")
            }
            if let other = convolutionOf.updateValue(bn, forKey: conv) {
                throw TrainingError("the BN layers \(other) and \(bn) both follow the convolution \(conv); abn cannot fold a sign into it for both.")
            }
            let bias = entries[conv + ".bias"]
            if let bias, bias.shape != channels {
                throw TrainingError("\(conv).bias has shape \(bias.shape), but \(conv) has \(channels[0]) output channels.")
            }

            var scale = entries[bn + ".weight"]!.values, mean = entries[bn + ".running_mean"]!.values
            var kernel = weights.values, shift = bias?.values
            let perChannel = kernel.count / channels[0]
            var folded = 0
            for c in scale.indices {
                if scale[c] < 0 {
                    for i in c * perChannel..<(c + 1) * perChannel { kernel[i] = -kernel[i] }
                    shift?[c].negate()
                    mean[c].negate()
                    scale[c].negate()
                    folded += 1
                }
                if scale[c] < eps {
                    report.belowEps.append(SmallWeight(layer: bn, channel: c, magnitude: scale[c]))
                    scale[c] = 0
                } else {
                    scale[c] -= eps
                }
            }
            out[bn + ".weight"] = Safetensors.Entry(name: bn + ".weight", shape: channels, values: scale)
            if folded > 0 {
                out[bn + ".running_mean"] = Safetensors.Entry(name: bn + ".running_mean", shape: channels, values: mean)
                out[conv + ".weight"] = Safetensors.Entry(name: conv + ".weight", shape: weights.shape, values: kernel)
                if let shift { out[conv + ".bias"] = Safetensors.Entry(name: conv + ".bias", shape: channels, values: shift) }
                report.foldedWeights += folded
                report.foldedLayers.append(bn)
            }
            report.normLayers += 1
        }
        report.tensors = out.count
        return (out, report)
    }

    /// The name of the convolution before the BN layer `bn` in torchvision's naming (`P.bnK` <-
    /// `P.convK`, `P.k` <- `P.(k-1)`); nil for a name of another form.
    static func convolution(before bn: String) -> String? {
        let dot = bn.lastIndex(of: ".")
        let parent = dot.map { String(bn[...$0]) } ?? ""  // "P." or ""
        let last = dot.map { bn[bn.index(after: $0)...] } ?? bn[...]
        let isNumber = { (s: Substring) in !s.isEmpty && s.allSatisfy { $0.isASCII && $0.isNumber } }
        if last.hasPrefix("bn"), isNumber(last.dropFirst(2)) { return parent + "conv" + last.dropFirst(2) }
        if isNumber(last), let k = Int(last), k >= 1 { return parent + String(k - 1) }
        return nil
    }
}
