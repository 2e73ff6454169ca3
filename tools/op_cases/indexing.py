"""Reduction and indexing cases: the opsets, attribute defaults and element types the upstream node
tests leave out (axes as an attribute before opset 18, TopK's k attribute before 10, ArgMax before
select_last_index, DepthToSpace before mode; float16, float64, int64, int32, int8, uint8, bool),
negative and duplicate indices, empty results, and the points where a backward rule has to choose
(ties, zeros, NaN), against PyTorch autograd in float64."""
from __future__ import annotations

import numpy as np
import torch

from op_cases import case

RNG = np.random.default_rng(11)


def rand(shape, dtype=np.float32, low=-2.0, high=2.0):
    """Seeded values; integers are drawn from [low, high] inclusive."""
    if np.issubdtype(dtype, np.integer):
        return RNG.integers(int(low), int(high) + 1, size=shape).astype(dtype)
    if dtype == np.bool_:
        return RNG.integers(0, 2, size=shape).astype(np.bool_)
    return RNG.uniform(low, high, size=shape).astype(dtype)


def i64(*values):
    return np.array(values, dtype=np.int64)


# onnxruntime's max/min kernels skip NaN (comparisons with NaN are false); NumPy, PyTorch and the
# ONNX reference propagate it, and so do we.
NAN_RULE = "onnxruntime skips NaN where NumPy, PyTorch and the ONNX reference propagate it"


# --- Reductions over axes -------------------------------------------------------------------

x234 = rand((2, 3, 4))
case("reduce_max_opset13_axes_attribute_int8", "ReduceMax", 13, "axes as an attribute, keepdims default 1, int8",
     [("data", rand((2, 3, 4), np.int8, -100, 100))], {"axes": [1]})
case("reduce_min_opset11_all_axes_no_keepdims_int32", "ReduceMin", 11, "no axes: all of them; keepdims 0; int32",
     [("data", rand((2, 3, 4), np.int32, -1000, 1000))], {"keepdims": 0})
case("reduce_max_opset18_noop_with_empty_axes_float64", "ReduceMax", 18, "noop_with_empty_axes: identity",
     [("data", rand((2, 3), np.float64)), ("axes", np.array([], dtype=np.int64))], {"noop_with_empty_axes": 1})
case("reduce_min_opset18_negative_axes_uint8", "ReduceMin", 18, "axes input with a negative axis, uint8",
     [("data", rand((2, 3, 4), np.uint8, 0, 255)), ("axes", i64(0, -1))])
case("reduce_max_opset20_float16", "ReduceMax", 20, "float16", [("data", rand((3, 5), np.float16)), ("axes", i64(1))])
case("reduce_max_int64_beyond_double_precision", "ReduceMax", 18, "int64 values past 2^53 stay exact",
     [("data", np.array([[2**62 + 1, 2**62 + 3], [-(2**62) - 1, -(2**62) - 3]], dtype=np.int64)), ("axes", i64(1))])
case("reduce_prod_opset13_axes_attribute_int64", "ReduceProd", 13, "axes attribute, int64",
     [("data", rand((2, 3, 2), np.int64, -5, 5))], {"axes": [0, 2], "keepdims": 0})
case("reduce_prod_opset11_float16", "ReduceProd", 11, "all axes of a float16 tensor",
     [("data", rand((2, 3), np.float16, 0.5, 1.5))])
case("reduce_l1_opset13_axes_attribute_int32", "ReduceL1", 13, "axes attribute, int32",
     [("data", rand((3, 4), np.int32, -50, 50))], {"axes": [-1]})
case("reduce_l1_opset18_noop_takes_magnitudes", "ReduceL1", 18, "noop_with_empty_axes still takes |x|",
     [("data", rand((2, 3))), ("axes", np.array([], dtype=np.int64))], {"noop_with_empty_axes": 1})
case("reduce_l2_opset11_float64_all_axes", "ReduceL2", 11, "all axes, float64", [("data", rand((2, 3, 2), np.float64))])
case("reduce_l2_opset18_noop_takes_magnitudes", "ReduceL2", 18, "noop_with_empty_axes: sqrt(x²) = |x|",
     [("data", rand((2, 3))), ("axes", np.array([], dtype=np.int64))], {"noop_with_empty_axes": 1})
