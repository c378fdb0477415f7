import ABNLayers
import CMPI
import Foundation
import Synchronization

/// Open MPI. `MPICommunicator.world()` initializes MPI once per process (asking for
/// MPI_THREAD_MULTIPLE, so that a communication thread can reduce gradients while the main
/// thread synchronizes batch statistics on another communicator). Every collective is
/// nonblocking underneath and waited for by `waitForRequest`: waiting ranks sleep between
/// polls instead of spinning, and a wait longer than the run's `collectiveTimeout` ends the job
/// with a message naming `what` the rank waited in.
public final class MPICommunicator: Communicator {
    private let comm: MPI_Comm
    public let rank: Int
    public let size: Int

    /// Whether MPI granted MPI_THREAD_MULTIPLE (nil before initialization).
    public static var threadMultiple: Bool? { state.withLock { $0 } }
    private static let state = Mutex<Bool?>(nil)

    /// True when this process was started by an MPI launcher (mpirun/mpiexec or a PMIx launcher).
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil || env["PMI_RANK"] != nil
    }

    /// The world communicator; initializes MPI on first use and finalizes it at exit.
    public static func world() -> MPICommunicator {
        state.withLock { threadMultiple in
            guard threadMultiple == nil else { return }
            var provided: Int32 = 0
            check(MPI_Init_thread(nil, nil, cmpi_thread_multiple(), &provided), "MPI_Init_thread")
            threadMultiple = provided >= cmpi_thread_multiple()
            var diagnostics: MPI_Comm? = cmpi_comm_null()
            check(MPI_Comm_dup(cmpi_comm_world(), &diagnostics), "MPI_Comm_dup")
            Watchdog.attach(diagnostics!)
            atexit { MPICommunicator.finalize() }
        }
        return MPICommunicator(cmpi_comm_world(), owned: false)
    }

    private let owned: Bool

    /// Ends MPI in this process (at exit).
    static func finalize() {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized == 0 { MPI_Finalize() }
    }

    private init(_ comm: MPI_Comm, owned: Bool) {
        self.comm = comm
        self.owned = owned
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(comm, &r)
        MPI_Comm_size(comm, &s)
        rank = Int(r)
        size = Int(s)
    }

    deinit {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if owned && finalized == 0 {
            var handle: MPI_Comm? = comm
            MPI_Comm_free(&handle)
        }
    }

    /// Starts a nonblocking collective with `start` and waits for it (see `waitForRequest`).
    private func collective(_ what: @autoclosure () -> String, _ start: (inout MPI_Request?) -> Int32) {
        var request: MPI_Request? = cmpi_request_null()
        Self.check(start(&request), what())
        waitForRequest(&request, rank: rank, size: size, what: what)
    }

    public func allreduceSum(_ values: UnsafeMutablePointer<Double>, count: Int, what: String) {
        guard size > 1, count > 0 else { return }
        collective("allreduce (sum) of \(what)") { MPI_Iallreduce(cmpi_in_place(), values, Int32(count), cmpi_double(), cmpi_op_sum(), comm, &$0) }
    }

    public func allreduceSum(_ values: UnsafeMutablePointer<Float>, count: Int, what: String) {
        guard size > 1, count > 0 else { return }
        collective("allreduce (sum) of \(what)") { MPI_Iallreduce(cmpi_in_place(), values, Int32(count), cmpi_float(), cmpi_op_sum(), comm, &$0) }
    }

    public func allreduceMax(_ values: UnsafeMutablePointer<Double>, count: Int, what: String) {
        guard size > 1, count > 0 else { return }
        collective("allreduce (max) of \(what)") { MPI_Iallreduce(cmpi_in_place(), values, Int32(count), cmpi_double(), cmpi_op_max(), comm, &$0) }
    }

    public func allreduceMoments(_ packed: UnsafeMutablePointer<Double>, channels: Int, what: String) {
        guard size > 1 else { return }
        let type = MomentsType.shared.datatype(channels: channels)
        collective("allreduce (Chan merge) of \(what)") { MPI_Iallreduce(cmpi_in_place(), packed, 1, type, MomentsType.shared.op, comm, &$0) }
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int, what: String) {
        guard size > 1, bytes > 0 else { return }
        collective("broadcast of \(what) from rank \(root)") { MPI_Ibcast(buffer, Int32(bytes), cmpi_byte(), Int32(root), comm, &$0) }
    }

    public func allgather(_ value: Int64, what: String) -> [Int64] {
        var mine = value
        var all = [Int64](repeating: 0, count: size)
        all.withUnsafeMutableBufferPointer { out in
            collective("allgather of \(what)") { MPI_Iallgather(&mine, 1, cmpi_int64(), out.baseAddress, 1, cmpi_int64(), comm, &$0) }
        }
        return all
    }

    public func gather(_ values: UnsafePointer<Float>, count: Int, root: Int, what: String) -> [Float] {
        let counts = allgather(Int64(count), what: "the sizes of \(what)").map { Int32($0) }
        var displacements = [Int32](repeating: 0, count: size)
        for r in 1..<max(1, size) { displacements[r] = displacements[r - 1] + counts[r - 1] }
        var out = [Float](repeating: 0, count: rank == root ? Int(counts.reduce(0, +)) : 0)
        out.withUnsafeMutableBufferPointer { o in
            collective("gather of \(what) on rank \(root)") {
                MPI_Igatherv(values, Int32(count), cmpi_float(), o.baseAddress, counts, displacements, cmpi_float(), Int32(root), comm, &$0)
            }
        }
        return out
    }

    public func barrier(what: String) {
        guard size > 1 else { return }
        collective("barrier: \(what)") { MPI_Ibarrier(comm, &$0) }
    }

    public func duplicate() -> Communicator {
        var copy: MPI_Comm? = cmpi_comm_null()
        Self.check(MPI_Comm_dup(comm, &copy), "MPI_Comm_dup")
        return MPICommunicator(copy!, owned: true)
    }

    public func abort(code: Int32) -> Never {
        MPI_Abort(comm, code)
        exit(code)
    }

    static func check(_ code: Int32, _ what: String) {
        guard code != cmpi_success() else { return }
        var length: Int32 = 0
        var text = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
        MPI_Error_string(code, &text, &length)
        let message = String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        fatalError("\(what) failed: \(message)")
    }
}

