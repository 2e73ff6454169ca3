import Foundation
import ShortcutDetect

func readmeSnippet0() async throws {
    let model = try Model(contentsOf: URL(fileURLWithPath: "resnet18.onnx"))
    let executor = try Executor(model: model)              // validates the graph, builds every op, folds constants
    let x = try Tensor(npyAt: URL(fileURLWithPath: "batch.npy"))
    let out = try executor.run(["input": x], fetch: ["logits", "/layer4/layer4.1/relu_1/Relu_output_0"])
    print(out["logits"]?.shape ?? [], Kernels.current.level)  // avx512, avx2 or portable, chosen once per process
}

func readmeSnippet1() async throws {
    let model = try Model(contentsOf: URL(fileURLWithPath: "resnet18.onnx"))
    let batch = try Tensor(npyAt: URL(fileURLWithPath: "batch.npy"))   // [N, 3, 224, 224], preprocessed
    let gradcam = try GradCAMHeatmapGenerator(model: model, targetLayer: "layer4", method: .gradCAMPlusPlus)
    let maps = try gradcam.generateBatch(batch, targetClasses: nil)     // one [H, W] map per image, each its prediction
    let full = try gradcam.explain(batch)                               // heatmaps, raw layer maps, classes, logits
    let grads = try gradcam.executor.gradients(["input": batch], of: .logit(classes: full.classes), wrt: ["input"])
    print(maps.count, full.heatmaps.shape, grads.gradients["input"]?.shape ?? [])
}

func readmeSnippet2() async throws {
    let gradcam = try GradCAMHeatmapGenerator(model: Model(contentsOf: URL(fileURLWithPath: "resnet18.onnx")), targetLayer: "layer4")
    let images = try Tensor(npyAt: URL(fileURLWithPath: "many.npy"))
    let task = Task {
        try await gradcam.generateBatch(images, batchSize: 16) { progress in print("\(progress.completed)/\(progress.total)") }
    }
    let maps = try await task.value                                     // task.cancel() stops it after the batch in hand
    print(maps.count)
}

func readmeSnippet3() async throws {
    let gradcam = try GradCAMHeatmapGenerator(model: Model(contentsOf: URL(fileURLWithPath: "resnet18.onnx")), targetLayer: "layer4")
    let image = try RGBImage(contentsOf: URL(fileURLWithPath: "scan.jpg"))
    let prep = Preprocessing.evaluation(height: 224, width: 224, normalization: .imagenet)
    let heatmap = try gradcam.generate(try prep.tensor(image))          // [224, 224], the predicted class
    try gradcam.visualize(try prep.resizedAndCropped(image), heatmap: heatmap, savePath: "attention.png")
    let figure = try Panel.comparison(image: try prep.resizedAndCropped(image), heatmap: heatmap)
    print(figure.width, figure.height)
}

func readmeSnippet4() async throws {
    let model = try Model(contentsOf: URL(fileURLWithPath: "resnet18.onnx"))
    let executor = try Executor(model: model)
    let batch = try Tensor(npyAt: URL(fileURLWithPath: "batch.npy"))   // [N, 3, 224, 224]
    let full = try GradCAMHeatmapGenerator(model: model, targetLayer: "layer4").explain(batch)
    let probabilities = try executor.classProbabilities(batch, output: "logits")  // never softmaxes a distribution twice
    let metrics = Faithfulness(executor: executor, output: "logits", options: FaithfulnessOptions(curves: true))
    let scores = try metrics.evaluate(batch, heatmaps: full.heatmaps, classes: full.classes, indices: Array(full.classes.indices))
    print(probabilities[0], scores[0].roadCombined, scores[0].deletionAUC ?? 0)  // pytorch-grad-cam's ROAD, RISE's AUC
    let mask = try RegionMask(rectangles: [(x: 0, y: 0, width: 32, height: 32)], height: 224, width: 224)
    let filled = try CounterfactualFill.mean.apply(batch: batch, region: mask, seeds: full.classes.map { _ in 0 })
    print(try executor.classProbabilities(filled, output: "logits")[0])           // predicted again without the region
    let pooled = try full.heatmaps.scalars(as: Float.self)              // SpRAy clusters the maps themselves
    let clusters = try SpRAy.fit(maps: pooled, count: full.classes.count, height: 224, width: 224, groups: nil, labels: nil)
    print(clusters.clusters.count)
}

func readmeSnippet5() async throws {
    let model = try Model(contentsOf: URL(fileURLWithPath: "resnet18.onnx"))
    let gradcam = try GradCAMHeatmapGenerator(model: model, targetLayer: "layer4")
    let samples = try AuditSample.read(csv: URL(fileURLWithPath: "groups.csv"))  // file,group[,label]
    let prep = Preprocessing.evaluation(height: 224, width: 224)
    let mask = try RegionMask(rectangles: [(x: 0, y: 0, width: 32, height: 32)], height: 224, width: 224)
    let config = AuditConfig(
        model: "resnet18.onnx", layer: "layer4", tensor: gradcam.layers[0].tensor, method: "gradcam", maps: "normalized",
        target: "predicted", preprocessing: prep.summary, mask: "corner", maskArea: mask.area, threshold: 0.5,
        iouFraction: 0.2, height: 224, width: 224, total: samples.count, batchSize: 16)
    let auditor = Auditor(generator: gradcam, preprocessing: prep, mask: mask, target: .predicted, config: config)
    let state = try await auditor.run(Auditor.batches(samples, batchSize: 16), folder: URL(fileURLWithPath: "images")) {
        print("\($0.completed)/\($0.total)")
    }
    let report = try AuditReport(state: state)
    try report.write(to: URL(fileURLWithPath: "report"))
    print(report.summary)
}

func readmeSnippet6() async throws {
    let embeddings = try Tensor(npyAt: URL(fileURLWithPath: "embeddings.npy"))       // [N, D], e.g. `shortcut-detect embed`
    let groupOfEachRow = try String(contentsOfFile: "groups.txt", encoding: .utf8).split(separator: "\n").map(String.init)
    let detector = ShortcutDetector(methods: [.hbac, .probe, .statistical], seed: 42)   // all four by default
    let report = try detector.fit(embeddings: embeddings, groups: groupOfEachRow)        // [N, D] tensor, N names
    if let probe = report.probe, probe.accuracy > 0.7 { print(report.summary) }          // then turn to GradCAM
    try report.json().write(to: URL(fileURLWithPath: "detect.json"))                    // and report.html()
    let diseaseMaps = try Tensor(npyAt: URL(fileURLWithPath: "disease.npy"))            // [N, H, W] maps of two heads
    let attributeMaps = try Tensor(npyAt: URL(fileURLWithPath: "attribute.npy"))
    let overlap = try HeadOverlap.compare(diseaseMaps, attributeMaps, threshold: 0.5)   // Dice, IoU, cosine
    print(overlap)
}