case("reduce_l2_int64_truncates", "ReduceL2", 18, "int64: the root truncated toward zero",
     [("data", rand((2, 5), np.int64, -9, 9)), ("axes", i64(1))])
case("reduce_l2_float16_feature_map", "ReduceL2", 18, "float16 over a channel axis, as F.normalize exports",
     [("data", rand((1, 4, 3, 3), np.float16)), ("axes", i64(1))])
case("reduce_log_sum_exp_opset13_large_values", "ReduceLogSumExp", 13, "axes attribute; values near 1000 do not overflow",
     [("data", (rand((2, 4), np.float64) + 1000))], {"axes": [1], "keepdims": 0})
case("reduce_log_sum_exp_opset18_noop_is_identity", "ReduceLogSumExp", 18, "noop_with_empty_axes: log(exp(x)) = x",
     [("data", rand((2, 3))), ("axes", np.array([], dtype=np.int64))], {"noop_with_empty_axes": 1})
case("reduce_log_sum_exp_float16", "ReduceLogSumExp", 18, "float16", [("data", rand((2, 6), np.float16)), ("axes", i64(-1))])
case("reduce_sum_square_opset13_axes_attribute_int32", "ReduceSumSquare", 13, "axes attribute, int32",
     [("data", rand((2, 3, 4), np.int32, -20, 20))], {"axes": [0, 2]})
case("reduce_sum_square_opset18_noop_squares", "ReduceSumSquare", 18, "noop_with_empty_axes still squares",
     [("data", rand((2, 3))), ("axes", np.array([], dtype=np.int64))], {"noop_with_empty_axes": 1})
case("reduce_sum_square_float16", "ReduceSumSquare", 18, "float16", [("data", rand((3, 4), np.float16)), ("axes", i64(0))])
case("reduce_sum_opset11_axes_attribute_int64", "ReduceSum", 11, "axes attribute before opset 13, int64",
     [("data", rand((2, 3, 4), np.int64, -100, 100))], {"axes": [1], "keepdims": 0})
case("reduce_sum_opset13_noop_with_empty_axes", "ReduceSum", 13, "axes input since 13, empty with noop",
     [("data", rand((2, 3))), ("axes", np.array([], dtype=np.int64))], {"noop_with_empty_axes": 1})
case("reduce_mean_opset18_int32_truncates", "ReduceMean", 18, "int32 mean truncated toward zero",
     [("data", rand((2, 5), np.int32, -9, 9)), ("axes", i64(1))])

# --- ArgMax / ArgMin / TopK -----------------------------------------------------------------

ties = np.array([[3, 1, 3, 0], [2, 2, 2, 2], [-1, 5, 0, 5]], dtype=np.int8)
case("argmax_opset11_default_axis_float16", "ArgMax", 11, "axis default 0, keepdims default 1, float16",
     [("data", rand((3, 4), np.float16))])
case("argmax_opset12_ties_first_index_int8", "ArgMax", 12, "ties go to the first index by default", [("data", ties)], {"axis": 1})
case("argmax_opset12_ties_last_index_int8", "ArgMax", 12, "select_last_index", [("data", ties)],
     {"axis": 1, "select_last_index": 1})
case("argmin_opset13_ties_last_index_no_keepdims_uint8", "ArgMin", 13, "select_last_index, keepdims 0, uint8",
     [("data", ties.astype(np.uint8) % 3)], {"axis": -1, "keepdims": 0, "select_last_index": 1})
case("argmin_opset13_int64_axis0", "ArgMin", 13, "int64 along axis 0", [("data", rand((3, 4), np.int64, -3, 3))])
case("argmax_opset13_float64_middle_axis", "ArgMax", 13, "float64, middle axis, keepdims 0",
     [("data", rand((2, 5, 3), np.float64))], {"axis": 1, "keepdims": 0})
case("argmax_nan_wins", "ArgMax", 13, "NaN counts as the largest (NumPy's argmax)",
     [("data", np.array([[1, np.nan, 3, np.nan], [4, 2, 9, 0]], dtype=np.float32))], {"axis": 1}, numpy_reference=NAN_RULE)
