"""Cases for the schema versions and element types tools/op_coverage.py found no test for.

Each closes one gap of tools/op_coverage.md: a version in effect at an opset from 7 to 25 that no
test imported (the case runs at the newest opset that version covers, or the oldest from 7), or
an element type the spec allows and the engine has that no test fed. Values are seeded and kept
in ranges where every type represents them exactly (small integers, halves and quarters for
floats), so a difference is the op's, not the input conversion's.
"""
from __future__ import annotations

import numpy as np
import torch.nn.functional as F

from op_cases import case

RNG = np.random.default_rng(2025)


def values(shape, dtype, low=-3, high=3) -> np.ndarray:
    """Seeded values of `dtype`: integers in [low, high] (clipped to the type), bools, or floats
    on a grid of quarters in [low, high]."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return RNG.integers(0, 2, size=shape).astype(np.bool_)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return RNG.integers(max(int(low), info.min), min(int(high), info.max) + 1, size=shape).astype(dtype)
    return (RNG.integers(int(low * 4), int(high * 4) + 1, size=shape) / 4).astype(dtype)


def i64(*v) -> np.ndarray:
    return np.array(v, dtype=np.int64)


def label(dtype) -> str:
    return "bool" if np.dtype(dtype) == np.bool_ else np.dtype(dtype).name


# --- Activations and math: the float16 and float64 forms ----------------------------------------

UNARY = [
    # op, opset, dtypes, value range, attributes
    ("HardSigmoid", 22, [np.float16], (-4, 4), {}),
    ("HardSwish", 22, [np.float16], (-4, 4), {}),
    ("Elu", 22, [np.float16], (-3, 3), {}),
    ("Selu", 22, [np.float64, np.float16], (-3, 3), {}),
    ("Softplus", 22, [np.float64, np.float16], (-4, 4), {}),
    ("Softsign", 22, [np.float64, np.float16], (-4, 4), {}),
    ("Mish", 22, [np.float64, np.float16], (-4, 4), {}),
    ("ThresholdedRelu", 22, [np.float16], (-2, 3), {}),
    ("Shrink", 9, [np.float16, np.int64, np.uint8], (-4, 4), {"lambd": 1.0, "bias": 2.0}),
    ("Abs", 13, [np.float16, np.int32, np.uint8], (-5, 5), {}),
    ("Log", 13, [np.float64, np.float16], (0.25, 6), {}),
    ("Reciprocal", 13, [np.float64, np.float16], (0.25, 4), {}),
    ("Floor", 13, [np.float16], (-3, 3), {}),
    ("Ceil", 13, [np.float16], (-3, 3), {}),
    ("Round", 22, [np.float16], (-3, 3), {}),
    ("Sign", 13, [np.float16, np.int64, np.int8, np.uint8], (-3, 3), {}),
    ("Sin", 22, [np.float64, np.float16], (-4, 4), {}),
    ("Cos", 22, [np.float64, np.float16], (-4, 4), {}),
    ("IsNaN", 13, [np.float64], (-2, 2), {}),
    ("LogSoftmax", 13, [np.float16], (-3, 3), {}),
]
for op, opset, dtypes, (low, high), attrs in UNARY:
    for dtype in dtypes:
        x = values((3, 4), dtype, low, high)
        if op == "IsNaN":
            x[0, :2] = np.nan
        case(f"{op.lower()}_opset{opset}_{label(dtype)}", op, opset, f"{label(dtype)} input", [("x", x)], attrs)

# Versions from before opset 7 that are in effect at 7: run at the newest opset they cover.
for op, opset, (low, high) in [("Log", 12, (0.25, 6)), ("Floor", 12, (-3, 3)), ("Ceil", 12, (-3, 3)), ("Sin", 21, (-4, 4))]:
    case(f"{op.lower()}_opset{opset}_version", op, opset, f"{op}-{7 if op == 'Sin' else 6} (the version in effect at "
         f"opset {opset})", [("x", values((2, 5), np.float32, low, high))])
case("prelu_opset16_float16", "PRelu", 16, "float16 input and slope",
     [("x", values((2, 3), np.float16)), ("slope", values((3,), np.float16, 0, 1))])

# Variadic ops: the versions between 7 and 13 and the float types.
case("min_opset7_version6", "Min", 7, "Min-6: inputs of one shape", [("a", values((2, 3), np.float32)), ("b", values((2, 3), np.float32))])
case("min_opset12_uint8", "Min", 12, "Min-12: integers arrive, broadcast", [("a", values((2, 3), np.uint8, 0, 9)), ("b", values((3,), np.uint8, 0, 9))])
case("max_opset12_int64", "Max", 12, "Max-12: integers arrive, broadcast", [("a", values((2, 3), np.int64)), ("b", values((1, 3), np.int64))])
case("mean_opset8_broadcast", "Mean", 8, "Mean-8: broadcasting", [("a", values((2, 3), np.float32)), ("b", values((3,), np.float32))])
for op in ("Mean", "Sum"):
    for dtype in (np.float64, np.float16):
        case(f"{op.lower()}_opset13_{label(dtype)}", op, 13, f"{label(dtype)} inputs, broadcast",
             [("a", values((2, 3), dtype)), ("b", values((3,), dtype)), ("c", values((2, 1), dtype))])

# Comparisons: every missing type, and Less's and LessOrEqual's older versions.
COMPARISONS = [("Greater", 13, [np.float64, np.float16, np.int64]), ("Less", 13, [np.float64, np.float16, np.int32]),
               ("GreaterOrEqual", 16, [np.float64, np.float16, np.int32]),
               ("LessOrEqual", 16, [np.float64, np.float16, np.int64, np.int32])]
for op, opset, dtypes in COMPARISONS:
    for dtype in dtypes:
        case(f"{op.lower()}_opset{opset}_{label(dtype)}", op, opset, f"{label(dtype)}, broadcast, with ties",
             [("a", values((3, 4), dtype, -2, 2)), ("b", values((4,), dtype, -2, 2))])
case("less_opset7_version", "Less", 8, "Less-7: float only", [("a", values((3, 4), np.float32)), ("b", values((4,), np.float32))])
case("less_opset9_int32", "Less", 12, "Less-9: integers arrive", [("a", values((3, 4), np.int32)), ("b", values((4,), np.int32))])
case("lessorequal_opset12_version", "LessOrEqual", 15, "LessOrEqual-12",
     [("a", values((3, 4), np.float32)), ("b", values((4,), np.float32))])

# --- Reductions: axes as an attribute in the oldest versions, the missing types ----------------

REDUCTION_VERSIONS = [
    ("ReduceMax", [10, 12]), ("ReduceMin", [10, 12]), ("ReduceProd", [10]), ("ReduceL1", [10, 11]), ("ReduceL2", [10]),
    ("ReduceLogSumExp", [10, 11]), ("ReduceSumSquare", [10, 11]),
]
for op, opsets in REDUCTION_VERSIONS:
    for opset in opsets:
        dtype = np.int8 if opset == 12 else np.float32
        case(f"{op.lower()}_opset{opset}_axes_attribute_{label(dtype)}", op, opset,
             f"the version in effect at opset {opset}: axes attribute, {label(dtype)}",
             [("data", values((2, 3, 4), dtype, 0.5 if op == "ReduceProd" else -3, 1.5 if op == "ReduceProd" else 3))],
             {"axes": [0, 2], "keepdims": 1 if opset == 10 else 0})
REDUCTION_TYPES = [
    ("ReduceMax", [np.int32, np.uint8]), ("ReduceMin", [np.float16, np.int64, np.int8]), ("ReduceProd", [np.int32]),
    ("ReduceL1", [np.float16, np.int64]), ("ReduceL2", [np.int32]),
    ("ReduceSumSquare", [np.float64, np.int64]),
]
for op, dtypes in REDUCTION_TYPES:
    for dtype in dtypes:
        low, high = (0, 9) if dtype == np.uint8 else (-3, 3)
        case(f"{op.lower()}_opset18_{label(dtype)}", op, 18, f"{label(dtype)} over the last axis",
             [("data", values((3, 4), dtype, low, high)), ("axes", i64(-1))])

for op, opset, dtype in [("ArgMax", 10, np.float32), ("ArgMin", 10, np.float32), ("ArgMin", 11, np.float64),
                         ("ArgMin", 12, np.float16), ("ArgMax", 13, np.int64), ("ArgMax", 13, np.int32),
                         ("ArgMax", 13, np.uint8), ("ArgMin", 13, np.int32), ("ArgMin", 13, np.int8)]:
    case(f"{op.lower()}_opset{opset}_{label(dtype)}", op, opset, f"the version in effect at opset {opset}, {label(dtype)}",
         [("data", values((3, 5), dtype, 0 if dtype == np.uint8 else -9, 9))], {"axis": 1, "keepdims": 0})

# --- Shape and indexing -----------------------------------------------------------------------

for opset in (21, 23, 24):
    case(f"pad_opset{opset}_edge", "Pad", opset, f"Pad-{opset}, edge mode with axes",
         [("data", values((2, 3), np.float32)), ("pads", i64(1, 2, 2, 0)), ("constant_value", None), ("axes", i64(0, 1))],
         {"mode": "edge"})
case("pad_int32_axes", "Pad", 18, "int32 axes", [("data", values((2, 3), np.float32)), ("pads", i64(1, 1)),
                                                  ("constant_value", np.array(0.5, np.float32)), ("axes", np.array([-1], np.int32))])
for dtype in (np.float64, np.int64, np.int32, np.uint8):
    case(f"tile_{label(dtype)}", "Tile", 13, f"{label(dtype)}", [("input", values((2, 3), dtype, 0, 9)), ("repeats", i64(2, 2))])
for dtype in (np.float64, np.int8, np.uint8):
    case(f"scatternd_{label(dtype)}", "ScatterND", 16, f"{label(dtype)} data", [
        ("data", values((4, 3), dtype, 0, 9)), ("indices", i64(2, 0).reshape(2, 1)), ("updates", values((2, 3), dtype, 0, 9))])
for dtype in (np.float16, np.int64, np.int32, np.int8):
    case(f"scatter_elements_{label(dtype)}", "ScatterElements", 18, f"{label(dtype)} data", [
        ("data", values((3, 3), dtype)), ("indices", i64(1, 0, 2, 2, 1, 0).reshape(2, 3)), ("updates", values((2, 3), dtype))])
for dtype in (np.float64, np.int64, np.int32, np.int8, np.uint8):
    case(f"gather_elements_{label(dtype)}", "GatherElements", 13, f"{label(dtype)} data", [
        ("data", values((3, 4), dtype, 0, 9)), ("indices", i64(3, 0, 1, 1, 2, 0).reshape(2, 3))], {"axis": 1})
for dtype in (np.float16, np.int8):
    case(f"gathernd_{label(dtype)}", "GatherND", 13, f"{label(dtype)} data", [
        ("data", values((3, 4), dtype)), ("indices", i64(2, 1, 0, 3).reshape(2, 2))])
for indices, depth, on_off in [(np.float64, np.float64, np.float64), (np.int8, np.float16, np.int8),
                               (np.uint8, np.int8, np.uint8), (np.int64, np.uint8, np.float32), (np.int64, np.int64, np.float32),
                               (np.int64, np.int64, np.int32)]:
    on = np.array([0, 1], dtype=on_off) if on_off == np.bool_ else np.array([2, 7], dtype=on_off)
    case(f"onehot_{label(indices)}_{label(depth)}_{label(on_off)}", "OneHot", 11,
         f"{label(indices)} indices, {label(depth)} depth, {label(on_off)} values",
         [("indices", np.array([[0, 2], [3, 1]], dtype=indices)), ("depth", np.array(4, dtype=depth)), ("values", on)], {"axis": -1})
for dtype in (np.float32, np.int32, np.uint8):
    case(f"trilu_{label(dtype)}", "Trilu", 14, f"{label(dtype)}, upper from k = 1",
         [("input", values((3, 4), dtype, 0, 9)), ("k", np.array(1, dtype=np.int64))])
for dtype in (np.float64, np.int32, np.uint8):
    case(f"nonzero_{label(dtype)}", "NonZero", 13, f"{label(dtype)}", [("X", values((3, 4), dtype, -1, 1))])
for dtype in (np.float64, np.int32, np.int8, np.uint8, np.bool_):
    case(f"depthtospace_{label(dtype)}", "DepthToSpace", 13, f"{label(dtype)}, DCR",
         [("input", values((1, 8, 2, 3), dtype, 0, 9))], {"blocksize": 2})
case("depthtospace_opset11_crd", "DepthToSpace", 11, "DepthToSpace-11 (mode arrives): CRD",
     [("input", values((1, 8, 2, 2), np.float32))], {"blocksize": 2, "mode": "CRD"})
for dtype in (np.float64, np.float16, np.int64, np.int32, np.int8):
    case(f"spacetodepth_{label(dtype)}", "SpaceToDepth", 13, f"{label(dtype)}", [("input", values((1, 2, 4, 6), dtype))],
         {"blocksize": 2})
for opset, dtype in [(10, np.float64), (19, np.int32), (24, np.uint8)]:
    case(f"size_opset{opset}_{label(dtype)}", "Size", opset, f"the version in effect at opset {opset}, {label(dtype)}",
         [("data", values((2, 3, 4), dtype, 0, 9))])
for dtype in (np.int8, np.uint8):
    case(f"einsum_{label(dtype)}", "Einsum", 12, f"{label(dtype)} batched product",
         [("x0", values((2, 2, 3), dtype, 0, 3)), ("x1", values((2, 3, 2), dtype, 0, 3))], {"equation": "bij,bjk->bik"})

# --- Resampling -------------------------------------------------------------------------------

# Whole scales: the reference evaluator's nearest Upsample takes no others, and onnxruntime has
# no float64, int64 or bool kernel for it.
scales = np.array([1, 1, 2, 3], dtype=np.float32)
for dtype in (np.float64, np.float16, np.int64, np.int32, np.int8, np.uint8, np.bool_):
    case(f"upsample_opset9_{label(dtype)}", "Upsample", 9, f"{label(dtype)}, nearest",
         [("X", values((1, 1, 2, 3), dtype, 0, 9)), ("scales", scales)], {"mode": "nearest"})
for dtype in (np.float64, np.int64):
    case(f"resize_opset19_{label(dtype)}", "Resize", 19, f"{label(dtype)}, nearest",
         [("X", values((1, 1, 2, 3), dtype, 0, 9)), ("roi", None), ("scales", scales)], {"mode": "nearest"})
# No axis keeps its length: onnxruntime copies an axis of scale 1 even under tf_crop_and_resize,
# ignoring its roi (the spec and the reference evaluator crop it).
for dtype in (np.float64, np.float16):
    case(f"resize_roi_{label(dtype)}", "Resize", 19, f"{label(dtype)} X and roi, tf_crop_and_resize", [
        ("X", values((1, 1, 3, 4), dtype)), ("roi", np.array([0, 0, 0.25, 0.5, 1, 1, 0.75, 1], dtype=dtype)), ("scales", None),
        ("sizes", i64(1, 1, 2, 3))], {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"})

# --- Convolution and normalization ------------------------------------------------------------

case("convtranspose_opset10_version1", "ConvTranspose", 10, "ConvTranspose-1: stride 2, pads",
     [("X", values((1, 2, 3, 3), np.float32)), ("W", values((2, 3, 2, 2), np.float32)), ("B", values((3,), np.float32))],
     {"strides": [2, 2], "pads": [0, 1, 1, 0]})
case("convtranspose_float64", "ConvTranspose", 22, "float64, stride 2",
     [("X", values((1, 2, 3, 3), np.float64)), ("W", values((2, 3, 3, 3), np.float64))], {"strides": [2, 2]})
for opset, dtype in [(10, np.float32), (22, np.float64), (22, np.float16)]:
    case(f"instancenorm_opset{opset}_{label(dtype)}", "InstanceNormalization", opset, f"the version at opset {opset}, {label(dtype)}",
         [("input", values((2, 3, 4), dtype)), ("scale", values((3,), dtype, 0.5, 2)), ("B", values((3,), dtype))])
case("groupnorm_float16", "GroupNormalization", 21, "float16", [
    ("X", values((2, 4, 3), np.float16)), ("scale", values((4,), np.float16, 0.5, 2)), ("bias", values((4,), np.float16))],
    {"num_groups": 2})
for opset, dtype in [(10, np.float32), (13, np.float64), (13, np.float16)]:
    # onnxruntime has no float64 LRN, and the reference evaluator's departs from the spec's formula
    # (by 0.84 on these values); PyTorch's local_response_norm is that formula.
    oracle = (lambda x: F.local_response_norm(x, 3, alpha=0.5, beta=0.75, k=2.0),
              "F.local_response_norm(x, 3, alpha=0.5, beta=0.75, k=2.0)",
              "onnxruntime has no float64 LRN; onnx.reference's departs from the spec formula") if dtype == np.float64 else None
    case(f"lrn_opset{opset}_{label(dtype)}", "LRN", opset, f"the version at opset {opset}, {label(dtype)}",
         [("X", values((1, 5, 2, 2), dtype))], {"size": 3, "alpha": 0.5, "beta": 0.75, "bias": 2.0}, torch_reference=oracle)
for opset, dtype in [(10, np.float32), (22, np.float64), (22, np.float16)]:
    case(f"lpnorm_opset{opset}_{label(dtype)}", "LpNormalization", opset, f"the version at opset {opset}, {label(dtype)}",
         [("input", values((3, 4), dtype))], {"axis": -1, "p": 2})
# (No float64 or float16 MeanVarianceNormalization: no runtime computes one; see tools/op_coverage.md.)
for dtype in (np.float64, np.float16):
    case(f"batchnorm_training_{label(dtype)}", "BatchNormalization", 15, f"training_mode=1, {label(dtype)}", [
        ("X", values((4, 3), dtype)), ("scale", values((3,), dtype, 0.5, 2)), ("B", values((3,), dtype)),
        ("input_mean", values((3,), dtype)), ("input_var", values((3,), dtype, 0.5, 2))],
        {"training_mode": 1, "momentum": 0.75}, outputs=3)
for opset, dtype in [(10, np.float32), (22, np.float64), (22, np.float16)]:
    case(f"globalmaxpool_opset{opset}_{label(dtype)}", "GlobalMaxPool", opset, f"the version at opset {opset}, {label(dtype)}",
         [("X", values((2, 3, 2, 3), dtype))])

# --- Recurrent: the versions before 22 and float64 ----------------------------------------------


def recurrent(op: str, opset: int, dtype, gates: int, hidden: int = 3, steps: int = 3, batch: int = 2, features: int = 2):
    weights = [("W", values((1, gates * hidden, features), dtype, -1, 1)), ("R", values((1, gates * hidden, hidden), dtype, -1, 1)),
               ("B", values((1, 2 * gates * hidden), dtype, -1, 1))]
    case(f"{op.lower()}_opset{opset}_{label(dtype)}", op, opset, f"the version at opset {opset}, {label(dtype)}",
         [("X", values((steps, batch, features), dtype, -1, 1))] + weights, {"hidden_size": hidden}, outputs=2)


for op, gates in (("GRU", 3), ("RNN", 1)):
    recurrent(op, 7, np.float32, gates)
    recurrent(op, 14, np.float32, gates)
for op, gates in (("LSTM", 4), ("GRU", 3), ("RNN", 1)):
    recurrent(op, 22, np.float64, gates)
recurrent("RNN", 22, np.float16, 1)

# --- Quantization: float16 scales in the opset-23 signature ------------------------------------

case("quantizelinear_opset23_float16_scale", "QuantizeLinear", 23, "float16 x and y_scale (T2 from opset 23)",
     [("x", values((2, 4), np.float16)), ("y_scale", np.array(0.25, np.float16)), ("y_zero_point", np.array(3, np.int8))])

# --- Col2Im: the element types and attribute mixes the node tests (float32, one sample) leave out --


def col2im(name, what, x, image, block, attrs, **options):
    case(name, "Col2Im", 18, what, [("input", x), ("image_shape", i64(*image)), ("block_shape", i64(*block))], attrs,
         **options)


# 2x2 blocks at stride 1 over a 3x3 image padded by 1: 16 positions, most pixels sum four entries
# (so int8 and uint8 over their whole range wrap, and bool combines by or).
for dtype in (np.float64, np.float16, np.int64, np.int32, np.int8, np.uint8, np.bool_):
    low, high = (-128, 127) if dtype == np.int8 else (0, 255) if dtype == np.uint8 else (-3, 3)
    col2im(f"col2im_{label(dtype)}", f"{label(dtype)}, overlapping 2x2 blocks, pads", values((2, 2 * 4, 16), dtype, low, high),
           [3, 3], [2, 2], {"pads": [1, 1, 1, 1]})
col2im("col2im_strides_dilations_uneven_pads", "two samples of 3 channels, strides, dilations, uneven pads",
       values((2, 3 * 6, 12), np.float32), [5, 6], [2, 3], {"strides": [2, 1], "dilations": [1, 2], "pads": [1, 0, 0, 2]})
# onnxruntime 1.32's Col2Im over 3 spatial axes gets dilations wrong (off by up to 10.5 here, on
# 68 of 120 values); the reference evaluator agrees with PyTorch's conv_transpose3d of one-hot weights.
col2im("col2im_3d_mixed", "3 spatial axes with strides, dilations, uneven pads", values((2, 2 * 4, 18), np.float32),
       [3, 4, 5], [2, 1, 2], {"strides": [1, 2, 2], "dilations": [1, 1, 2], "pads": [1, 0, 0, 0, 1, 1]},
       numpy_reference="onnxruntime's 3-D Col2Im mishandles dilations; PyTorch's conv_transpose3d agrees with this")
col2im("col2im_gradient", "float64 with strides, dilations, pads; PyTorch's fold gradient", values((2, 2 * 6, 18), np.float64),
       [5, 6], [2, 3], {"strides": [2, 1], "dilations": [2, 1], "pads": [1, 1, 1, 1]}, rng=RNG,
       gradient=(lambda x: F.fold(x, (5, 6), (2, 3), dilation=(2, 1), padding=(1, 1), stride=(2, 1)),
                 "F.fold(x, (5, 6), (2, 3), dilation=(2, 1), padding=(1, 1), stride=(2, 1))"))
