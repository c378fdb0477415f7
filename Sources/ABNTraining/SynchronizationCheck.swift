import ABNComm
import ABNData
import ABNLayers
import ABNTensor

/// `abn verify`: runs K training steps of a config across the current ranks with synchronized
/// norm layers, runs the same global batches in one replica on rank 0, and compares, per
/// layer: the norm layers' outputs and input gradients (first step), and every parameter and
/// running statistic after K steps.
///
/// N ranks and one process agree only up to rounding, and how far rounding carries depends on
/// the processor, the GEMM kernels and the model (a norm over few values whose gradient nearly
/// cancels amplifies it a thousandfold). So the check measures that noise floor on the spot: a
/// second one-process reference computes the same steps in another, equally valid order (the
/// global batch reversed, batch statistics merged image by image, every product on the other
/// GEMM library), and each quantity's floor is its largest difference between the two
/// references. N ranks pass when within `floorMultiple` floors plus `atol` times the quantity's
/// largest magnitude. The same ranks with unsynchronized norm layers, a negative control, must
/// miss that tolerance by at least `decisiveMargin` times in some quantity, or the check cannot
/// decide.
public struct SynchronizationCheck {
    public let config: TrainingConfig
    public let steps: Int
    public let slices: BatchSlices
    /// How many noise floors a distance may reach.
    public let floorMultiple: Double
    /// A distance may also reach `atol` times the quantity's largest |value| (a few float ulps).
    public let atol: Double
    /// How many tolerances the control must exceed for the check to tell synchronization apart.
    public let decisiveMargin: Double

    /// Outputs within this fraction of their layer's largest |value| of the activation's kink
    /// are where rounding may choose the branch (see `run`).
    public let kinkWindow = 1e-5

    public init(config: TrainingConfig, steps: Int, slices: BatchSlices, floorMultiple: Double = 10, atol: Double = 1e-6,
                decisiveMargin: Double = 100) {
        self.config = config
        self.steps = steps
        self.slices = slices
        self.floorMultiple = floorMultiple
        self.atol = atol
        self.decisiveMargin = decisiveMargin
    }

    /// One quantity of one layer: its distances from the reference (largest |difference|).
    public struct Row: Sendable {
        public let layer: String
        public let quantity: String
        /// Largest |value| of the reference.
        public let scale: Double
        /// The noise floor: the second reference's distance.
        public let floor: Double
        /// The N-rank run's distance.
        public let distance: Double
        /// The unsynchronized control's distance; nil with one rank.
        public let controlDistance: Double?
        /// floorMultiple * floor + atol * scale.
        public let tolerance: Double

        public var withinTolerance: Bool { distance <= tolerance }
        /// controlDistance / tolerance.
        public var controlMargin: Double? { controlDistance.map { $0 / max(tolerance, .leastNonzeroMagnitude) } }
    }

    /// What the control shows.
    public enum ControlVerdict: String, Sendable {
        /// Some quantity misses the tolerance by `decisiveMargin` times or more.
        case differs
        /// The control misses the tolerance, but by less than `decisiveMargin` times everywhere.
        case undecided
        /// The control is within the tolerance everywhere: the check cannot fail.
        case matches
    }

    public struct Result: Sendable {
        public let rows: [Row]
        /// What the second reference changed, for reports, e.g. "batch reversed, oneDNN products".
        public let floorOrder: String
        public let replicasIdentical: Bool
        /// Nil with one rank, where unsynchronized equals synchronized.
        public let control: ControlVerdict?
        /// Outputs of the synchronized run within `kinkWindow` of the activation's kink, over all steps.
        public let kinkValues: Int
        /// Of those, the values the reference and the floor's reference had on the other side.
        public let aligned: (reference: Int, floor: Int)