case("argmin_nan_wins", "ArgMin", 13, "NaN counts as the smallest too (NumPy's argmin)",
     [("data", np.array([[1, np.nan, -3, 0], [4, 2, 9, 0]], dtype=np.float32))], {"axis": 1}, numpy_reference=NAN_RULE)
case("top_k_opset1_k_attribute", "TopK", 1, "k as an attribute; axis default -1",
     [("x", rand((3, 5)))], {"k": 2}, outputs=2)
case("top_k_opset10_k_input", "TopK", 10, "K as an input, before largest/sorted", [("x", rand((2, 6))), ("k", i64(3))],
     outputs=2)
case("top_k_opset11_smallest_ties_int32", "TopK", 11, "largest 0; equal values keep index order",
     [("x", np.array([[4, 1, 3, 1, 2, 1]], dtype=np.int32)), ("k", i64(4))], {"largest": 0}, outputs=2)
case("top_k_opset11_largest_ties_axis0_int8", "TopK", 11, "ties along axis 0, int8",
     [("x", ties.T.copy()), ("k", i64(2))], {"axis": 0}, outputs=2)
case("top_k_float16", "TopK", 11, "float16", [("x", rand((2, 7), np.float16)), ("k", i64(3))], outputs=2)
case("top_k_float64_k_zero", "TopK", 11, "k = 0: empty outputs", [("x", rand((2, 4), np.float64)), ("k", i64(0))],
     outputs=2)
case("top_k_uint8_whole_axis", "TopK", 24, "k = the axis extent, uint8", [("x", rand((2, 5), np.uint8, 0, 9)), ("k", i64(5))],
     outputs=2)

# --- CumSum ------------------------------------------------------------------------------------

case("cumsum_3d_exclusive_reverse", "CumSum", 14, "exclusive and reverse together, axis 1 of 3",
     [("x", rand((2, 3, 4))), ("axis", np.array(1, dtype=np.int32))], {"exclusive": 1, "reverse": 1})
case("cumsum_int64_axis_int32_tensor", "CumSum", 11, "int64 values, axis as an int32 scalar",
     [("x", rand((3, 4), np.int64, -100, 100)), ("axis", np.array(0, dtype=np.int32))])
case("cumsum_float64_reverse_negative_axis", "CumSum", 14, "reverse along axis -1, float64",
     [("x", rand((2, 5), np.float64)), ("axis", np.array(-1, dtype=np.int64))], {"reverse": 1})
case("cumsum_int32_exclusive", "CumSum", 14, "exclusive, int32", [("x", rand((4, 3), np.int32, -9, 9)),
                                                                  ("axis", np.array(0, dtype=np.int64))], {"exclusive": 1})
case("cumsum_float16", "CumSum", 14, "float16 (opset 14)", [("x", rand((2, 6), np.float16)), ("axis", np.array(1, dtype=np.int64))])

# --- Range, Size -------------------------------------------------------------------------------

case("range_int64_negative_delta_empty", "Range", 11, "start below limit with a negative delta: empty",
     [("start", np.array(1, dtype=np.int64)), ("limit", np.array(5, dtype=np.int64)), ("delta", np.array(-2, dtype=np.int64))])
case("range_int64_uneven_step", "Range", 11, "a step that does not divide the distance",
     [("start", np.array(-7, dtype=np.int64)), ("limit", np.array(10, dtype=np.int64)), ("delta", np.array(3, dtype=np.int64))])
case("range_float64_fractional", "Range", 11, "float64 with a fractional delta",
     [("start", np.array(0.5)), ("limit", np.array(-1.75)), ("delta", np.array(-0.25))])
case("size_bool_scalar", "Size", 13, "rank 0 has one element", [("data", np.array(True))])
case("size_empty_int8", "Size", 21, "an empty tensor has none", [("data", np.zeros((2, 0, 3), dtype=np.int8))])
case("size_float16", "Size", 25, "float16 at opset 25", [("data", rand((3, 4), np.float16))])

# --- Tile, DepthToSpace, SpaceToDepth, Trilu ---------------------------------------------------

case("tile_bool", "Tile", 13, "bool", [("input", rand((2, 3), np.bool_)), ("repeats", i64(2, 1))])
case("tile_int8_zero_repeat", "Tile", 6, "a zero repeat empties the axis", [("input", rand((2, 3), np.int8, -9, 9)),
                                                                              ("repeats", i64(0, 2))])
