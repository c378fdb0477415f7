import ABNComm
import ABNData
import ABNLayers
import ABNTensor

/// `abn verify`: runs K training steps of a config across the current ranks with synchronized
/// norm layers, runs the same global batches in one replica on rank 0, and compares, per
/// layer: the norm layers' outputs and input gradients (first step), and every parameter and
/// running statistic after K steps. It repeats the distributed run with unsynchronized norm
/// layers, a negative control that must differ (when there are several ranks).
public struct SynchronizationCheck {
    public let config: TrainingConfig
    public let steps: Int
    public let slices: BatchSlices
    /// Elements pass when |got - want| <= atol * min(1, scale) + rtol * |want|, with scale the
    /// largest |want| of the tensor: tensors of small magnitude (input gradients are ~1e-8
    /// here) are held to an absolute tolerance of their own size, not to one that dwarfs them.
    public let rtol: Double
    public let atol: Double

    public init(config: TrainingConfig, steps: Int, slices: BatchSlices, rtol: Double = 1e-4, atol: Double = 1e-5) {
        self.config = config
        self.steps = steps
        self.slices = slices
        self.rtol = rtol
        self.atol = atol
    }

    /// The largest differences of one quantity of one layer.
    public struct Row: Sendable {
        public let layer: String
        public let quantity: String
        public let maxAbs: Double
        public let maxRel: Double
        /// Largest |want|.
        public let scale: Double
        public let withinTolerance: Bool
    }

    public struct Result: Sendable {
        public let synchronized: [Row]
        /// Nil with one rank, where unsynchronized equals synchronized.
        public let control: [Row]?
        public let replicasIdentical: Bool

        public var synchronizedMatches: Bool { synchronized.allSatisfy(\.withinTolerance) }
        public var controlDiffers: Bool? { control.map { $0.contains { !$0.withinTolerance } } }
        public var passed: Bool { synchronizedMatches && replicasIdentical && (controlDiffers ?? true) }
    }

    /// What a run leaves to compare: probe captures of the first step and the final state.
    private struct Outcome {
        var captures: [String: [Float]] = [:]
        var order: [(layer: String, quantity: String)] = []
        var state: [(layer: String, quantity: String, values: [Float])] = []
    }

    /// Runs the check on every rank; the result is complete on rank 0.
    public func run(_ coordinator: Coordinator, progress: (String) -> Void = { _ in }) throws -> Result {
        let comm = coordinator.comm
        guard slices.counts.count == comm.size else {
            throw TrainingError("--slices gives \(slices.counts.count) counts but the job has \(comm.size) ranks; give one count per rank.")
        }
        guard slices.total >= 2 else { throw TrainingError("the global batch must have at least 2 samples, got \(slices.total).") }
        try coordinator.prepareData(config)
        let data = try DataSource(config: config)
        let loader = BatchLoader(dataset: data.train, pipeline: data.pipeline)
        let input = ModelInput(data)
        let batches = try GlobalBatches(samples: data.train.count, globalBatch: slices.total, seed: UInt64(config.train.seed))
        let schedule = config.schedule(totalSteps: steps)

        /// Trains `replica` for the K steps on positions `positions` of each global batch.
        func train(_ replica: Replica, positions: (Int) -> Range<Int>, rank: Int) throws -> Outcome {
            var outcome = Outcome()
            for layer in replica.net.normLayers {
                for point in [NormProbe.output, .inputGradient] { outcome.order.append((layer.name, point.rawValue)) }
                layer.probe = { layer, point, tensor in
                    outcome.captures["\(layer.name) \(point.rawValue)"] = tensor.array
                }
            }
            var permutation: [Int] = []
            for step in 0..<steps {
                let epoch = batches.epoch(ofStep: step)
                if step == 0 || step % batches.stepsPerEpoch == 0 { permutation = batches.permutation(epoch: epoch) }
                let indices = Array(batches.batch(step: step, permutation: permutation)[positions(rank)])
                _ = try replica.step(try loader.load(indices, epoch: epoch), globalBatch: slices.total, learningRate: schedule.rate(step: step))
                if step == 0 { for layer in replica.net.normLayers { layer.probe = nil } }
            }
            let store = replica.net.parameters
            for p in store.parameters + store.buffers {
                let dot = p.name.lastIndex(of: ".")!
                outcome.state.append((String(p.name[..<dot]), String(p.name[p.name.index(after: dot)...]) + " after \(steps) steps", p.value.array))
            }
            return outcome
        }

        var reference = Outcome()
        if coordinator.isRoot {
            progress("reference: one replica on the whole global batch of \(slices.total)")
            let single = try Replica(config: config, input: input, comm: SingleProcess(), sync: Replica.Synchronization.none)
            reference = try train(single, positions: { _ in 0..<slices.total }, rank: 0)
        }

        func distributed(sync: Replica.Synchronization) throws -> (rows: [Row], identical: Bool) {
            let replica = try Replica(config: config, input: input, comm: comm, sync: sync)
            coordinator.broadcastInitialState(replica.net.parameters)
            let outcome = try train(replica, positions: slices.range(rank:), rank: comm.rank)
            var rows: [Row] = []
            for (layer, quantity) in outcome.order {
                let local = outcome.captures["\(layer) \(quantity)"] ?? []
                let gathered = local.withUnsafeBufferPointer { comm.gather($0.baseAddress!, count: local.count, root: 0, what: "the replicas' results") }
                if coordinator.isRoot {
                    rows.append(compare(layer, quantity, gathered, reference.captures["\(layer) \(quantity)"] ?? []))
                }
            }
            if coordinator.isRoot {
                for (i, s) in outcome.state.enumerated() {
                    rows.append(compare(s.layer, s.quantity, s.values, reference.state[i].values))
                }
            }
            return (rows, coordinator.replicasIdentical(replica.net.parameters))
        }

        progress("synchronized: \(comm.size) rank(s), slices \(slices.counts), \(steps) steps")
        let synchronized = try distributed(sync: .all)
        var control: [Row]?
        if comm.size > 1 {
            // a rank of fewer than 2 images cannot normalize one value per image on its own
            let small = (slices.counts.min() ?? 0) < 2
            progress("negative control: the same ranks with unsynchronized norm layers"
                     + (small ? " (those that see one value per image stay synchronized: a rank holds fewer than 2 images)" : ""))
            control = try distributed(sync: small ? .perImageOnly : .none).rows
        }
        return Result(synchronized: synchronized.rows, control: control, replicasIdentical: synchronized.identical)
    }

    private func compare(_ layer: String, _ quantity: String, _ got: [Float], _ want: [Float]) -> Row {
        guard got.count == want.count else {
            return Row(layer: layer, quantity: quantity + " (\(got.count) vs \(want.count) values)", maxAbs: .infinity,
                       maxRel: .infinity, scale: 0, withinTolerance: false)
        }
        let scale = want.reduce(0.0) { max($0, abs(Double($1))) }
        let absolute = atol * min(1, scale)
        var maxAbs = 0.0, maxRel = 0.0, ok = true
        for i in 0..<got.count {
            let g = Double(got[i]), w = Double(want[i])
            let d = abs(g - w)
            maxAbs = max(maxAbs, d)
            maxRel = max(maxRel, d / max(abs(w), 1e-30))
            if !(d <= absolute + rtol * abs(w)) { ok = false }
        }
        return Row(layer: layer, quantity: quantity, maxAbs: maxAbs, maxRel: maxRel, scale: scale, withinTolerance: ok)
    }
}
