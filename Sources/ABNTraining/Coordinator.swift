import ABNComm
import ABNLayers
import ABNTensor
import Foundation

/// Starts, checks and ends a data-parallel job: picks the communicator, makes all ranks start
/// from rank 0's state, detects ranks that disagree, and turns an error on any rank into the
/// end of the whole job with that rank's message (never a hang).
public struct Coordinator {
    public let comm: Communicator

    /// MPI when started by an MPI launcher, otherwise a single process without MPI. Waits for
    /// other ranks are limited by the default `train.collective_timeout_s` until a config says otherwise.
    public static func launch() -> Coordinator {
        RunContext.process.collectiveTimeout = TrainingConfig.Train().collectiveTimeoutS
        return Coordinator(comm: MPICommunicator.launchedByMPI ? MPICommunicator.world() : SingleProcess())
    }

    /// Applies the config's limit on waits for other ranks.
    public func watch(_ config: TrainingConfig) {
        RunContext.process.collectiveTimeout = config.train.collectiveTimeoutS
    }

    public init(comm: Communicator) { self.comm = comm }

    public var isRoot: Bool { comm.rank == 0 }

    /// Fails on every rank when ranks hold different `text` for `what` (e.g. the resolved
    /// config or the model size), naming the ranks that differ from rank 0.
    public func requireAgreement(_ what: String, _ text: String) throws {
        let mine = Int64(bitPattern: fnv1a(Array(text.utf8)))
        let all = comm.allgather(mine, what: "the \(what) hashes")
        let differing = all.indices.filter { all[$0] != all[0] }
        if !differing.isEmpty {
            throw TrainingError("ranks \(differing.map(String.init).joined(separator: ", ")) have a different \(what) from rank 0; start every rank with the same binary, config and options.")
        }
    }

    /// Makes every rank hold rank 0's parameters and buffers (running statistics).
    public func broadcastInitialState(_ store: ParameterStore) {
        comm.broadcast(store.values, what: "the initial weights")
        comm.broadcast(store.bufferValues, what: "the initial running statistics")
    }

    /// Rank 0's `text` (`what` it is) on every rank (others pass anything, e.g. "").
    public func broadcast(_ text: String, what: String = "the config") -> String {
        var bytes = Array(text.utf8)
        var count = Int64(bytes.count)
        comm.broadcast(&count, bytes: 8, root: 0, what: "the length of \(what)")
        guard count > 0 else { return "" }
        if !isRoot { bytes = [UInt8](repeating: 0, count: Int(count)) }
        bytes.withUnsafeMutableBytes { comm.broadcast($0.baseAddress!, bytes: $0.count, root: 0, what: what) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A checkpoint's config on every rank (the file `configFile` when given, else the one the
    /// checkpoint stores; `overrides` applied; its wait limit watched), and on rank 0 the
    /// checkpoint, which only rank 0 reads.
    public func loadCheckpoint(path: String, configFile: String?, overrides: [String]) throws -> (checkpoint: Checkpoint?, config: TrainingConfig) {
        let checkpoint = isRoot ? try Checkpoint(path: path) : nil
        let text = broadcast(try checkpoint?.configText(file: configFile) ?? "")
        let config = try TrainingConfig.parse(yaml: text, source: configFile ?? "the checkpoint's config", overrides: overrides)
        watch(config)
        return (checkpoint, config)
    }

    /// The config resolved once: rank 0 reads `path` and applies `overrides`, every rank parses
    /// rank 0's resolved YAML. Only rank 0 needs the file; an error there ends the job.
    public func loadConfig(path: String, overrides: [String]) throws -> TrainingConfig {
        let resolved = isRoot ? try TrainingConfig.load(path: path, overrides: overrides).yaml() : ""
        let config = try TrainingConfig.parse(yaml: broadcast(resolved), source: "\(path) (as resolved by rank 0)")
        watch(config)
        return config
    }

    /// Makes the config's synthetic data set where it is missing: rank 0 first, showing its
    /// progress in `progress`, then the other ranks, which find it there when the file system
    /// is shared.
    public func prepareData(_ config: TrainingConfig, progress: ProgressStyle = .auto) throws {
        if isRoot { try DataSource.generateIfMissing(config, progress: progress) }
        comm.barrier(what: "rank 0 checks or makes the data set")
        if !isRoot { try DataSource.generateIfMissing(config, progress: nil) }
    }

    /// True when every rank holds bit-identical parameters and buffers.
    public func replicasIdentical(_ store: ParameterStore) -> Bool {
        let bytes = UnsafeRawBufferPointer(start: store.values.data, count: store.values.byteCount)
        let buffers = UnsafeRawBufferPointer(start: store.bufferValues.data, count: store.bufferValues.byteCount)
        let hash = Int64(bitPattern: fnv1a(Array(bytes) + Array(buffers)))
        return Set(comm.allgather(hash, what: "the weight hashes")).count == 1
    }

    /// Runs `body`; on an error prints it (with the rank when there are several) and ends the
    /// job: MPI_Abort across ranks, or exit code 1 for a single process.
    public func run(_ body: () throws -> Void) {
        do {
            try body()
        } catch {
            let prefix = comm.size > 1 ? "abn (rank \(comm.rank)): error: " : "abn: error: "
            FileHandle.standardError.write(Data((prefix + "\(error)\n").utf8))
            if comm.size > 1 { comm.abort(code: 1) }
            exit(1)
        }
    }

    /// Prints on rank 0 only.
    public func say(_ line: String) {
        guard isRoot else { return }
        print(line)
        fflush(nil)
    }
}

/// 64-bit FNV-1a hash.
func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    return h
}
