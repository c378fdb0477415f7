import Foundation

/// One rule of `ABN_LOWERING`, for A/B runs: the convolutions whose description contains `text`
/// (e.g. "64->64 3x3"; every convolution when empty) use the lowering named `name` (direct,
/// winograd, taps, phase-stack, row-shift, stride2-im2col, im2col) or aliased so ("phases" for
/// stride2-im2col), where that lowering applies (`ConvolutionLowering.applies`). The rules
/// decide the forward pass and the weight gradient; an input gradient that is the forward pass
/// of the transposed geometry follows the rules for that geometry, the others (col2im, the
/// stride-2 col2im) keep their automatic choice.
public struct LoweringRule: Sendable, Equatable {
    public let text: String
    public let name: String

    public init(text: String, name: String) {
        self.text = text
        self.name = name
    }

    /// The rules of `value`: `NAME`, or comma-separated `TEXT=NAME` rules (the first whose text
    /// a geometry's description contains decides); none for an empty value.
    public static func parse(_ value: String) -> [LoweringRule] {
        guard !value.isEmpty else { return [] }
        return value.split(separator: ",").map { rule in
            let parts = rule.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            return parts.count == 2 ? LoweringRule(text: parts[0], name: parts[1]) : LoweringRule(text: "", name: parts[0])
        }
    }
}
