import ABNTraining
import Foundation

/// A line chart as a standalone SVG document: one polyline with markers per series, linear
/// axes from zero, ticks, axis titles and a legend.
struct SVGChart {
    struct Series {
        let name: String
        let points: [(x: Double, y: Double)]
        let dashed: Bool
        /// Series with the same color index share a color (e.g. two measures of one mode).
        let colorIndex: Int
    }

    let title: String
    let xLabel: String
    let yLabel: String
    var series: [Series] = []

    private static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]

    func render(width: Double = 720, height: Double = 440) -> String {
        let left = 80.0, right = 190.0, top = 50.0, bottom = 60.0
        let plotW = width - left - right, plotH = height - top - bottom
        let all = series.flatMap(\.points)
        let xMax = niceCeiling(all.map(\.x).max() ?? 1), yMax = niceCeiling(all.map(\.y).max() ?? 1)
        func px(_ x: Double) -> Double { left + plotW * x / xMax }
        func py(_ y: Double) -> Double { top + plotH * (1 - y / yMax) }
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(left)" y="28" font-size="15" font-weight="bold">\(escape(title))</text>

        """
        for i in 0...5 {
            let y = yMax * Double(i) / 5, x = xMax * Double(i) / 5
            svg += "<line x1=\"\(left)\" y1=\(q(py(y))) x2=\(q(left + plotW)) y2=\(q(py(y))) stroke=\"#e5e5e5\"/>\n"
            svg += "<text x=\(q(left - 8)) y=\(q(py(y) + 4)) text-anchor=\"end\">\(tick(y))</text>\n"
            svg += "<text x=\(q(px(x))) y=\(q(top + plotH + 18)) text-anchor=\"middle\">\(tick(x))</text>\n"
        }
        svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\(q(plotW)) height=\(q(plotH)) fill=\"none\" stroke=\"#333\"/>\n"
        svg += "<text x=\(q(left + plotW / 2)) y=\(q(height - 18)) text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        svg += "<text transform=\"translate(20 \(top + plotH / 2)) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        for (i, s) in series.enumerated() {
            let color = Self.colors[s.colorIndex % Self.colors.count]
            let path = s.points.map { "\(q(px($0.x), quoted: false)),\(q(py($0.y), quoted: false))" }.joined(separator: " ")
            svg += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(s.dashed ? " stroke-dasharray=\"6 4\"" : "")/>\n"
            for p in s.points { svg += "<circle cx=\(q(px(p.x))) cy=\(q(py(p.y))) r=\"3\" fill=\"\(color)\"/>\n" }
            let ly = top + 14 + Double(i) * 20
            svg += "<line x1=\(q(left + plotW + 14)) y1=\(q(ly)) x2=\(q(left + plotW + 40)) y2=\(q(ly)) stroke=\"\(color)\" stroke-width=\"2\"\(s.dashed ? " stroke-dasharray=\"6 4\"" : "")/>\n"
            svg += "<text x=\(q(left + plotW + 46)) y=\(q(ly + 4))>\(escape(s.name))</text>\n"
        }
        return svg + "</svg>\n"
    }

    func write(to path: String) throws {
        do {
            try render().write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw TrainingError("cannot write the chart to \(path): \(error.localizedDescription)")
        }
    }

    private func q(_ v: Double, quoted: Bool = true) -> String {
        let s = String(format: "%.1f", v)
        return quoted ? "\"\(s)\"" : s
    }

    private func tick(_ v: Double) -> String {
        v == v.rounded() ? String(Int(v)) : String(format: "%.2g", v)
    }

    private func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// The smallest of 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten that is >= v.
    private func niceCeiling(_ v: Double) -> Double {
        guard v > 0 else { return 1 }
        let p = pow(10, floor(log10(v)))
        for m in [1.0, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10] where m * p >= v { return m * p }
        return 10 * p
    }
}
