import Foundation

extension DetectionReport {
    /// A self-contained HTML page (inline SVG, no scripts or external files): the verdict, the
    /// probes against their threshold, the embeddings' 2-D projection coloured by group, every
    /// comparison's p-values per dimension, the HBAC clusters and the geometric pairs.
    public func html(title: String = "Embedding shortcut detection") -> String {
        var body = "<h1>\(escapeHTML(title))</h1>\n"
        body += "<p class=\"verdict \(overall.risk.rawValue)\"><strong>\(escapeHTML(overall.summary))</strong></p>\n"
        let counts = groups.indices.map { g in sampleGroups.filter { $0 == g }.count }
        body += "<p>\(n) embeddings of \(dim) dimensions; groups: "
            + zip(groups, counts).map { "\(escapeHTML($0)) (\($1))" }.joined(separator: ", ") + ".</p>\n"
        body += projectionSection()
        if let probe { body += probeSection(probe) }
        if let statistical { body += statisticalSection(statistical) }
        if let hbac { body += hbacSection(hbac) }
        if let geometric { body += geometricSection(geometric) }
        for (method, reason) in skipped.sorted(by: { $0.key < $1.key }) {
            body += "<p><em>\(method.rawValue) did not run: \(escapeHTML(reason))</em></p>\n"
        }
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escapeHTML(title))</title>
            <style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}.verdict{padding:0.6em;border-left:6px solid #888}.high{border-color:#c62828}.moderate{border-color:#f9a825}.low{border-color:#2e7d32}svg{background:#fff;border:1px solid #ddd}figcaption{font-size:0.85em;color:#555}</style>
            </head><body>
            \(body)</body></html>

            """
    }

    /// Categorical colours (matplotlib's tab10), by group index.
    static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

    private func color(_ group: Int) -> String { Self.palette[group % Self.palette.count] }

    private func projectionSection() -> String {
        guard projection.count == n * 2, n > 0 else { return "" }
        let (width, height, margin) = (640.0, 420.0, 24.0)
        let xs = stride(from: 0, to: projection.count, by: 2).map { projection[$0] }
        let ys = stride(from: 1, to: projection.count, by: 2).map { projection[$0] }
        let (x0, x1) = (xs.min() ?? 0, xs.max() ?? 1)
        let (y0, y1) = (ys.min() ?? 0, ys.max() ?? 1)
        let sx = (width - 2 * margin) / max(x1 - x0, 1e-12)
        let sy = (height - 2 * margin) / max(y1 - y0, 1e-12)
        // At most 4000 points keep the page light; every k-th row, so all groups stay in proportion.
        let step = max(1, (n + 3999) / 4000)
        var svg = "<svg width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">"
        for i in stride(from: 0, to: n, by: step) {
            let cx = margin + (xs[i] - x0) * sx
            let cy = height - margin - (ys[i] - y0) * sy
            svg += "<circle cx=\"\(fixed(cx, digits: 1))\" cy=\"\(fixed(cy, digits: 1))\" r=\"2.5\" fill=\"\(color(sampleGroups[i]))\" fill-opacity=\"0.6\"/>"
        }
        for (g, name) in groups.enumerated() {
            let y = 16 + 16 * Double(g)
            svg += "<rect x=\"\(Int(width) - 150)\" y=\"\(Int(y) - 9)\" width=\"10\" height=\"10\" fill=\"\(color(g))\"/>"
            svg += "<text x=\"\(Int(width) - 135)\" y=\"\(Int(y))\" font-size=\"12\">\(escapeHTML(name))</text>"
        }
        svg += "</svg>"
        let shown = step > 1 ? " (one row in \(step) of \(n))" : ""
        return "<h2>Embeddings in two dimensions</h2>\n<figure>\(svg)<figcaption>The first two principal components of the embeddings\(shown), coloured by group. Groups that separate here are easy to tell apart; overlap here does not rule out separation in other directions.</figcaption></figure>\n"
    }

    private func probeSection(_ p: ProbeResult) -> String {
        func row(_ name: String, _ value: Double, _ detected: Bool) -> String {
            let bar = "<svg width=\"220\" height=\"14\"><rect width=\"\(Int(200 * max(min(value, 1), 0)))\" height=\"14\" fill=\"\(detected ? "#c62828" : "#90a4ae")\"/><line x1=\"\(Int(200 * p.threshold))\" x2=\"\(Int(200 * p.threshold))\" y1=\"0\" y2=\"14\" stroke=\"#000\" stroke-width=\"2\"/></svg>"
            return "<tr><td>\(name)</td><td>\(fixed(value, digits: 3))</td><td>\(bar)</td><td>\(detected ? "yes" : "no")</td></tr>"
        }
        return """
            <h2>Probes (can a classifier read the group?)</h2>
            <table><tr><th>probe</th><th>holdout F1</th><th>against the threshold \(fixed(p.threshold))</th><th>above</th></tr>
            \(row("linear (logistic regression)", p.value, p.linearDetected))
            \(row("quadratic (features and their squares)", p.nonlinear.value, p.nonlinear.detected))
            </table>
            <p>Linear probe on \(p.testCount) held-out rows (trained on \(p.trainCount)): accuracy \(fixed(p.accuracy, digits: 3)), ROC AUC \(fixed(p.rocAUC, digits: 3)); quadratic probe accuracy \(fixed(p.nonlinear.accuracy, digits: 3)). Risk: \(p.risk.rawValue).</p>

            """
    }

    private func statisticalSection(_ s: StatisticalResult) -> String {
        var html = "<h2>Dimensions that differ between groups</h2>\n<p>Mann-Whitney U per dimension, Benjamini-Hochberg at \(fixed(100 * s.alpha, digits: 0))%. Risk: \(s.risk.rawValue).</p>\n"
        html += "<table><tr><th>comparison</th><th>significant</th><th>before correction</th><th>dimensions (rank-biserial effect)</th></tr>\n"
        for c in s.comparisons {
            let listed = c.features.prefix(20).map { "\($0) (\(fixed(c.effectSizes[$0])))" }.joined(separator: ", ")
                + (c.features.count > 20 ? ", ..." : "")
            html += "<tr><td>\(escapeHTML(c.groups.joined(separator: " vs ")))</td><td>\(c.significant)</td><td>\(c.significantUncorrected)</td><td>\(listed.isEmpty ? "-" : listed)</td></tr>\n"
        }
        html += "</table>\n"
        for c in s.comparisons { html += pValueChart(c, alpha: s.alpha) }
        return html
    }

    /// −log₁₀ p per dimension as bars, significant ones red, with the uncorrected α line.
    private func pValueChart(_ c: StatisticalResult.Comparison, alpha: Double) -> String {
        let (width, height, margin) = (900.0, 160.0, 20.0)
        let heights = c.pValues.map { -log10(max($0, 1e-300)) }
        let top = max(heights.max() ?? 1, -log10(alpha) * 1.5)
        let barWidth = (width - 2 * margin) / Double(max(c.pValues.count, 1))
        let significant = Set(c.features)
        var svg = "<svg width=\"\(Int(width))\" height=\"\(Int(height))\">"
        for (j, h) in heights.enumerated() {
            let barHeight = (height - 2 * margin) * h / top
            svg += "<rect x=\"\(fixed(margin + Double(j) * barWidth, digits: 1))\" y=\"\(fixed(height - margin - barHeight, digits: 1))\" width=\"\(fixed(max(barWidth - 0.5, 0.5), digits: 2))\" height=\"\(fixed(barHeight, digits: 1))\" fill=\"\(significant.contains(j) ? "#c62828" : "#90a4ae")\"/>"
        }
        let line = height - margin - (height - 2 * margin) * -log10(alpha) / top
        svg += "<line x1=\"\(Int(margin))\" x2=\"\(Int(width - margin))\" y1=\"\(fixed(line, digits: 1))\" y2=\"\(fixed(line, digits: 1))\" stroke=\"#000\" stroke-dasharray=\"4 3\"/>"
        svg += "<text x=\"\(Int(margin))\" y=\"14\" font-size=\"12\">-log10 p, \(escapeHTML(c.groups.joined(separator: " vs "))); dashed: p = \(alpha)</text></svg>"
        return "<figure>\(svg)<figcaption>One bar per dimension (0 to \(c.pValues.count - 1)); red bars stay significant after the correction.</figcaption></figure>\n"
    }

    private func hbacSection(_ h: HBACResult) -> String {
        var html = "<h2>Hierarchical bias-aware clustering</h2>\n<p>Detected: \(h.detected ? "yes" : "no") (risk \(h.risk.rawValue)); signals: \(h.types.isEmpty ? "none" : h.types.joined(separator: ", ")). Held-out linear accuracy \(fixed(h.linearAccuracy, digits: 3)); \(fixed(100 * h.importantDimensionsRatio, digits: 1))% of dimensions differ between clusters.</p>\n"
        html += "<table><tr><th>cluster</th><th>size</th><th>purity</th><th>dominant</th><th>splits</th></tr>\n"
        for (i, c) in h.clusters.enumerated() {
            html += "<tr><td>\(i)</td><td>\(c.size)</td><td>\(fixed(c.purity, digits: 3))</td><td>\(escapeHTML(c.dominant))</td><td>\(c.depth)</td></tr>\n"
        }
        return html + "</table>\n"
    }

    private func geometricSection(_ g: GeometricResult) -> String {
        var html = "<h2>Geometry of the groups</h2>\n<p>Risk \(g.risk.rawValue): an effect size of at least \(fixed(g.effectThreshold)) or a mean subspace cosine of at least \(fixed(g.subspaceCosineThreshold)) counts.\(g.skippedGroups.isEmpty ? "" : " Too small to analyse: " + g.skippedGroups.map(escapeHTML).joined(separator: ", ") + ".")</p>\n"
        html += "<table><tr><th>groups</th><th>effect size</th><th>alignment</th><th>mean cosine</th><th>smallest angle</th></tr>\n"
        for p in g.pairs {
            html += "<tr><td>\(escapeHTML(p.groups.joined(separator: " vs ")))</td><td>\(fixed(p.effectSize))</td><td>\(fixed(p.alignment))</td><td>\(fixed(p.meanCosine))</td><td>\(fixed(p.minAngleDegrees, digits: 1))°</td></tr>\n"
        }
        return html + "</table>\n"
    }
}

/// Text safe inside HTML elements and attribute values.
func escapeHTML(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
}