case("tile_float16_3d", "Tile", 13, "float16, every axis repeated", [("input", rand((2, 1, 3), np.float16)),
                                                                        ("repeats", i64(2, 3, 2))])
case("depthtospace_opset1_blocksize3", "DepthToSpace", 1, "before mode (DCR), blocksize 3",
     [("input", rand((1, 18, 2, 2)))], {"blocksize": 3})
case("depthtospace_crd_int64", "DepthToSpace", 13, "CRD, int64", [("input", rand((2, 8, 2, 3), np.int64, -99, 99))],
     {"blocksize": 2, "mode": "CRD"})
case("depthtospace_dcr_float16", "DepthToSpace", 13, "mode default DCR, float16", [("input", rand((1, 8, 2, 2), np.float16))],
     {"blocksize": 2})
case("spacetodepth_opset13_blocksize3_uint8", "SpaceToDepth", 13, "blocksize 3, uint8",
     [("input", rand((1, 2, 6, 3), np.uint8, 0, 255))], {"blocksize": 3})
case("spacetodepth_bool", "SpaceToDepth", 1, "bool", [("input", rand((2, 1, 4, 2), np.bool_))], {"blocksize": 2})
case("trilu_upper_bool_k_below", "Trilu", 14, "upper (default) from k = -1, bool",
     [("input", rand((4, 5), np.bool_)), ("k", np.array(-1, dtype=np.int64))])
case("trilu_lower_int64_batched_k_above", "Trilu", 14, "lower, k = 2, a batch of matrices",
     [("input", rand((2, 3, 4), np.int64, -9, 9)), ("k", np.array(2, dtype=np.int64))], {"upper": 0})
case("trilu_lower_float16_no_k", "Trilu", 14, "lower, k omitted (0), float16", [("input", rand((3, 3), np.float16))],
     {"upper": 0})
case("trilu_upper_k_past_the_columns_int8", "Trilu", 14, "k beyond the last column: all zero",
     [("input", rand((3, 4), np.int8, -9, 9)), ("k", np.array(10, dtype=np.int64))])
case("trilu_lower_k_past_the_rows_float64", "Trilu", 14, "k below the last row: all zero",
     [("input", rand((3, 4), np.float64)), ("k", np.array(-7, dtype=np.int64))], {"upper": 0})

# --- Gather / Scatter --------------------------------------------------------------------------

case("gather_elements_int32_indices_shorter_axes", "GatherElements", 13,
     "int32 indices, axis -1, index extents below data's",
     [("data", rand((3, 4))), ("indices", np.array([[0, -1], [3, 1]], dtype=np.int32))], {"axis": -1})
case("gather_elements_bool_axis0", "GatherElements", 11, "bool data, axis default 0",
     [("data", rand((3, 2), np.bool_)), ("indices", i64(2, 0, 1, 1, 0, 2).reshape(3, 2))])
case("gather_elements_float16", "GatherElements", 13, "float16, repeated indices",
     [("data", rand((2, 5), np.float16)), ("indices", i64(4, 4, 0, -5, 2, 2).reshape(2, 3))], {"axis": 1})
case("gathernd_opset11_slices_float64", "GatherND", 11, "before batch_dims: whole rows",
     [("data", rand((3, 2, 4), np.float64)), ("indices", i64(2, 1, 0, -1).reshape(2, 2))])
case("gathernd_batch_dims2_int64", "GatherND", 12, "batch_dims 2", [("data", rand((2, 3, 4), np.int64, -9, 9)),
                                                                      ("indices", i64(1, -1, 0, 2, 3, 0).reshape(2, 3, 1))],
     {"batch_dims": 2})
case("gathernd_batch_dims1_slices_uint8", "GatherND", 13, "batch_dims 1, slices of the remaining axes",
     [("data", rand((2, 3, 4), np.uint8, 0, 255)), ("indices", i64(2, 0, 1, 1).reshape(2, 2, 1))], {"batch_dims": 1})
case("gathernd_bool_elements", "GatherND", 13, "bool, full index tuples",
     [("data", rand((2, 3), np.bool_)), ("indices", i64(1, 2, 0, 0, -1, -3).reshape(3, 2))])
