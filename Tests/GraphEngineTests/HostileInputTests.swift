import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// One node of an issue-11 op with inputs or attributes a hostile or broken file could hold:
/// extreme integers, NaN and infinite values, empty tensors, mismatched shapes, out-of-range
/// axes and indices, absurd sizes.
struct Hostile: CustomTestStringConvertible, Sendable {
    let label: String
    let op: String
    let inputs: [Tensor?]
    var attributes: [String: Attribute] = [:]
    var opset = 22
    var outputs = 1
    var testDescription: String { label }
}

private func t64(_ v: [Int64], _ shape: [Int]? = nil) -> Tensor { try! Tensor(shape: shape ?? [v.count], scalars: v) }
private func tf(_ v: [Float], _ shape: [Int]? = nil) -> Tensor { try! Tensor(shape: shape ?? [v.count], scalars: v) }
private func td(_ v: [Double], _ shape: [Int]? = nil) -> Tensor { try! Tensor(shape: shape ?? [v.count], scalars: v) }
private func ti8(_ v: [Int8], _ shape: [Int]? = nil) -> Tensor { try! Tensor(shape: shape ?? [v.count], scalars: v) }
private func ti32(_ v: [Int32], _ shape: [Int]? = nil) -> Tensor { try! Tensor(shape: shape ?? [v.count], scalars: v) }

