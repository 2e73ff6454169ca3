import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// Checks one op's backward rule against central finite differences of `⟨G, f(x)⟩`, with `G` a
/// fixed random upstream gradient, through the executor's reverse pass (so un-broadcasting and
/// accumulation are checked too).
struct GradientCheck {
    var op: String
    var attributes: [String: Attribute] = [:]
    /// Inputs to differentiate with respect to.
    var inputs: [Tensor]
    /// Further inputs held constant (axes, shapes, masks, weights), given as initializers.
    var constants: [(position: Int, tensor: Tensor)] = []
    var outputs = 1
    /// The output whose gradient is seeded.
    var seeded = 0
    var opset = 17
    /// Where the differentiated inputs sit in the node's input list, when optional inputs are
    /// skipped; `nil` fills the slots the constants leave, in order.
    var positions: [Int]?

    /// Float64 inputs: h = 1e-6 puts truncation error (~h²) and rounding error (~1e-16/h) near
    /// 1e-10 relative, so 1e-6 relative (+1e-8 absolute) leaves four orders of headroom.
    /// Float32-only ops use h = 1e-2 and 2e-3 relative: rounding ~6e-8/1e-2 plus h² terms.
    var step: Double { inputs.first?.dtype == .float64 ? 1e-6 : 1e-2 }
    var tolerance: (absolute: Double, relative: Double) { inputs.first?.dtype == .float64 ? (1e-8, 1e-6) : (2e-4, 2e-3) }

    func model() -> Model {
        let count = max(inputs.count + constants.count, (positions?.max() ?? -1) + 1, (constants.map(\.position).max() ?? -1) + 1)
        var names = [String](repeating: "", count: count)
        var initializers: [String: Tensor] = [:]
        for (position, tensor) in constants {
            names[position] = "c\(position)"
            initializers["c\(position)"] = tensor
        }
        if let positions {
            for (variable, position) in positions.enumerated() { names[position] = "x\(variable)" }
        } else {
            var variable = 0
            for position in 0..<count where names[position].isEmpty {
                names[position] = "x\(variable)"
                variable += 1
            }
        }
        let node = Node(
            name: "under_test", opType: op, inputs: names, outputs: (0..<outputs).map { "y\($0)" }, attributes: attributes)
        return Model(
            opsets: ["": opset],
            graph: Graph(
                nodes: [node], initializers: initializers,
                inputs: inputs.indices.map { ValueInfo(name: "x\($0)", elementType: inputs[$0].dtype) },
                outputs: [ValueInfo(name: "y\(seeded)", elementType: nil)]))
    }

    /// Returns a description of every mismatching element, empty when the check passes.
    func run(seed: UInt64 = 7) throws -> [String] {
        let executor = try Executor(model: model())
        let names = inputs.indices.map { "x\($0)" }
        let feeds = Dictionary(uniqueKeysWithValues: zip(names, inputs))
        let output = try #require(try executor.run(feeds, fetch: ["y\(seeded)"])["y\(seeded)"])
        var random = SeededRandom(seed: seed)
        let upstream = (0..<output.count).map { _ in random.uniform(-1...1) }
        let g = try Tensor(shape: output.shape, scalars: upstream).converted(to: output.dtype)
        let analytic = try executor.gradients(feeds, seed: { _ in g }, output: "y\(seeded)", wrt: names)

        func objective(_ feeds: [String: Tensor]) throws -> Double {
            let y = try #require(try executor.run(feeds, fetch: ["y\(seeded)"])["y\(seeded)"]).doubles()
            return zip(y, upstream).reduce(0) { $0 + $1.0 * $1.1 }
        }
        var failures: [String] = []
        for (index, name) in names.enumerated() {
            let x = try inputs[index].doubles()
            let gradient = try #require(analytic.gradients[name]).doubles()
            for i in x.indices {
                func shifted(_ delta: Double) throws -> [String: Tensor] {
                    var values = x
                    values[i] += delta
                    var copy = feeds
                    copy[name] = try Tensor(shape: inputs[index].shape, scalars: values).converted(to: inputs[index].dtype)
                    return copy
                }
                let numeric = (try objective(shifted(step)) - objective(shifted(-step))) / (2 * step)
                if !(abs(gradient[i] - numeric) <= tolerance.absolute + tolerance.relative * abs(numeric)) {
                    failures.append("\(op) ∂/∂\(name)[\(i)]: analytic \(gradient[i]) vs numeric \(numeric)")
                }
            }
        }
        return failures
    }
}

/// Random float64 tensor with entries away from zero.
func randomTensor(_ shape: [Int], seed: UInt64, dtype: DType = .float64, magnitude: ClosedRange<Double> = 0.1...1) throws -> Tensor {
    var random = SeededRandom(seed: seed)
    let count = shape.reduce(1, *)
    return try Tensor(shape: shape, scalars: random.awayFromZero(count, magnitude: magnitude)).converted(to: dtype)
}

func int64s(_ values: [Int]) throws -> Tensor { try Tensor(shape: [values.count], scalars: values.map { Int64($0) }) }

/// The seed of `Σₙ y[n, cₙ]` for a `[batch, classes]` output `y`: one at each sample's class (its
/// argmax when `classes` is nil), as Explain's class targets seed the reverse pass.
func logitSeed(_ classes: [Int]?) -> (Tensor) throws -> Tensor {
    { output in
        let (batch, width) = (output.shape[0], output.shape[1])
        let values = try output.doubles()
        var seed = [Double](repeating: 0, count: batch * width)
        for n in 0..<batch {
            let row = values[n * width..<(n + 1) * width]
            let c = classes?[n] ?? ClassProbabilities.argmax(row)
            seed[n * width + c] = 1
        }
        return try Tensor(shape: output.shape, scalars: seed).converted(to: output.dtype)
    }
}