case("scatternd_opset11_float16_slices", "ScatterND", 11, "float16, whole-row updates",
     [("data", rand((4, 3), np.float16)), ("indices", i64(3, 0).reshape(2, 1)), ("updates", rand((2, 3), np.float16))])
case("scatternd_opset16_add_duplicates_int32", "ScatterND", 16, "reduction add folds duplicate indices in",
     [("data", rand((5,), np.int32, -9, 9)), ("indices", i64(1, 3, 1).reshape(3, 1)), ("updates", rand((3,), np.int32, -9, 9))],
     {"reduction": "add"})
case("scatternd_opset18_max_int64", "ScatterND", 18, "reduction max", [("data", rand((2, 3), np.int64, -9, 9)),
                                                                        ("indices", i64(0, 1, 1, 2, 0, 1).reshape(3, 2)),
                                                                        ("updates", rand((3,), np.int64, -9, 9))],
     {"reduction": "max"})
case("scatternd_window_mask", "ScatterND", 13, "Swin's shifted-window mask: a region of a zero map set to a count",
     [("data", np.zeros((1, 4, 4, 1), dtype=np.float32)),
      ("indices", np.array([[[[0, h, w] for w in range(2, 4)] for h in range(1, 4)]], dtype=np.int64)),
      ("updates", np.full((1, 3, 2, 1), 3.0, dtype=np.float32))])
case("scatternd_bool", "ScatterND", 13, "bool data", [("data", rand((3, 2), np.bool_)), ("indices", i64(-1).reshape(1, 1)),
                                                       ("updates", np.ones((1, 2), dtype=np.bool_))])
case("scatter_elements_opset11_int32_indices_negative_axis", "ScatterElements", 11, "int32 indices, negative axis and index",
     [("data", rand((2, 4))), ("indices", np.array([[-1, 0], [2, 1]], dtype=np.int32)), ("updates", rand((2, 2)))],
     {"axis": -1})
case("scatter_elements_opset16_add_duplicates_float64", "ScatterElements", 16, "reduction add with duplicates",
     [("data", rand((3, 2), np.float64)), ("indices", i64(0, 2, 0, 2).reshape(2, 2)), ("updates", rand((2, 2), np.float64))],
     {"reduction": "add"})
case("scatter_elements_opset18_min_uint8", "ScatterElements", 18, "reduction min, uint8",
     [("data", rand((2, 3), np.uint8, 0, 255)), ("indices", i64(1, 1, 0).reshape(1, 3)), ("updates", rand((1, 3), np.uint8, 0, 255))],
     {"reduction": "min"})
case("scatter_elements_bool", "ScatterElements", 13, "bool data, axis default 0",
     [("data", rand((2, 2), np.bool_)), ("indices", i64(1, 0).reshape(1, 2)), ("updates", np.array([[True, False]]))])

# --- OneHot, NonZero ---------------------------------------------------------------------------

case("onehot_opset9_axis0_int32_indices_int64_values", "OneHot", 9, "axis 0, int32 indices, float depth, int64 values",
     [("indices", np.array([[0, 2], [1, 3]], dtype=np.int32)), ("depth", np.array(4.0, dtype=np.float32)),
      ("values", np.array([-1, 7], dtype=np.int64))], {"axis": 0})
case("onehot_opset11_negative_and_outside_rank1_depth", "OneHot", 11,
     "negative indices count from depth; outside ones stay off; depth as a 1-element vector",
     [("indices", i64(-1, -3, 5, -4, 0)), ("depth", np.array([3], dtype=np.int64)), ("values", np.array([0, 9], dtype=np.int64))])
case("onehot_float16_values_middle_axis", "OneHot", 11, "float16 values, float16 indices, axis 1",
     [("indices", np.array([[1, 0, 2]], dtype=np.float16)), ("depth", np.array(3, dtype=np.int32)),
      ("values", np.array([0.5, 2.0], dtype=np.float16))], {"axis": 1})
case("nonzero_float32_3d_signed_zero", "NonZero", 13, "3-D float32; -0.0 is zero",
     [("X", np.array([[[0, -0.0], [1.5, 0]], [[-2, 0], [0, 3]]], dtype=np.float32))])
