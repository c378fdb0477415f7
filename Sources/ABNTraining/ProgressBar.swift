import ABNComm
import ABNTensor
import Foundation

/// How progress is shown: `bar`, one line redrawn in place; `lines`, lines that suit a log
/// file; `auto`, a bar when standard output is a terminal. Under mpirun a rank's output is
/// not the user's terminal (mpirun relays it), so `auto` prints lines there; launch/train.sh
/// gives the ranks ABN_PROGRESS=bar when its own output is a terminal.
public enum ProgressStyle: String, CaseIterable, Sendable {
    case auto, bar, lines

    /// The style ABN_PROGRESS names; auto when it is unset or empty.
    public static func fromEnvironment() throws -> ProgressStyle {
        guard let text = ProcessInfo.processInfo.environment["ABN_PROGRESS"], !text.isEmpty else { return .auto }
        guard let style = ProgressStyle(rawValue: text) else {
            throw TrainingError("ABN_PROGRESS is '\(text)'; set it to auto, bar or lines, or unset it.")
        }
        return style
    }

    /// Whether this process draws a bar in this style.
    public var drawsBar: Bool {
        switch self {
        case .bar: true
        case .lines: false
        case .auto: isatty(STDOUT_FILENO) == 1 && !MPICommunicator.launchedByMPI
        }
    }
}

/// Progress of a task of `total` units on standard output, with the elapsed time and an ETA.
/// Bar style: one line redrawn in place (at most 10 times a second) that fits the terminal's
/// width, with the lines of `line` printed above it. Lines style: only the lines of `line`.
public final class ProgressBar {
    public let total: Int
    public let drawsBar: Bool
    private var pace: Pace
    private var done: Int
    /// The terminal's width in characters.
    private let columns = ProgressBar.terminalColumns()
    /// The newest bar, and whether it is on the screen (false: throttled, or under a line).
    private var bar: (text: String, shown: Bool)?
    /// When the bar was last drawn (monotonic seconds).
    private var drawnAt = -Double.infinity
    /// The tenth of the total that `count` last printed a line at (lines style).
    private var printedTenth = -1

    /// A task of `total` units of which `done` are complete (a resumed run starts past 0).
    public init(total: Int, style: ProgressStyle, startingAt done: Int = 0) {
        self.total = total
        drawsBar = style.drawsBar
        self.done = done
        pace = Pace(done: done, at: monotonicSeconds())
    }

    /// Notes that `done` units are complete.
    public func advance(to done: Int) {
        self.done = done
        pace.record(done: done, at: monotonicSeconds())
    }

    /// "elapsed 1:02": since the bar was made.
    public var elapsedText: String { "elapsed " + Pace.clock(pace.elapsed(at: monotonicSeconds())) }

    /// "ETA 16:30": the time left to the total at the pace so far ("ETA --" until it is known).
    public var etaText: String { "ETA " + Pace.clock(secondsLeft(units: total - done)) }

    /// Seconds that `units` more units take at the pace so far (nil until it is known).
    public func secondsLeft(units: Int) -> Double? { pace.secondsLeft(units: units) }

    /// Bar style: redraws `head [#####.....] tail` in place, with as many of the tail's pieces,
    /// from the first, as leave the bar 8 cells in the terminal's width. Nothing in lines style.
    public func redraw(head: String, tail: [String]) {
        guard drawsBar else { return }
        let room = columns - 1 - head.count - 4  // short of the last column, so that no terminal wraps it
        var kept: [String] = []
        var used = 0
        for piece in tail {
            let needed = used + (kept.isEmpty ? 0 : 2) + piece.count
            guard room - needed >= 8 else { break }
            kept.append(piece)
            used = needed
        }
        let cells = max(0, min(30, room - used)), filled = cells * min(done, total) / max(1, total)
        let text = head + " [" + String(repeating: "#", count: filled) + String(repeating: ".", count: cells - filled) + "] "
            + kept.joined(separator: "  ")
        bar = (String(text.prefix(columns - 1)), false)
        if monotonicSeconds() - drawnAt >= 0.1 { drawBar() }
    }

    /// Prints `text` on a line of its own: in bar style above the bar, which is drawn again below it.
    public func line(_ text: String) {
        if drawsBar {
            write("\r\u{1B}[2K" + text + "\n")
            if bar != nil { drawBar() }
        } else {
            write(text + "\n")
        }
    }

    /// `done` things made, as "`label` done/total": a bar, or in lines style a line at each tenth.
    public func count(_ done: Int, label: String) {
        advance(to: done)
        redraw(head: "\(label) \(done)/\(total)", tail: [elapsedText, etaText])
        let tenth = 10 * done / max(1, total)
        if !drawsBar && tenth != printedTenth {
            line("\(label) \(done)/\(total) (\(100 * done / max(1, total))%)  \(elapsedText)  \(etaText)")
            printedTenth = tenth
        }
    }

    /// Draws the newest bar if it is not on the screen, and ends its line.
    public func finish() {
        guard drawsBar, let bar else { return }
        if !bar.shown { drawBar() }
        write("\n")
        self.bar = nil
    }

    private func drawBar() {
        guard let text = bar?.text else { return }
        write("\r\u{1B}[2K" + text)
        bar?.shown = true
        drawnAt = monotonicSeconds()
    }

    private func write(_ text: String) {
        print(text, terminator: "")
        fflush(nil)
    }

    /// The width of the terminal that standard output is, when this process writes to it
    /// itself; else COLUMNS (launch/train.sh passes the ranks its terminal's); else 80.
    private static func terminalColumns() -> Int {
        var size = winsize()
        if !MPICommunicator.launchedByMPI && ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 {
            return Int(size.ws_col)
        }
        return ProcessInfo.processInfo.environment["COLUMNS"].flatMap { Int($0) }.map { max(20, $0) } ?? 80
    }
}