        public var synchronizedMatches: Bool { rows.allSatisfy(\.withinTolerance) }
        public var passed: Bool { synchronizedMatches && replicasIdentical && (control ?? .differs) == .differs }
        /// The largest distance / tolerance of the N-rank run.
        public var worstRatio: Double { rows.map { $0.distance / max($0.tolerance, .leastNonzeroMagnitude) }.max() ?? 0 }
        /// The largest control distance / tolerance.
        public var controlMargin: Double? { control == nil ? nil : rows.compactMap(\.controlMargin).max() ?? 0 }
    }

    /// A norm layer's output value within `kinkWindow` of the activation's kink, where a
    /// derivative that jumps there (leaky ReLU's from 1 to its slope) turns a rounding difference
    /// into a gradient difference of the value's own size: the references take the derivative
    /// from the side the synchronized run chose, so that only rounding separates the runs.
    struct Kink {
        let step, layer: Int
        /// Flat index into the layer's output over the global batch.
        let index: Int
        let below: Bool

        /// Five Floats, each exact: step, layer, index / 2^20, index % 2^20, below.
        var packed: [Float] { [Float(step), Float(layer), Float(index >> 20), Float(index & 0xFFFFF), below ? 1 : 0] }

        static func unpack(_ values: [Float]) -> [Kink] {
            stride(from: 0, to: values.count - 4, by: 5).map { i in
                Kink(step: Int(values[i]), layer: Int(values[i + 1]), index: Int(values[i + 2]) << 20 | Int(values[i + 3]), below: values[i + 4] != 0)
            }
        }
    }

    /// A step and a layer (its position among the network's norm layers).
    struct KinkPlace: Hashable {
        let step, layer: Int
    }

    /// What a run leaves to compare: probe captures of the first step and the final state, in
    /// one order of (layer, quantity) keys; the outputs it found on a kink (when it looked) and
    /// how many values it moved to the other side of one.
    private struct Outcome {
        var keys: [(layer: String, quantity: String)] = []
        var values: [String: [Float]] = [:]
        var kinks: [Kink] = []
        var aligned = 0

        /// Sets a quantity's values; a new key goes last in the order.
        mutating func add(_ layer: String, _ quantity: String, _ v: [Float]) {
            if values["\(layer) \(quantity)"] == nil { keys.append((layer, quantity)) }
            values["\(layer) \(quantity)"] = v
        }
        subscript(layer: String, quantity: String) -> [Float] { values["\(layer) \(quantity)"] ?? [] }
    }