case("nonzero_int8", "NonZero", 9, "int8", [("X", rand((3, 4), np.int8, -1, 1))])
case("nonzero_all_zero_int64", "NonZero", 13, "nothing nonzero: [rank, 0]", [("X", np.zeros((2, 3), dtype=np.int64))])
case("nonzero_float16", "NonZero", 13, "float16", [("X", np.array([0, 1, 0, -2], dtype=np.float16))])

# --- Gradients at the points where the rule chooses (PyTorch autograd, float64) ----------------

maxima = np.array([[1, 3, 3, 0], [2, 2, 2, 2], [0.5, -1, 4, 2]], dtype=np.float64)
case("grad_reduce_max_ties_split_evenly", "ReduceMax", 18, "ties share the gradient evenly, as torch.amax",
     [("data", maxima), ("axes", i64(1))], rng=RNG, gradient=(lambda x: torch.amax(x, dim=1, keepdim=True), "torch.amax(x, dim=1, keepdim=True)"))
case("grad_reduce_min_ties_opset13", "ReduceMin", 13, "ties share the gradient evenly, as torch.amin; axes attribute",
     [("data", -maxima)], {"axes": [1], "keepdims": 0}, rng=RNG, gradient=(lambda x: torch.amin(x, dim=1), "torch.amin(x, dim=1)"))
case("grad_reduce_max_nan_row", "ReduceMax", 18, "a NaN maximum gives NaN gradients in its row, as torch.amax",
     [("data", np.array([[1, np.nan, 2], [0, 4, 1]], dtype=np.float64)), ("axes", i64(1))],
     rng=RNG, gradient=(lambda x: torch.amax(x, dim=1, keepdim=True), "torch.amax(x, dim=1, keepdim=True)"), numpy_reference=NAN_RULE)
case("grad_reduce_l2_zero_row", "ReduceL2", 18, "an all-zero row gets gradient 0, as torch.linalg.vector_norm",
     [("data", np.array([[0, 0, 0], [3, -4, 0]], dtype=np.float64)), ("axes", i64(1))],
     rng=RNG, gradient=(lambda x: torch.linalg.vector_norm(x, dim=1, keepdim=True), "torch.linalg.vector_norm(x, dim=1, keepdim=True)"))
case("grad_reduce_l2_all_zero", "ReduceL2", 13, "all axes of an all-zero tensor",
     [("data", np.zeros((2, 2), dtype=np.float64))], {"keepdims": 0},
     rng=RNG, gradient=(lambda x: torch.linalg.vector_norm(x), "torch.linalg.vector_norm(x)"))
case("grad_reduce_l1_zeros", "ReduceL1", 18, "zeros get gradient 0 (sign(0) = 0), as torch.linalg.vector_norm(ord=1)",
     [("data", np.array([[0, -2, 1], [0, 0, 0]], dtype=np.float64)), ("axes", i64(1))],
     rng=RNG, gradient=(lambda x: torch.linalg.vector_norm(x, ord=1, dim=1, keepdim=True),
               "torch.linalg.vector_norm(x, ord=1, dim=1, keepdim=True)"))
case("grad_reduce_prod_zeros", "ReduceProd", 18, "rows with no, one and two zeros, as torch.prod",
     [("data", np.array([[2, 3, -1], [2, 0, 5], [0, 4, 0]], dtype=np.float64)), ("axes", i64(1))],
     rng=RNG, gradient=(lambda x: torch.prod(x, dim=1, keepdim=True), "torch.prod(x, dim=1, keepdim=True)"))
case("grad_reduce_prod_all_axes_one_zero", "ReduceProd", 13, "all axes with one zero", [("data", np.array(
    [[1.5, -2], [0, 3]], dtype=np.float64))], {"keepdims": 0}, rng=RNG, gradient=(lambda x: torch.prod(x), "torch.prod(x)"))
case("grad_reduce_log_sum_exp_minus_infinity", "ReduceLogSumExp", 18, "-inf entries get gradient 0, as torch.logsumexp",
     [("data", np.array([[-np.inf, 0, 1], [2, -np.inf, -np.inf]], dtype=np.float64)), ("axes", i64(1))],
     rng=RNG, gradient=(lambda x: torch.logsumexp(x, dim=1, keepdim=True), "torch.logsumexp(x, dim=1, keepdim=True)"))
