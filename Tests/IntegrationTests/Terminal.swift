import Foundation

/// A pseudo-terminal for a program that must run as if in a terminal window: `hangUp()`
/// closes the window's side, and the kernel sends SIGHUP to the session the terminal controls.
final class Terminal {
    private var master: Int32
    /// The program's side (its standard input; `setsid --ctty` makes it the controlling terminal).
    let slave: FileHandle

    init() throws {
        // close-on-exec from the start: a copy of the master in any child would keep the terminal open
        master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard master >= 0, let unlock = Self.libc("unlockpt", as: (@convention(c) (Int32) -> Int32).self),
              let name = Self.libc("ptsname", as: (@convention(c) (Int32) -> UnsafeMutablePointer<CChar>?).self),
              unlock(master) == 0, let path = name(master) else {
            throw RunnerError("cannot open a pseudo-terminal: \(String(cString: strerror(errno)))")
        }
        let fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { throw RunnerError("cannot open \(String(cString: path)): \(String(cString: strerror(errno)))") }
        slave = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// A C library function that Swift's Glibc module hides (it needs _XOPEN_SOURCE).
    private static func libc<F>(_ symbol: String, as type: F.Type) -> F? {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), symbol).map { unsafeBitCast($0, to: type) }
    }

    /// Closes the window's side: the terminal hangs up.
    func hangUp() {
        if master >= 0 { close(master) }
        master = -1
    }

    deinit { hangUp() }
}
