import Detectors
import Foundation
import Imaging

extension AuditReport {
    /// The region's outline at input resolution, when a region was given.
    var outline: [Bool]? {
        guard let packed = config.maskPixels else { return nil }
        return try? RegionMask(packed: packed, height: config.height, width: config.width).outline
    }

    /// Group means on one scale, the divergence map, the three-panel comparison (the region
    /// outlined on each), and per attention cluster its mean map and typical members.
    func figures() throws -> [(file: String, caption: String, image: RGBImage)] {
        let (h, w) = (config.height, config.width)
        let means = digest.means
        let names = means.keys.sorted()
        let top = max(means.values.flatMap { $0 }.max() ?? 0, 1e-12)
        let outline = self.outline
        func meanImage(_ name: String) throws -> RGBImage {
            let image = try RGBImage(width: w, height: h, pixels: Colormap.jet.apply((means[name] ?? []).map { $0 / top }))
            return try outline.map { try image.outlined($0) } ?? image
        }
        let regionNote = outline == nil ? "" : "; the white line outlines the region"
        var result: [(file: String, caption: String, image: RGBImage)] = []
        for name in names {
            let figure = try Panel.figure(
                [("\(name) mean", try meanImage(name))],
                colorbars: [Panel.Colorbar(after: 0, colormap: .jet, low: "0", high: format(Double(top), digits: 3))])
            result.append(("group_\(fileSafe(name))_mean.png", "Mean attention of \(name) (common scale\(regionNote))", figure))
        }
        if let comparison {
            let pair = comparison.divergencePair
            let bound = max(comparison.divergenceRegions.map { abs($0) }.max() ?? 0, 1e-12)
            // Blue where the first group attends more, red where the second does; faded where not significant.
            var divergence = Colormap.redBlue.apply(comparison.divergenceRegions.map { ($0 / bound + 1) / 2 })
            for (p, significant) in comparison.significant.enumerated() where !significant {
                for c in 0..<3 { divergence[p * 3 + c] = UInt8((Int(divergence[p * 3 + c]) + 3 * 255) / 4) }
            }
            var divergenceImage = try RGBImage(width: w, height: h, pixels: divergence)
            if let outline { divergenceImage = try divergenceImage.outlined(outline, color: (0, 0, 0)) }
            let bar = Panel.Colorbar(
                after: 0, colormap: .redBlue, low: "-" + format(Double(bound), digits: 3), high: "+" + format(Double(bound), digits: 3))
            result.append(
                ("divergence.png",
                 "\(pair.first) minus \(pair.second): blue where \(pair.first) looks more, red where \(pair.second) looks more; "
                    + "faded where not significant (permutation test, FDR 5%)" + (outline == nil ? "" : "; the black line outlines the region"),
                 try Panel.figure([("\(pair.first) - \(pair.second)", divergenceImage)], colorbars: [bar])))
            var movedBar = bar
            movedBar.after = 2
            let figure = try Panel.figure(
                [("\(pair.first) mean", try meanImage(pair.first)), ("\(pair.second) mean", try meanImage(pair.second)),
                 ("Divergence", divergenceImage)],
                colorbars: [Panel.Colorbar(after: 1, colormap: .jet, low: "0", high: format(Double(top), digits: 3)), movedBar])
            result.append(("comparison.png", "Group attention and divergence (blue: \(pair.first) looks more; red: \(pair.second))", figure))
        }
        if let spray { result += try clusterFigures(spray) }
        return result
    }

    /// Per cluster: its mean map and the four members closest to it, at the pooled grid's resolution.
    func clusterFigures(_ result: SpRAyResult) throws -> [(file: String, caption: String, image: RGBImage)] {
        let grid = digest.grid
        let cells = grid.cells
        let sample = digest.subsample
        func scaled(_ n: Int) -> [Float] {
            let map = sample.pooled[n * cells..<(n + 1) * cells]
            let low = map.min() ?? 0
            let range = max((map.max() ?? 0) - low, 1e-12)
            return map.map { ($0 - low) / range }
        }
        return try result.clusters.map { cluster in
            let typical = cluster.members.map { m -> (Float, Int) in
                (zip(scaled(m), cluster.meanMap).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }, m)
            }.sorted { $0 < $1 }.prefix(4).map(\.1)
            let top = max(cluster.meanMap.max() ?? 0, 1e-12)
            var panels = [("mean", try RGBImage(width: grid.columns, height: grid.rows, pixels: Colormap.jet.apply(cluster.meanMap.map { $0 / top })))]
            for m in typical {
                panels.append(("#\(sample.positions[m])", try RGBImage(width: grid.columns, height: grid.rows, pixels: Colormap.jet.apply(scaled(m)))))
            }
            let files = typical.map { "#\(sample.positions[$0]) \(sample.files[$0])" }.joined(separator: ", ")
            return ("cluster_\(cluster.id).png",
                    "Cluster \(cluster.id): mean map of \(cluster.size) images and its most typical members (\(files))",
                    try Panel.figure(panels))
        }
    }

    /// The kept samples, the image as the model saw it beside its overlay, named by group, end and rank.
    func overlayFiles() -> [ReportImage] {
        var files: [ReportImage] = []
        let (h, w) = (config.height, config.width)
        for (name, end, ranked) in digest.shownByGroup {
            for (rank, record) in ranked.enumerated() {
                guard let data = digest.overlays[record.index] else { continue }
                let label = record.label.map { "label \($0), " } ?? ""
                let share = record.scores.map { ", \(percent($0.inMask)) in region" } ?? ""
                let title = end == "example" ? "\(name), example #\(rank + 1)" : "\(name), \(end) region-reliant #\(rank + 1)"
                files.append(
                    ReportImage(
                        file: "overlays/\(end)_\(fileSafe(name))_\(rank + 1).png",
                        caption: "\(title): \(record.file); \(label)predicted \(record.predicted) (\(percent(record.confidence)))\(share)",
                        data: data, width: 2 * w + 2, height: h))
            }
        }
        return files
    }
}

/// A group name as a file name component.
func fileSafe(_ name: String) -> String {
    String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
}