    /// Runs the check on every rank; the result is complete on rank 0.
    public func run(_ coordinator: Coordinator, progress: (String) -> Void = { _ in }) throws -> Result {
        let comm = coordinator.comm
        guard slices.counts.count == comm.size else {
            throw TrainingError("--slices gives \(slices.counts.count) counts but the job has \(comm.size) ranks; give one count per rank.")
        }
        guard slices.total >= 2 else { throw TrainingError("the global batch must have at least 2 samples, got \(slices.total).") }
        let session = try Session(config: config, coordinator: coordinator)
        let loader = session.train
        let batches = try GlobalBatches(samples: session.data.train.count, globalBatch: slices.total, seed: UInt64(config.train.seed))
        let schedule = config.schedule(totalSteps: steps)

        /// Trains `replica` for the K steps on positions `positions` of each global batch, in
        /// reverse order when `reversed` (captures are put back in the batch's order). With
        /// `recordKinks`, notes the outputs within `kinkWindow` of the activation's kink; at the
        /// values of `sides`, takes the activation's derivative from the side given there.
        func train(_ replica: Replica, positions: Range<Int>, reversed: Bool = false, sides: [KinkPlace: [(index: Int, below: Bool)]] = [:],
                   recordKinks: Bool = false) throws -> Outcome {
            var outcome = Outcome()
            var step = 0
            /// The flat index over the global batch of local element `i` of a tensor of `samples` samples.
            func global(_ i: Int, size: Int, samples: Int) -> Int {
                let sample = i / size
                return (positions.lowerBound + (reversed ? samples - 1 - sample : sample)) * size + i % size
            }
            for (l, layer) in replica.net.probedLayers.enumerated() {
                for point in [NormProbe.output, .inputGradient] { outcome.add(layer.name, point.rawValue, []) }
                let kink = layer.activation.kinkDerivatives
                layer.probe = { layer, point, tensor in
                    if step == 0 {
                        let values = reversed ? Self.reversingSamples(tensor.array, samples: tensor.shape[0]) : tensor.array
                        outcome.add(layer.name, point.rawValue, values)
                    }
                    guard point == .output, let kink, tensor.count > 0 else { return }
                    let z = tensor.data, samples = tensor.shape[0], size = tensor.count / samples
                    if recordKinks {
                        var largest: Float = 0
                        for i in 0..<tensor.count { largest = max(largest, abs(z[i])) }
                        let window = Float(kinkWindow) * largest
                        for i in 0..<tensor.count where abs(z[i]) <= window {
                            outcome.kinks.append(Kink(step: step, layer: l, index: global(i, size: size, samples: samples), below: z[i] < 0))
                        }
                    }
                    for (index, below) in sides[KinkPlace(step: step, layer: l)] ?? [] {
                        let g = index / size - positions.lowerBound
                        let local = (reversed ? samples - 1 - g : g) * size + index % size
                        let own = z[local] < 0
                        guard own != below else { continue }
                        layer.gradientFactors.append((local, own ? kink.above / kink.below : kink.below / kink.above))
                        outcome.aligned += 1
                    }
                }
            }
            var permutation: [Int] = []
            for s in 0..<steps {
                step = s
                let epoch = batches.epoch(ofStep: step)
                if step == 0 || step % batches.stepsPerEpoch == 0 { permutation = batches.permutation(epoch: epoch) }
                let slice = Array(batches.batch(step: step, permutation: permutation)[positions])
                let indices = reversed ? slice.reversed() : slice
                let keys = Replica.drawKeys(seed: config.train.seed, step: step, positions: reversed ? Array(positions.reversed()) : Array(positions))
                _ = try replica.step(try loader.load(indices, epoch: epoch), drawKeys: keys, globalBatch: slices.total,
                                     learningRate: schedule.rate(step: step))
            }
            for layer in replica.net.probedLayers { layer.probe = nil }
            let store = replica.net.parameters
            for p in store.parameters + store.buffers {
                let dot = p.name.lastIndex(of: ".")!
                outcome.add(String(p.name[..<dot]), String(p.name[p.name.index(after: dot)...]) + " after \(steps) steps", p.value.array)
            }
            return outcome
        }

        /// The distributed run's values, complete on rank 0 (first-step captures and the values
        /// on a kink gathered).
        func distributed(sync: Replica.Synchronization, recordKinks: Bool = false) throws -> (outcome: Outcome, identical: Bool) {
            let replica = try session.replica(sync: sync)
            coordinator.broadcastInitialState(replica.net.parameters)
            let local = try train(replica, positions: slices.range(rank: comm.rank), recordKinks: recordKinks)
            var outcome = local
            for layer in replica.net.probedLayers {
                for point in [NormProbe.output, .inputGradient] {
                    let mine = local[layer.name, point.rawValue]
                    outcome.add(layer.name, point.rawValue, mine.withUnsafeBufferPointer {
                        comm.gather($0.baseAddress!, count: mine.count, root: 0, what: "the replicas' results")
                    })
                }
            }
            if recordKinks {
                let packed = local.kinks.flatMap(\.packed)
                outcome.kinks = Kink.unpack(packed.withUnsafeBufferPointer {
                    comm.gather($0.baseAddress!, count: packed.count, root: 0, what: "the values on the activation's kink")
                })
            }
            return (outcome, coordinator.replicasIdentical(replica.net.parameters))
        }

        progress("synchronized: \(comm.size) rank(s), slices \(slices.counts), \(steps) steps")
        let synchronized = try distributed(sync: .all, recordKinks: true)
        let sides = Dictionary(grouping: synchronized.outcome.kinks) { KinkPlace(step: $0.step, layer: $0.layer) }
            .mapValues { $0.map { (index: $0.index, below: $0.below) } }

        let run = RunContext.process, library = run.defaultLibrary
        let otherLibrary: GEMMLibrary = library == .openblas ? .onednn : .openblas
        let floorOrder = "batch reversed, statistics merged image by image" + (run.forcedGEMM == nil ? ", products on \(otherLibrary.rawValue)" : " (ABN_GEMM fixes the library)")
        var reference = Outcome(), second = Outcome()
        if coordinator.isRoot {
            progress("reference: one replica on the whole global batch of \(slices.total)")
            let whole = 0..<slices.total
            reference = try train(try session.replica(comm: SingleProcess(), sync: Replica.Synchronization.none),
                                  positions: whole, sides: sides)
            progress("noise floor: the same in another valid order (\(floorOrder))")
            let installed = run.gemm
            run.gemm = GEMMChoice(otherwise: otherLibrary)
            defer { run.gemm = installed }
            let other = try session.replica(comm: SingleProcess(), sync: Replica.Synchronization.none)
            for layer in other.net.normLayers { layer.momentsByImage = true }
            second = try train(other, positions: whole, reversed: true, sides: sides)
        }

        var control: Outcome?
        if comm.size > 1 {
            // a rank of fewer than 2 images cannot normalize one value per image on its own
            let small = (slices.counts.min() ?? 0) < 2
            progress("negative control: the same ranks with unsynchronized norm layers"
                     + (small ? " (those that see one value per image stay synchronized: a rank holds fewer than 2 images)" : ""))
            control = try distributed(sync: small ? .perImageOnly : .none).outcome
        }
        guard coordinator.isRoot else {
            return Result(rows: [], floorOrder: floorOrder, replicasIdentical: synchronized.identical, control: nil, kinkValues: 0, aligned: (0, 0))
        }
        let rows = reference.keys.map { key in
            let want = reference[key.layer, key.quantity]
            let scale = want.reduce(0.0) { max($0, abs(Double($1))) }
            let floor = Self.distance(second[key.layer, key.quantity], want)
            return Row(layer: key.layer, quantity: key.quantity, scale: scale, floor: floor,
                       distance: Self.distance(synchronized.outcome[key.layer, key.quantity], want),
                       controlDistance: control.map { Self.distance($0[key.layer, key.quantity], want) },
                       tolerance: floorMultiple * floor + atol * scale)
        }
        var verdict: ControlVerdict?
        if control != nil {
            let margin = rows.compactMap(\.controlMargin).max() ?? 0
            verdict = margin >= decisiveMargin ? .differs : margin > 1 ? .undecided : .matches
        }
        return Result(rows: rows, floorOrder: floorOrder, replicasIdentical: synchronized.identical, control: verdict,
                      kinkValues: synchronized.outcome.kinks.count, aligned: (reference.aligned, second.aligned))
    }

    /// The largest |got - want|; infinite when the counts differ or a value is not finite.
    static func distance(_ got: [Float], _ want: [Float]) -> Double {
        guard got.count == want.count else { return .infinity }
        var worst = 0.0
        for i in 0..<got.count {
            let d = abs(Double(got[i]) - Double(want[i]))
            if !(d <= worst) { worst = d.isNaN ? .infinity : d }
        }
        return worst
    }

    /// `values` of `samples` equal blocks with the blocks in reverse order.
    static func reversingSamples(_ values: [Float], samples: Int) -> [Float] {
        guard samples > 1 else { return values }
        let size = values.count / samples
        return (0..<samples).reversed().flatMap { values[$0 * size..<($0 + 1) * size] }
    }
}
