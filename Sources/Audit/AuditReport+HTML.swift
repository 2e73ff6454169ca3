import Detectors
import Foundation
import TensorCore

extension AuditReport {
    /// The self-contained report: every picture inlined, readable in a browser 1280 pixels wide.
    func html(images: [ReportImage]) -> String {
        let c = config
        let names = groups.keys.sorted()
        func figure(_ image: ReportImage, minimum: Int = 160) -> String {
            // Small pictures are enlarged by a whole factor so each side reaches `minimum` pixels.
            let scale = max(1, (minimum + image.height - 1) / max(image.height, 1))
            // The caption wraps at the picture's width, so rows hold as many pictures as fit.
            return "<figure style=\"width:\(max(image.width * scale, 220))px\"><img src=\"data:image/png;base64,\(image.data.base64EncodedString())\" alt=\"\(escape(image.file))\" "
                + "width=\"\(image.width * scale)\" height=\"\(image.height * scale)\"><figcaption>\(escape(image.caption))</figcaption></figure>\n"
        }
        func pictures(_ prefix: String, minimum: Int = 160) -> String {
            images.filter { $0.file.hasPrefix(prefix) }.map { figure($0, minimum: minimum) }.joined()
        }
        var body = "<h1>Shortcut audit</h1>\n<p class=\"verdict\">\(escape(summary))</p>\n"
        body += setupSection()
        body += groupSection(names)
        if groups.values.contains(where: { $0.counterfactual != nil }) { body += counterfactualSection(names) }
        if groups.values.contains(where: { $0.faithfulness != nil }) { body += faithfulnessSection(names) }
        body += "<h2>Where each group looks</h2>\n"
        if let comparison {
            let pair = comparison.divergencePair
            body += "<p>\(escape(comparison.summary)) Divergence map: <span class=\"swatch\" style=\"background:#2166ac\"></span> blue where "
                + "<strong>\(escape(pair.first))</strong> looks more, <span class=\"swatch\" style=\"background:#b2182b\"></span> red where "
                + "<strong>\(escape(pair.second))</strong> looks more; pale where the difference is not significant.</p>\n"
        }
        body += "<div class=\"row\">\(pictures("group_"))\(pictures("divergence"))</div>\n<div class=\"row\">\(pictures("comparison"))</div>\n"
        if let spray { body += spraySection(spray, images: images.filter { $0.file.hasPrefix("cluster_") }.map { figure($0, minimum: 96) }) }
        if let sprayNote { body += "<p><em>\(escape(sprayNote))</em></p>\n" }
        body += "<h2>Examples</h2>\n<p>Each picture is the image as the model saw it (after preprocessing) beside the heatmap over it"
            + (c.mask == nil ? "" : ", the region outlined in white; per group the samples with the most and the least attention inside the region")
            + ".</p>\n"
        for name in names {
            let safe = fileSafe(name)
            body += "<h3>\(escape(name))</h3>\n<div class=\"row\">\(pictures("overlays/most_\(safe)_", minimum: 128))\(pictures("overlays/example_\(safe)_", minimum: 128))</div>\n"
            body += "<div class=\"row\">\(pictures("overlays/least_\(safe)_", minimum: 128))</div>\n"
        }
        body += detectionSection(escape)
        body += "<p class=\"note\">Per-sample numbers are in samples.csv, all group numbers in summary.json; the state/ folder lets shards be merged.</p>\n"
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Shortcut audit</title>
            <style>
            body{font-family:system-ui,sans-serif;font-size:15px;line-height:1.45;max-width:1220px;margin:1.5em auto;padding:0 16px;color:#222}
            h1{margin-bottom:.3em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
            .verdict{font-size:1.08em;font-weight:600;background:#f4f6fa;border-left:4px solid #3b5b9a;padding:.7em 1em}
            table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:4px 9px;text-align:right;vertical-align:top}td{white-space:nowrap}
            th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}td.l{text-align:left}
            .flag{color:#a40000;font-weight:600}.note{color:#555;font-size:.92em}
            .row{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}
            figure{margin:4px;max-width:100%}img{image-rendering:pixelated;max-width:100%;height:auto}figcaption{font-size:.85em}
            .swatch{display:inline-block;width:.9em;height:.9em;vertical-align:middle;border:1px solid #888}
            dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}dd{margin:0}
            </style>
            </head><body>
            \(body)</body></html>

            """
    }

    /// What ran on what: model, layer, output reading, the preprocessing actually applied, the region.
    func setupSection() -> String {
        let c = config
        let prep = preprocessingJSON()
        var items: [(String, String)] = [
            ("Images", "\(count) (\(escape(sizesText(prep))))" + (skipped > 0 ? "; \(skipped) row(s) of groups.csv skipped, listed in samples.csv" : "")),
            ("Model", "\(escape(c.model)); output read as \(escape(outputKindText(c.outputKind)))"),
            ("Heatmaps", "\(escape(c.method)) at \(escape(c.layer)) (tensor \(escape(c.tensor))), \(escape(c.maps)) maps, explaining the \(escape(c.target)) class"),
            ("Preprocessing", escape(c.transform?.summary ?? c.preprocessing)
                + (prep["images_as_is"].map { "; \($0) image(s) used as they are, \(prep["images_transformed"] ?? 0) resized and cropped" } ?? "")),
        ]
        if let mask = c.mask {
            items.append(("Region", "\(escape(mask)), \(percent(c.maskArea ?? 0)) of the input"
                + (c.maskSpace.map { "; \(escape($0)) space: \(escape(c.maskReason ?? ""))" } ?? "")))
        }
        if let fill = c.counterfactual.flatMap(CounterfactualFill.init(rawValue:)) {
            items.append(("Counterfactual", "the region filled with \(escape(fill.phrase)), seed \(c.seed ?? 0)"))
        }
        if let f = c.faithfulness {
            items.append(("Faithfulness", "ROAD at percentiles \(f.percentiles.map(String.init).joined(separator: ", ")), noise seed \(f.seed)"))
        }
        return "<h2>Setup</h2>\n<dl>" + items.map { "<dt>\($0.0)</dt><dd>\($0.1)</dd>" }.joined() + "</dl>\n"
    }

    private func outputKindText(_ kind: String?) -> String {
        switch kind.flatMap(OutputKind.init(rawValue:)) {
        case .logits?: "logits (softmaxed into probabilities)"
        case .probabilities?: "probabilities (already a distribution: used as is, never softmaxed again)"
        default: "logits, softmaxed, unless a row already is a distribution (non-negative, summing to 1)"
        }
    }

    private func sizesText(_ prep: [String: Any]) -> String {
        guard let sizes = prep["image_sizes"] as? [String: Int], !sizes.isEmpty else { return "sizes not recorded" }
        return sizes.sorted { $0.key < $1.key }.map { "\($0.value) of \($0.key)" }.joined(separator: ", ")
    }

    /// Per group and per label within each group: accuracy and where attention goes.
    func groupSection(_ names: [String]) -> String {
        let c = config
        func cell(_ value: Double?) -> String { value.map(percent) ?? "-" }
        func interval(_ ci: (Double, Double)?) -> String { ci.map { "\(format(100 * $0.0, digits: 1))-\(format(100 * $0.1, digits: 1))%" } ?? "-" }
        var rows = ""
        for name in names {
            guard let g = groups[name] else { continue }
            let flagged = accuracyGap.map { $0.flagged && $0.worst == name } ?? false
            rows += "<tr><td>\(escape(name))</td><td>\(g.n)</td><td\(flagged ? " class=\"flag\"" : "")>\(cell(g.accuracy)) <span class=\"note\">\(interval(g.accuracyCI95))</span></td>"
                + "<td>\(cell(g.maskAttentionMean)) <span class=\"note\">\(interval(g.maskAttentionCI95))</span></td><td>\(cell(g.shareAboveThreshold))</td>"
                + "<td>\(cell(g.pointingGame))</td><td>\(cell(g.iouMean))</td></tr>\n"
            for (label, l) in g.byLabel.sorted(by: { $0.key < $1.key }) where g.byLabel.count > 1 {
                rows += "<tr><td class=\"l\">&nbsp;&nbsp;label \(label)</td><td>\(l.n)</td><td>\(percent(l.accuracy))</td>"
                    + "<td>\(cell(l.maskAttention?.value)) <span class=\"note\">\(interval(l.maskAttention?.ci95))</span></td><td></td><td></td><td></td></tr>\n"
            }
        }
        var html = "<h2>Groups, and labels within each group</h2>\n"
        html += "<table><tr><th>group / label</th><th>n</th><th>accuracy (95% CI)</th><th>in-region attention (95% CI)</th>"
            + "<th>share above \(format(100 * c.threshold, digits: 0))%</th><th>pointing game</th><th>IoU</th></tr>\n\(rows)</table>\n"
        if let gap = accuracyGap {
            html += gap.flagged
                ? "<p class=\"flag\">Accuracy gap: \(escape(gap.best)) \(cell(groups[gap.best]?.accuracy)) against \(escape(gap.worst)) \(cell(groups[gap.worst]?.accuracy)); their 95% intervals do not overlap.</p>\n"
                : "<p class=\"note\">No accuracy gap beyond sampling noise between the groups (largest: \(format(100 * gap.gap, digits: 1)) points).</p>\n"
        }
        if c.mask != nil {
            html += """
                <p class="note"><strong>How to read it.</strong> In-region attention: the share of each heatmap's mass inside the region, \
                averaged over the samples (the region covers \(percent(c.maskArea ?? 0)) of the input, which is what attention spread evenly \
                would give). Share above \(format(100 * c.threshold, digits: 0))%: the samples with more than that inside. Pointing game: the \
                share of samples whose heatmap peaks inside the region (a hit means the single hottest pixel is in the region). IoU: overlap \
                of the region with the heatmap thresholded at half its maximum. Attention shows where the model looks, not what it uses: the \
                counterfactual test below answers that.</p>

                """
        }
        return html
    }

    /// What filling the region did, per group and per label within it.
    func counterfactualSection(_ names: [String]) -> String {
        let fill = config.counterfactual.flatMap(CounterfactualFill.init(rawValue:))
        func estimate(_ e: Estimate?, asPercent: Bool = true) -> String {
            guard let e else { return "-" }
            let value = asPercent ? percent(e.value) : format(e.value, digits: 3)
            let ci = asPercent
                ? "\(format(100 * e.ci95.0, digits: 1))-\(format(100 * e.ci95.1, digits: 1))%"
                : "\(format(e.ci95.0, digits: 3)) to \(format(e.ci95.1, digits: 3))"
            return "\(value) <span class=\"note\">\(ci)</span>"
        }
        let flagged = Set(AuditReport.counterfactualFlags(groups, names: names))
        func row(_ title: String, _ s: CounterfactualSummary, flag: Bool) -> String {
            "<tr><td class=\"l\">\(title)</td><td>\(s.n)</td><td\(flag ? " class=\"flag\"" : "")>\(estimate(s.flipRate))</td>"
                + "<td>\(estimate(s.confidenceDrop, asPercent: false))</td><td>\(estimate(s.accuracy))</td><td>\(estimate(s.accuracyCounterfactual))</td></tr>\n"
        }
        var rows = ""
        for name in names {
            guard let s = groups[name]?.counterfactual else { continue }
            rows += row(escape(name), s, flag: flagged.contains(name))
            for (label, l) in s.byLabel.sorted(by: { $0.key < $1.key }) where s.byLabel.count > 1 {
                rows += row("&nbsp;&nbsp;label \(label)", l, flag: false)
            }
        }
        return """
            <h2>Counterfactual test: what happens when the region is filled</h2>
            <p>The region was filled with \(escape(fill?.phrase ?? "")) in every preprocessed input, and the model predicted again. \
            Attention shows where the model looks; this shows whether its predictions depend on what is there.</p>
            <table><tr><th>group / label</th><th>n</th><th>predictions changed (95% CI)</th><th>drop in the predicted class's probability (95% CI)</th>\
            <th>accuracy</th><th>accuracy with the region filled</th></tr>
            \(rows)</table>
            <p class="note">A group is marked when the lower end of the interval of changed predictions is at least 5%.</p>

            """
    }

    /// How far the maps can be trusted: pytorch-grad-cam's perturbation metrics per group.
    func faithfulnessSection(_ names: [String]) -> String {
        let percentiles = config.faithfulness?.percentiles ?? []
        func signed(_ x: Double) -> String { format(x, digits: 3) }
        var rows = ""
        for name in names {
            guard let f = groups[name]?.faithfulness else { continue }
            rows += "<tr><td>\(escape(name))</td><td>\(f.n)</td><td>\(signed(f.roadCombined.value)) <span class=\"note\">\(signed(f.roadCombined.ci95.0)) to \(signed(f.roadCombined.ci95.1))</span></td>"
                + "<td>\(f.roadMostRelevantFirst.map(signed).joined(separator: " / "))</td><td>\(f.roadLeastRelevantFirst.map(signed).joined(separator: " / "))</td>"
                + "<td>\(signed(f.camMultConfidenceChange.value))</td><td>\(percent(f.increaseInConfidence))</td></tr>\n"
        }
        let p = percentiles.map(String.init).joined(separator: " / ")
        return """
            <h2>How far to trust the maps (faithfulness)</h2>
            <table><tr><th>group</th><th>n</th><th>ROAD combined (95% CI)</th><th>most relevant removed, at \(p)</th>\
            <th>least relevant removed, at \(p)</th><th>input &times; map: change</th><th>input &times; map: increases</th></tr>
            \(rows)</table>
            <p class="note"><strong>How to read it.</strong> ROAD (pytorch-grad-cam's definitions) imputes the pixels the map ranks highest \
            (most relevant first) or lowest (least relevant first) at each percentile and measures the change in the probability of the \
            explained class. A faithful map makes the first fall sharply and the second barely: ROAD combined, half the difference, is \
            then clearly positive; near 0 the map ranks pixels no better than chance and its attention numbers deserve little weight. \
            Input &times; map keeps only what the map highlights: a change near 0 (or an increase) means the map kept what the model needs.</p>

            """
    }

    /// The attention clusters found without a region.
    func spraySection(_ result: SpRAyResult, images: [String]) -> String {
        var rows = ""
        for cluster in result.clusters {
            rows += "<tr><td>\(cluster.id)</td><td>\(cluster.size)</td><td>\(percent(cluster.fraction))</td>"
                + "<td>\(cluster.groupPurity.map(percent) ?? "-") \(escape(cluster.dominantGroup ?? ""))</td>"
                + "<td>\(cluster.labelPurity.map(percent) ?? "-") \(cluster.dominantLabel.map { "label \($0)" } ?? "")</td>"
                + "<td>\(format(cluster.focusMean, digits: 3))</td><td\(cluster.candidate ? " class=\"flag\"" : "")>\(cluster.candidate ? "candidate shortcut" : "")</td></tr>\n"
        }
        return """
            <h2>Attention patterns without a region (spectral relevance analysis)</h2>
            <p>The heatmaps, pooled to \(digest.grid.rows)x\(digest.grid.columns), are clustered by the cosine similarity of their shapes \
            (SpRAy; the number of clusters from the eigengap). A small cluster made of one group whose maps are more focused than the rest \
            is a candidate shortcut: look at where its mean map points.\(result.referenceFlags.isEmpty ? "" : " The reference's (shortkit-ml) flags: \(escape(result.referenceFlags.joined(separator: ", "))).")</p>
            <table><tr><th>cluster</th><th>images</th><th>share</th><th>group purity</th><th>label purity</th><th>focus</th><th></th></tr>
            \(rows)</table>
            <div class="row">\(images.joined())</div>

            """
    }

    /// The embedding detectors' verdict and one row per method.
    func detectionSection(_ escape: (String) -> String) -> String {
        guard let d = detection else { return detectionNote.map { "<p><em>\(escape($0))</em></p>" } ?? "" }
        func cell(_ value: Double?) -> String { value.map { format($0, digits: 3) } ?? "-" }
        var rows = ""
        if let p = d.probe {
            rows += "<tr><td>probe</td><td>\(p.risk.rawValue)</td><td class=\"l\">linear F1 \(cell(p.value)), quadratic F1 \(cell(p.nonlinear.value)) against \(cell(p.threshold))</td></tr>"
        }
        if let s = d.statistical {
            let counts = s.comparisons.map { "\($0.groups.joined(separator: " vs ")): \($0.significant)" }.joined(separator: "; ")
            rows += "<tr><td>statistical</td><td>\(s.risk.rawValue)</td><td class=\"l\">significant dimensions of \(d.dim) (Mann-Whitney, FDR 5%): \(escape(counts))</td></tr>"
        }
        if let h = d.hbac {
            rows += "<tr><td>hbac</td><td>\(h.risk.rawValue)</td><td class=\"l\">\(h.clusters.count) clusters, \(h.highPurityClusters) over 80% pure; held-out linear accuracy \(cell(h.linearAccuracy))</td></tr>"
        }
        if let g = d.geometric {
            let top = g.pairs.max { $0.effectSize < $1.effectSize }
            rows += "<tr><td>geometric</td><td>\(g.risk.rawValue)</td><td class=\"l\">largest effect size \(cell(top?.effectSize)), mean subspace cosine \(cell(top?.meanCosine))</td></tr>"
        }
        return """
            <h2>Embedding-based detection</h2>
            <p>Pooled outputs of \(escape(config.embedLayer ?? "")) (tensor \(escape(config.embedTensor ?? "")), \(d.dim) dimensions), before any heatmap: <strong>\(escape(d.summary))</strong></p>
            <table><tr><th>method</th><th>risk</th><th>evidence</th></tr>\(rows)</table>
            \(detectionNote.map { "<p class=\"note\">\(escape($0)).</p>" } ?? "")

            """
    }
}

/// Text made safe for HTML.
func escape(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        .replacingOccurrences(of: "\"", with: "&quot;")
}