/// The MPI datatype (1 + 2C contiguous Doubles) and the user-defined operation that merge
/// per-channel moments. One element of the datatype is one whole packed buffer, so MPI never
/// splits a buffer when it pipelines a reduction.
final class MomentsType: @unchecked Sendable {
    static let shared = MomentsType()

    let op: MPI_Op
    private let types = Mutex<[Int: MPI_Datatype]>([:])

    private init() {
        var op: MPI_Op? = cmpi_op_null()
        MPICommunicator.check(MPI_Op_create(mergeMomentsOperation, 1, &op), "MPI_Op_create")
        self.op = op!
    }

    func datatype(channels: Int) -> MPI_Datatype {
        types.withLock { cache in
            if let t = cache[channels] { return t }
            var t: MPI_Datatype? = nil
            MPICommunicator.check(MPI_Type_contiguous(Int32(1 + 2 * channels), cmpi_double(), &t), "MPI_Type_contiguous")
            MPICommunicator.check(MPI_Type_commit(&t), "MPI_Type_commit")
            cache[channels] = t!
            return t!
        }
    }
}

/// MPI_User_function: inout[i] = merge(in[i], inout[i]) for each packed moments buffer.
/// The merge is made symmetric bit for bit (operands are put in a canonical order first), so
/// every rank ends with identical Doubles whatever order MPI combines them in.
private let mergeMomentsOperation: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?,
                                                    UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<MPI_Datatype?>?) -> Void = {
    input, inout_, length, datatype in
    guard let input, let inout_, let length, let datatype else { return }
    var typeSize: Int32 = 0
    MPI_Type_size(datatype.pointee, &typeSize)
    let doubles = Int(typeSize) / MemoryLayout<Double>.stride
    let channels = (doubles - 1) / 2
    let a = input.assumingMemoryBound(to: Double.self)
    let b = inout_.assumingMemoryBound(to: Double.self)
    var merged = [Double](repeating: 0, count: doubles)
    for element in 0..<Int(length.pointee) {
        let x = a + element * doubles, y = b + element * doubles
        let (first, second) = canonicalOrder(x, y, doubles)
        merged.withUnsafeMutableBufferPointer { m in
            m.baseAddress!.update(from: first, count: doubles)
            mergeMomentsChan(into: m.baseAddress!, second, channels: channels)
            y.update(from: m.baseAddress!, count: doubles)
        }
    }
}

/// The two buffers ordered by their bit patterns, so merge(x, y) and merge(y, x) compute the same thing.
private func canonicalOrder(_ x: UnsafePointer<Double>, _ y: UnsafePointer<Double>, _ n: Int) -> (UnsafePointer<Double>, UnsafePointer<Double>) {
    for i in 0..<n where x[i].bitPattern != y[i].bitPattern {
        return x[i].bitPattern < y[i].bitPattern ? (x, y) : (y, x)
    }
    return (x, y)
}