private let hostile: [Hostile] = {
    let x = tf([1, 2, 3, 4, 5, 6], [1, 1, 2, 3])
    let big = Int64.max, small = Int64.min
    var cases: [Hostile] = [
        Hostile(label: "tile negative", op: "Tile", inputs: [tf([1, 2]), t64([-1])], opset: 13),
        Hostile(label: "tile huge", op: "Tile", inputs: [tf([1, 2]), t64([big])], opset: 13),
        Hostile(label: "range int64 extremes", op: "Range", inputs: [t64([small], []), t64([big], []), t64([1], [])], opset: 11),
        Hostile(label: "range tiny delta", op: "Range", inputs: [td([0], []), td([1e300], []), td([1e-300], [])], opset: 11),
        Hostile(label: "range int32 overflow", op: "Range", inputs: [ti32([Int32.max - 1], []), ti32([Int32.min], []), ti32([Int32.min], [])], opset: 11),
        Hostile(label: "onehot depth negative", op: "OneHot", inputs: [t64([0, 1]), t64([-5], []), tf([0, 1])], opset: 11),
        Hostile(label: "onehot depth nan", op: "OneHot", inputs: [t64([0, 1]), tf([.nan], []), tf([0, 1])], opset: 11),
        Hostile(label: "onehot index huge float", op: "OneHot", inputs: [tf([1e30, -1e30, .nan, .infinity]), t64([3], []), tf([0, 1])], opset: 11),
        Hostile(label: "topk k negative", op: "TopK", inputs: [tf([1, 2, 3]), t64([-1])], opset: 11, outputs: 2),
        Hostile(label: "topk k huge", op: "TopK", inputs: [tf([1, 2, 3]), t64([big])], opset: 11, outputs: 2),
        Hostile(label: "topk nan", op: "TopK", inputs: [tf([1, .nan, 3, .nan]), t64([3])], opset: 11, outputs: 2),
        Hostile(label: "cumsum axis out", op: "CumSum", inputs: [tf([1, 2]), t64([99], [])], opset: 14),
        Hostile(label: "cumsum axis min", op: "CumSum", inputs: [tf([1, 2]), t64([small], [])], opset: 14),
        Hostile(label: "cumsum int8 overflow", op: "CumSum", inputs: [ti8([127, 127, 127]), t64([0], [])], opset: 14),
        Hostile(label: "scatternd index out", op: "ScatterND", inputs: [tf([1, 2]), t64([10], [1, 1]), tf([5])], opset: 13),
        Hostile(label: "scatternd index min", op: "ScatterND", inputs: [tf([1, 2]), t64([small], [1, 1]), tf([5])], opset: 13),
        Hostile(label: "scatternd index deep", op: "ScatterND", inputs: [tf([1, 2]), t64([0, 0, 0], [1, 3]), tf([5])], opset: 13),
        Hostile(label: "scatterelements out", op: "ScatterElements", inputs: [tf([1, 2]), t64([99]), tf([5])], opset: 13),
        Hostile(label: "gatherelements out", op: "GatherElements", inputs: [tf([1, 2]), t64([-99])], opset: 13),
        Hostile(label: "gatherelements min", op: "GatherElements", inputs: [tf([1, 2]), t64([small])], opset: 13),
        Hostile(label: "gathernd batch dims", op: "GatherND", inputs: [tf([1, 2]), t64([0], [1, 1])], attributes: ["batch_dims": .int(5)], opset: 13),
        Hostile(label: "gathernd index too long", op: "GatherND", inputs: [tf([1, 2]), t64([0, 0, 0], [1, 3])], opset: 13),
        Hostile(label: "gathernd index min", op: "GatherND", inputs: [tf([1, 2]), t64([small], [1, 1])], opset: 13),
        Hostile(label: "depthtospace 0", op: "DepthToSpace", inputs: [x], attributes: ["blocksize": .int(0)], opset: 13),
        Hostile(label: "depthtospace -1", op: "DepthToSpace", inputs: [x], attributes: ["blocksize": .int(-1)], opset: 13),
        Hostile(label: "depthtospace huge", op: "DepthToSpace", inputs: [x], attributes: ["blocksize": .int(Int(Int32.max))], opset: 13),
        Hostile(label: "depthtospace bad mode", op: "DepthToSpace", inputs: [x], attributes: ["blocksize": .int(1), "mode": .string("XYZ")], opset: 13),
        Hostile(label: "spacetodepth 0", op: "SpaceToDepth", inputs: [x], attributes: ["blocksize": .int(0)], opset: 13),
        Hostile(label: "spacetodepth huge", op: "SpaceToDepth", inputs: [x], attributes: ["blocksize": .int(Int.max)], opset: 13),
        Hostile(label: "trilu k min", op: "Trilu", inputs: [tf([1, 2, 3, 4], [2, 2]), t64([small], [])], opset: 14),
        Hostile(label: "trilu k max", op: "Trilu", inputs: [tf([1, 2, 3, 4], [2, 2]), t64([big], [])], attributes: ["upper": .int(0)], opset: 14),
        Hostile(label: "trilu rank1", op: "Trilu", inputs: [tf([1, 2])], opset: 14),
        Hostile(label: "einsum mismatch", op: "Einsum", inputs: [tf([1, 2], [1, 2]), tf([1, 2, 3], [3, 1])], attributes: ["equation": .string("ij,jk->ik")], opset: 12),
        Hostile(label: "einsum garbage", op: "Einsum", inputs: [tf([1, 2])], attributes: ["equation": .string("....->")], opset: 12),
        Hostile(label: "einsum new output label", op: "Einsum", inputs: [tf([1, 2])], attributes: ["equation": .string("i->j")], opset: 12),
        Hostile(label: "einsum diag nonsquare", op: "Einsum", inputs: [tf([1, 2, 3, 4, 5, 6], [2, 3])], attributes: ["equation": .string("ii->i")], opset: 12),
        Hostile(label: "einsum empty", op: "Einsum", inputs: [tf([1, 2])], attributes: ["equation": .string("")], opset: 12),
        Hostile(label: "einsum int8 overflow", op: "Einsum", inputs: [ti8([127, 127], [1, 2]), ti8([127, 127], [2, 1])], attributes: ["equation": .string("ij,jk->ik")], opset: 12),
        Hostile(label: "resize negative sizes", op: "Resize", inputs: [x, nil, nil, t64([1, 1, -1, 3])], opset: 19),
        Hostile(label: "resize zero scales", op: "Resize", inputs: [x, nil, tf([0, 0, 0, 0])], opset: 19),
        Hostile(label: "resize huge scales", op: "Resize", inputs: [x, nil, tf([1, 1, 1e30, 1e30])], opset: 19),
        Hostile(label: "resize nan scales", op: "Resize", inputs: [x, nil, tf([1, 1, .nan, 1])], opset: 19),
        Hostile(label: "resize inf scales", op: "Resize", inputs: [x, nil, tf([1, 1, .infinity, 1])], attributes: ["mode": .string("linear")], opset: 19),
        Hostile(label: "resize roi short", op: "Resize", inputs: [x, tf([0, 1]), tf([1, 1, 2, 2])], attributes: ["coordinate_transformation_mode": .string("tf_crop_and_resize")], opset: 19),
        Hostile(label: "resize roi nan", op: "Resize", inputs: [x, tf([0, 0, .nan, 0, 1, 1, .infinity, 1]), tf([1, 1, 2, 2])], attributes: ["coordinate_transformation_mode": .string("tf_crop_and_resize"), "mode": .string("cubic")], opset: 19),
        Hostile(label: "resize sizes short", op: "Resize", inputs: [x, nil, nil, t64([3])], opset: 19),
        Hostile(label: "resize int8 cubic overshoot", op: "Resize", inputs: [ti8([-128, 127, -128, 127, -128, 127], [1, 1, 2, 3]), nil, tf([1, 1, 3, 3])], attributes: ["mode": .string("cubic")], opset: 19),
        Hostile(label: "resize cubic a nan", op: "Resize", inputs: [x, nil, tf([1, 1, 2, 2])], attributes: ["mode": .string("cubic"), "cubic_coeff_a": .float(.nan)], opset: 19),
        Hostile(label: "resize antialias tiny", op: "Resize", inputs: [x, nil, tf([1, 1, 1e-30, 1e-30])], attributes: ["mode": .string("cubic"), "antialias": .int(1)], opset: 19),
        Hostile(label: "resize axes dup", op: "Resize", inputs: [x, nil, tf([2, 2])], attributes: ["axes": .ints([2, 2])], opset: 19),
        Hostile(label: "resize axes out", op: "Resize", inputs: [x, nil, tf([2])], attributes: ["axes": .ints([9])], opset: 19),
        Hostile(label: "upsample negative", op: "Upsample", inputs: [x, tf([1, 1, -2, 2])], opset: 9),
        Hostile(label: "upsample short", op: "Upsample", inputs: [x, tf([2])], opset: 9),
        Hostile(label: "pad huge", op: "Pad", inputs: [tf([1, 2]), t64([big, big])], opset: 19),
        Hostile(label: "pad min", op: "Pad", inputs: [tf([1, 2]), t64([small, 0])], opset: 19),
        Hostile(label: "pad reflect empty", op: "Pad", inputs: [tf([1, 2]), t64([1, -2])], attributes: ["mode": .string("reflect")], opset: 19),
        Hostile(label: "pad count", op: "Pad", inputs: [tf([1, 2]), t64([1, 2, 3])], opset: 19),
        Hostile(label: "pad value many", op: "Pad", inputs: [tf([1, 2]), t64([1, 1]), tf([1, 2])], opset: 19),
        Hostile(label: "pad axes out", op: "Pad", inputs: [tf([1, 2]), t64([1, 1]), nil, t64([5])], opset: 19),
        Hostile(label: "convtranspose stride 0", op: "ConvTranspose", inputs: [x, tf([1, 1, 1, 1], [1, 1, 2, 2])], attributes: ["strides": .ints([0, 0])], opset: 22),
        Hostile(label: "convtranspose group 0", op: "ConvTranspose", inputs: [x, tf([1, 1, 1, 1], [1, 1, 2, 2])], attributes: ["group": .int(0)], opset: 22),
        Hostile(label: "convtranspose group 3", op: "ConvTranspose", inputs: [x, tf([1, 1, 1, 1], [1, 1, 2, 2])], attributes: ["group": .int(3)], opset: 22),
        Hostile(label: "convtranspose output shape huge", op: "ConvTranspose", inputs: [x, tf([1, 1, 1, 1], [1, 1, 2, 2])], attributes: ["output_shape": .ints([Int(Int32.max), Int(Int32.max)])], opset: 22),
        Hostile(label: "convtranspose output padding big", op: "ConvTranspose", inputs: [x, tf([1, 1, 1, 1], [1, 1, 2, 2])], attributes: ["output_padding": .ints([Int(Int32.max), 1])], opset: 22),
        Hostile(label: "convtranspose pads big", op: "ConvTranspose", inputs: [x, tf([1, 1, 1, 1], [1, 1, 2, 2])], attributes: ["pads": .ints([100, 100, 100, 100])], opset: 22),
        Hostile(label: "convtranspose bias wrong", op: "ConvTranspose", inputs: [x, tf([1, 1, 1, 1], [1, 1, 2, 2]), tf([1, 2, 3])], opset: 22),
        Hostile(label: "convtranspose weights zero", op: "ConvTranspose", inputs: [x, tf([], [1, 1, 0, 2])], opset: 22),
        Hostile(label: "instancenorm scale short", op: "InstanceNormalization", inputs: [x, tf([]), tf([])], opset: 22),
        Hostile(label: "groupnorm 0", op: "GroupNormalization", inputs: [x, tf([1]), tf([1])], attributes: ["num_groups": .int(0)], opset: 21),
        Hostile(label: "groupnorm 5", op: "GroupNormalization", inputs: [x, tf([1]), tf([1])], attributes: ["num_groups": .int(5)], opset: 21),
        Hostile(label: "groupnorm scale short", op: "GroupNormalization", inputs: [tf([1, 2, 3, 4], [1, 2, 2]), tf([1]), tf([1])], attributes: ["num_groups": .int(2)], opset: 21),
        Hostile(label: "lrn huge", op: "LRN", inputs: [x], attributes: ["size": .int(Int.max)], opset: 13),
        Hostile(label: "lrn rank1", op: "LRN", inputs: [tf([1, 2])], attributes: ["size": .int(3)], opset: 13),
        Hostile(label: "lpnorm axis", op: "LpNormalization", inputs: [x], attributes: ["axis": .int(9)], opset: 22),
        Hostile(label: "mvn axes", op: "MeanVarianceNormalization", inputs: [x], attributes: ["axes": .ints([9])], opset: 13),
        Hostile(label: "bn training stats wrong", op: "BatchNormalization", inputs: [x, tf([1, 2]), tf([1]), tf([1]), tf([1])], attributes: ["training_mode": .int(1)], opset: 15, outputs: 3),
        Hostile(label: "argmax axis", op: "ArgMax", inputs: [x], attributes: ["axis": .int(9)], opset: 13),
        Hostile(label: "argmax empty", op: "ArgMax", inputs: [tf([], [0, 3])], attributes: ["axis": .int(0)], opset: 13),
        Hostile(label: "reducemax axes", op: "ReduceMax", inputs: [x, t64([9])], opset: 18),
        Hostile(label: "reducemax empty", op: "ReduceMax", inputs: [tf([], [0, 3]), t64([0])], opset: 18),
        Hostile(label: "reducel2 int64 overflow", op: "ReduceL2", inputs: [t64([big, big]), t64([0])], opset: 18),
        Hostile(label: "reducelogsumexp int64 huge", op: "ReduceLogSumExp", inputs: [t64([big, big]), t64([0])], opset: 18),
        Hostile(label: "reducelogsumexp int64 min", op: "ReduceLogSumExp", inputs: [t64([small, small]), t64([0])], opset: 18),
        Hostile(label: "reducelogsumexp empty int", op: "ReduceLogSumExp", inputs: [t64([], [0]), t64([0])], opset: 18),
        Hostile(label: "reducel1 int8 min", op: "ReduceL1", inputs: [ti8([-128]), t64([0])], opset: 18),
        Hostile(label: "reducemean int empty", op: "ReduceMean", inputs: [t64([], [0]), t64([0])], opset: 18),
        Hostile(label: "abs int8 min", op: "Abs", inputs: [ti8([-128, 5])], opset: 13),
        Hostile(label: "abs int64 min", op: "Abs", inputs: [t64([small])], opset: 13),
        Hostile(label: "sign int8 min", op: "Sign", inputs: [ti8([-128])], opset: 13),
        Hostile(label: "shrink int8 bias", op: "Shrink", inputs: [ti8([-128, 127, 0])], attributes: ["bias": .float(1e9), "lambd": .float(0)], opset: 9),
        Hostile(label: "shrink int64 bias nan", op: "Shrink", inputs: [t64([small, big])], attributes: ["bias": .float(.nan), "lambd": .float(-1)], opset: 9),
        Hostile(label: "prelu int64 overflow", op: "PRelu", inputs: [t64([small, -big]), t64([big])], opset: 16),
        Hostile(label: "prelu int8 overflow", op: "PRelu", inputs: [ti8([-128]), ti8([-128])], opset: 16),
        Hostile(label: "max int mismatch", op: "Max", inputs: [ti8([1]), t64([2])], opset: 13),
        Hostile(label: "sum empty list", op: "Sum", inputs: [], opset: 13),
        Hostile(label: "lstm hidden 0", op: "LSTM", inputs: [tf([1, 2], [1, 1, 2]), tf([], [1, 0, 2]), tf([], [1, 0, 0])], attributes: ["hidden_size": .int(0)], opset: 22),
        Hostile(label: "lstm hidden -1", op: "LSTM", inputs: [tf([1, 2], [1, 1, 2]), tf([1], [1, 1, 1]), tf([1], [1, 1, 1])], attributes: ["hidden_size": .int(-1)], opset: 22),
        Hostile(label: "lstm hidden huge", op: "LSTM", inputs: [tf([1, 2], [1, 1, 2]), tf([1], [1, 1, 1]), tf([1], [1, 1, 1])], attributes: ["hidden_size": .int(Int.max / 2)], opset: 22),
        Hostile(label: "lstm W wrong", op: "LSTM", inputs: [tf([1, 2], [1, 1, 2]), tf([1, 2, 3], [1, 1, 3]), tf([1, 2, 3, 4], [1, 4, 1])], attributes: ["hidden_size": .int(1)], opset: 22),
        Hostile(label: "gru lens long", op: "GRU", inputs: [tf([1, 2], [1, 1, 2]), tf([Float](repeating: 1, count: 6), [1, 3, 2]), tf([1, 1, 1], [1, 3, 1]), nil, ti32([100])], attributes: ["hidden_size": .int(1)], opset: 22, outputs: 2),
        Hostile(label: "gru lens negative", op: "GRU", inputs: [tf([1, 2], [1, 1, 2]), tf([Float](repeating: 1, count: 6), [1, 3, 2]), tf([1, 1, 1], [1, 3, 1]), nil, ti32([-5])], attributes: ["hidden_size": .int(1)], opset: 22, outputs: 2),
        Hostile(label: "rnn lens count", op: "RNN", inputs: [tf([1, 2], [1, 1, 2]), tf([1, 1], [1, 1, 2]), tf([1], [1, 1, 1]), nil, ti32([1, 1, 1])], attributes: ["hidden_size": .int(1)], opset: 22, outputs: 2),
        Hostile(label: "rnn direction", op: "RNN", inputs: [tf([1, 2], [1, 1, 2]), tf([1, 1], [1, 1, 2]), tf([1], [1, 1, 1])], attributes: ["hidden_size": .int(1), "direction": .string("sideways")], opset: 22),
        Hostile(label: "rnn activation", op: "RNN", inputs: [tf([1, 2], [1, 1, 2]), tf([1, 1], [1, 1, 2]), tf([1], [1, 1, 1])], attributes: ["hidden_size": .int(1), "activations": .strings(["Nope"])], opset: 22),
        Hostile(label: "rnn activations short", op: "RNN", inputs: [tf([1, 2], [1, 1, 2]), tf([1, 1, 1, 1], [2, 1, 2]), tf([1, 1], [2, 1, 1])], attributes: ["hidden_size": .int(1), "direction": .string("bidirectional"), "activations": .strings(["Tanh"])], opset: 22),
        Hostile(label: "rnn layout 2", op: "RNN", inputs: [tf([1, 2], [1, 1, 2]), tf([1, 1], [1, 1, 2]), tf([1], [1, 1, 1])], attributes: ["hidden_size": .int(1), "layout": .int(2)], opset: 22),
        Hostile(label: "rnn initial_h wrong", op: "RNN", inputs: [tf([1, 2], [1, 1, 2]), tf([1, 1], [1, 1, 2]), tf([1], [1, 1, 1]), nil, nil, tf([1, 2, 3])], attributes: ["hidden_size": .int(1)], opset: 22),
        Hostile(label: "rnn X rank 2", op: "RNN", inputs: [tf([1, 2], [1, 2]), tf([1, 1], [1, 1, 2]), tf([1], [1, 1, 1])], attributes: ["hidden_size": .int(1)], opset: 22),
        Hostile(label: "q axis", op: "QuantizeLinear", inputs: [x, tf([1, 2])], attributes: ["axis": .int(9)], opset: 13),
        Hostile(label: "q block huge", op: "QuantizeLinear", inputs: [x, tf([1], [1, 1, 1, 1])], attributes: ["axis": .int(3), "block_size": .int(Int.max)], opset: 21),
        Hostile(label: "q scale zero", op: "QuantizeLinear", inputs: [x, tf([0], [])], opset: 13),
        Hostile(label: "q zero shape", op: "QuantizeLinear", inputs: [x, tf([1], []), ti8([1, 2])], opset: 13),
        Hostile(label: "dq block remainder wrong", op: "DequantizeLinear", inputs: [ti8([1, 2, 3], [3]), tf([1])], attributes: ["axis": .int(0), "block_size": .int(2)], opset: 21),
        Hostile(label: "size huge", op: "Size", inputs: [tf([], [0, 5])], opset: 13),
        Hostile(label: "nonzero scalar", op: "NonZero", inputs: [tf([1], [])], opset: 13),
        Hostile(label: "logsoftmax axis", op: "LogSoftmax", inputs: [x], attributes: ["axis": .int(9)], opset: 13),
        Hostile(label: "globalmaxpool rank1", op: "GlobalMaxPool", inputs: [tf([1, 2])], opset: 22),
        Hostile(label: "globalmaxpool empty", op: "GlobalMaxPool", inputs: [tf([], [1, 1, 0, 0])], opset: 22),
        Hostile(label: "celu alpha 0", op: "Celu", inputs: [tf([1])], attributes: ["alpha": .float(0)], opset: 12),
        Hostile(label: "isinf int", op: "IsInf", inputs: [t64([1])], opset: 20),
        Hostile(label: "not float", op: "Not", inputs: [tf([1])], opset: 1),
        Hostile(label: "greater mixed", op: "Greater", inputs: [tf([1]), t64([1])], opset: 13),
        Hostile(label: "onehot axis", op: "OneHot", inputs: [t64([0, 1]), t64([3], []), tf([0, 1])], attributes: ["axis": .int(9)], opset: 11),
        Hostile(label: "onehot values count", op: "OneHot", inputs: [t64([0, 1]), t64([3], []), tf([0, 1, 2])], opset: 11),
        Hostile(label: "onehot depth huge", op: "OneHot", inputs: [t64([0, 1]), t64([Int64(1) << 61], []), tf([0, 1])], opset: 11),
        Hostile(label: "topk axis", op: "TopK", inputs: [tf([1, 2, 3]), t64([1])], attributes: ["axis": .int(5)], opset: 11, outputs: 2),
        Hostile(label: "tile repeats count", op: "Tile", inputs: [tf([1, 2]), t64([1, 2, 3])], opset: 13),
        Hostile(label: "tile overflow product", op: "Tile", inputs: [tf([1, 2, 3, 4], [2, 2]), t64([Int64(1) << 40, Int64(1) << 40])], opset: 13),
    ]
    cases.append(Hostile(label: "range float inf", op: "Range", inputs: [tf([0], []), tf([.infinity], []), tf([1], [])], opset: 11))
    cases.append(Hostile(label: "range float zero delta", op: "Range", inputs: [tf([0], []), tf([1], []), tf([0], [])], opset: 11))
    return cases
}()

