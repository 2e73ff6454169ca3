import ONNXModel
import TensorCore

// Constant folding: nodes whose inputs are all known before any input is fed (initializers,
// `Constant` nodes, outputs of nodes already folded) are evaluated once, when the executor is
// built, and their outputs become constants. This removes the exporters' shape arithmetic
// (`Shape → Gather → Concat → Reshape` where shapes are static) and weight transposes and casts
// from every run, and lets ops treat weights held in `Constant` nodes like initializers (packed once).

extension Executor {
    /// The largest output, in bytes, that constant folding keeps unless its node's largest input
    /// is larger still (a weight transpose keeps its weight's size).
    public static let constantFoldingLimit = ConstantFolder.maximumBytes
}

/// Decides, node by node in execution order, which nodes run at load and holds what they produced.
struct ConstantFolder {
    /// Values known before any feed, by slot: initializers first, then folded outputs.
    private(set) var constants: [Int: Tensor]
    /// Shapes and types known before any feed for graph inputs whose every axis is fixed.
    let fixedInputs: [Int: (dtype: DType, shape: [Int])]
    /// Whether nodes other than `Constant` are folded (`Constant` nodes always are).
    let enabled: Bool

    /// A folded output may be this large, or as large as the largest input of its node (a weight
    /// transpose or cast); anything larger (a broadcast, `Tile`, `ConstantOfShape`) is left to run time.
    static let maximumBytes = 16 << 20

    /// Ops whose output differs from run to run: never folded.
    static let nondeterministic: Set<String> = [
        "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli",
    ]
    /// Ops that read only their input's shape: folded when that shape is fixed, even without its values.
    static let shapeReaders: Set<String> = ["Shape", "Size"]

    /// Evaluates `node` now when its inputs are all constant, recording its outputs in
    /// ``constants``; returns whether it did. A node that fails here would fail on every run, so
    /// its error is thrown now, naming the node.
    mutating func fold(_ node: Node, op: any Operator, inputs: [Int?], outputs: [Int?]) throws -> Bool {
        let isConstantNode = node.domain.isEmpty && node.opType == "Constant"
        guard isConstantNode || (enabled && node.domain.isEmpty && !Self.nondeterministic.contains(node.opType)),
            let tensors = try knownInputs(node, inputs), Self.fitsBeforeRunning(node, tensors)
        else { return false }
        let results: [Tensor?]
        do { results = try op.forward(OpInputs(tensors, constant: tensors.map { $0 != nil })) } catch let error as GraphError {
            throw error
        } catch {
            throw GraphError.nodeFailed(node: node.label, reason: "\(error)")
        }
        let largestInput = tensors.map { $0?.byteCount ?? 0 }.max() ?? 0
        var produced: [(Int, Tensor)] = []
        for (position, slot) in outputs.enumerated() {
            guard let slot else { continue }
            // An output the op did not produce is reported by the run that needs it.
            guard position < results.count, let result = results[position] else { return false }
            guard isConstantNode || result.byteCount <= max(Self.maximumBytes, largestInput) else { return false }
            produced.append((slot, result))
        }
        for (slot, result) in produced { constants[slot] = result }
        return true
    }

    /// The node's inputs when all are known now (`nil` entries for omitted ones); otherwise `nil`.
    /// `Shape` and `Size` of a graph input with fixed axes read a zero tensor of that shape.
    private func knownInputs(_ node: Node, _ inputs: [Int?]) throws -> [Tensor?]? {
        var tensors: [Tensor?] = []
        for (position, slot) in inputs.enumerated() {
            guard let slot else {
                tensors.append(nil)
                continue
            }
            if let tensor = constants[slot] {
                tensors.append(tensor)
            } else if position == 0, Self.shapeReaders.contains(node.opType), let fixed = fixedInputs[slot],
                Self.withinLimit(fixed.shape, fixed.dtype)
            {
                tensors.append(try Tensor(zeros: fixed.dtype, shape: fixed.shape))
            } else {
                return nil
            }
        }
        return tensors
    }

    /// Whether an op whose output size is set by its input values stays within the size limit;
    /// `true` for every other op (their outputs are checked after running). Ops of that kind we
    /// cannot size beforehand are left to run time.
    static func fitsBeforeRunning(_ node: Node, _ inputs: [Tensor?]) -> Bool {
        func values(_ index: Int) -> [Int]? { index < inputs.count ? try? inputs[index]?.integers() : nil }
        let fits = withinLimit
        let first = inputs.first ?? nil
        switch node.opType {
        case "ConstantOfShape":
            let value = (try? node.attribute("value", as: Tensor.self)) ?? nil
            return fits(values(0), value?.dtype ?? .float32)
        case "Expand":
            guard let x = first, let target = values(1) else { return false }
            return fits(try? Shape.broadcast(x.shape, target), x.dtype)
        case "Tile":
            guard let x = first, let repeats = values(1), repeats.count == x.rank else { return false }
            var shape: [Int] = []
            for (extent, times) in zip(x.shape, repeats) {
                let (product, overflow) = extent.multipliedReportingOverflow(by: times)
                guard !overflow else { return false }
                shape.append(product)
            }
            return fits(shape, x.dtype)
        case "Range":
            guard inputs.count == 3, let start = try? inputs[0]?.doubles().first, let limit = try? inputs[1]?.doubles().first,
                let delta = try? inputs[2]?.doubles().first, delta != 0
            else { return false }
            let count = ((limit - start) / delta).rounded(.up)
            guard count.isFinite, count < Double(maximumBytes) else { return false }
            return fits([Int(max(count, 0))], first?.dtype)
        case "Resize", "Upsample", "Pad", "OneHot", "EyeLike", "CenterCropPad", "Col2Im":
            return false
        default:
            return true
        }
    }

    /// Whether a tensor of `shape` and `dtype` is no larger than ``maximumBytes``.
    static func withinLimit(_ shape: [Int]?, _ dtype: DType?) -> Bool {
        guard let shape, let dtype, let count = try? Shape.elementCount(shape) else { return false }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        return !overflow && bytes <= maximumBytes
    }
}
