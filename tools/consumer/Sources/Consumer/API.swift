import Foundation
import ShortcutDetect

// Uses of the documented API (README's Library section, the DocC articles) from outside the package.
// Nothing here runs; it has to compile against the public surface alone.

/// Forward, backward and the tensor essentials.
func forwardAndBackward(model url: URL, input: URL) throws -> [Int] {
    let model = try Model(contentsOf: url)
    let executor = try Executor(model: model)
    let x = try Tensor(npyAt: input)
    let outputs = try executor.run([executor.inputs[0].name: x])
    guard let logits = outputs[executor.outputs[0].name] else { return [] }
    let seeded = try executor.gradients(
        [executor.inputs[0].name: x], seed: { try Tensor(zeros: $0.dtype, shape: $0.shape) }, wrt: [executor.inputs[0].name])
    let targeted = try executor.gradients([executor.inputs[0].name: x], of: .probability(classes: nil), wrt: [executor.inputs[0].name], guided: true)
    _ = (seeded.gradients, targeted.output, Kernels.current.level, MemoryBudget.limit)
    let half = try logits.converted(to: .float16).reshaped([logits.count])
    return try half.converted(to: .float32).scalars(as: Float.self).indices.map { $0 }
}

/// Heatmaps, synchronously and from async code with cancellation and progress.
func heatmaps(model url: URL, images: Tensor) async throws -> [Tensor] {
    let model = try Model(contentsOf: url)
    let inspection = ModelInspection(model: model)
    let layer = inspection.suggested?.name ?? "layer4"
    let options = CAMOptions(eigenSmooth: false, augSmooth: false, normalization: .minMax, upsampling: .bilinear)
    let gradcam = try GradCAMHeatmapGenerator(model: model, targetLayer: layer, method: .scoreCAM, options: options)
    let result: CAMResult = try gradcam.explain(images)
    _ = (result.classes, result.rawMaps, try gradcam.predictedClasses(images), CAMMethod.allCases)
    return try await gradcam.generateBatch(images, batchSize: 4) { (progress: BatchProgress) in _ = progress.fraction }
}

/// Pictures of a heatmap.
func pictures(image url: URL, heatmap: Tensor) throws -> RGBImage {
    let image = try RGBImage(contentsOf: url)
    let overlay = try Overlay.overlay(image: image, heatmap: heatmap, alpha: 0.4, colormap: .viridis)
    return try Panel.figure([(title: "image", image: image), (title: "overlay", image: overlay)])
}

/// Group comparison, the audit's pieces, and the detectors.
func groupsAndDetectors(maps: Tensor, groups: [String], embeddings: Tensor) throws -> String {
    let comparison = try AttentionOverlapResult.compare(maps, groups: groups)
    let report = try ShortcutDetector(seed: 7).fit(embeddings: embeddings, groups: groups)
    let errors: [any Error] = [
        ExplainError.invalidInput("x"), AuditError.invalid("x"), ImageError.invalid("x"), FileError(path: "x", reason: "y"),
    ]
    return comparison.summary + report.summary + "\(errors.count)"
}