/// Bad input gets a typed error naming the node, or a result, never a trap: each case runs forward
/// (constants unfolded, so the op itself sees them) and, where input 0 is a float, backward too. A
/// trap (overflow, out-of-bounds access, failed conversion) would end the test process, so the
/// backward half checks exactly that.
@Suite struct HostileInputTests {
    @Test(arguments: hostile)
    func errorsNameTheNodeAndNothingTraps(_ c: Hostile) {
        var initializers: [String: Tensor] = [:]
        var names: [String] = []
        for (k, t) in c.inputs.enumerated() {
            if let t {
                initializers["i\(k)"] = t
                names.append("i\(k)")
            } else {
                names.append("")
            }
        }
        let node = Node(name: "n", opType: c.op, inputs: names, outputs: (0..<c.outputs).map { "y\($0)" }, attributes: c.attributes)
        let model = makeModel([node], inputs: [], outputs: ["y0"], initializers: initializers, opset: c.opset)
        let text = errorText { try Executor(model: model, foldConstants: false).run([:]) }
        #expect(text == "no error" || text.contains("node 'n' (\(c.op))"), "\(c.label): \(text)")
        guard let first = c.inputs.first ?? nil, first.dtype == .float32 || first.dtype == .float64 else { return }
        var rest = initializers
        rest["i0"] = nil
        let gradModel = makeModel([node], inputs: [ValueInfo(name: "i0", elementType: first.dtype)], outputs: ["y0"], initializers: rest, opset: c.opset)
        _ = errorText {
            try Executor(model: gradModel).gradients(["i0": first], seed: { try Tensor(zeros: $0.dtype, shape: $0.shape) }, wrt: ["i0"])
        }
    }
}
