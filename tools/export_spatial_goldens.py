#!/usr/bin/env python3
"""Golden outputs from onnxruntime for single-node models of the spatial ops.

The ONNX backend node tests do not cover every combination these ops allow, so this script
builds small single-node models over a grid of attributes, runs them through onnxruntime (CPU,
graph optimisations off) and writes what it returns:

  Fixtures/spatial/resize.json  Resize and Upsample: every mode x coordinate transformation mode x
                            nearest mode over scales and sizes (up, down, mixed, to length 1),
                            plus antialias, exclude_outside, cubic_coeff_a, axes,
                            keep_aspect_ratio_policy, tf_crop_and_resize extrapolation, opsets
                            7/9/10/11/13/18/19, ranks 1 to 5 and non-float element types.
  Fixtures/spatial/spatial.json Pad, ConvTranspose, Einsum and the normalizations in the corners
                            the node tests miss (negative pads, auto_pad and output_shape
                            splits, ellipsis broadcasting, per-group scales, ...).

A case onnxruntime refuses (a combination its CPU kernels do not implement) is left out and
listed under "refused" with onnxruntime's message. Each file records the tool versions.
ResizeGoldenTests and SpatialGoldenTests (Tests/GraphEngineTests) rebuild each model in Swift
from the JSON description and compare.

Run with the project venv:  /work/main/tools/.venv/bin/python tools/export_spatial_goldens.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixturelib as fl  # noqa: E402

OUT_DIR = fl.REPO_DIR / "Fixtures" / "spatial"


def values(array: np.ndarray) -> list:
    """Exact values: floats as the double equal to the stored float (round-trips), ints as ints."""
    flat = np.asarray(array).reshape(-1)
    if flat.dtype == np.bool_:
        return [bool(v) for v in flat]
    if np.issubdtype(flat.dtype, np.integer):
        return [int(v) for v in flat]
    return [float(v) for v in flat.astype(np.float64)]


def attribute(value) -> dict:
    if isinstance(value, str):
        return {"type": "string", "value": value}
    if isinstance(value, float):
        return {"type": "float", "value": float(np.float32(value))}
    if isinstance(value, int):
        return {"type": "int", "value": value}
    if all(isinstance(v, int) for v in value):
        return {"type": "ints", "value": list(value)}
    return {"type": "floats", "value": [float(np.float32(v)) for v in value]}


def run_case(name, op, opset, inputs, attrs, outputs=1):
    """inputs: list of (name, array or None); None = omitted optional input. Returns a case dict, or
    (name, message) when onnxruntime refuses it."""
    model = fl.node_model(op, opset, inputs, attrs, outputs, name=name, ir_version=8 if opset < 21 else 10)
    try:
        session = fl.ort_session(model.SerializeToString())
        results = session.run(None, {n: a for n, a in inputs if a is not None})
    except Exception as error:  # noqa: BLE001 - onnxruntime raises several types
        return name, str(error).split("\n")[0][:300]

    def dtype(a):
        return "bool" if a.dtype == np.bool_ else str(a.dtype)
    return {
        "name": name, "op": op, "opset": opset,
        "attributes": {k: attribute(v) for k, v in attrs.items()},
        "inputs": [{"name": n if a is not None else ""} | ({} if a is None else
                   {"dtype": dtype(a), "shape": list(a.shape), "data": values(a)}) for n, a in inputs],
        "outputs": [{"dtype": dtype(r), "shape": list(r.shape), "data": values(r)} for r in results],
    }


def write(path: Path, description: str, cases: list) -> None:
    kept = [c for c in cases if isinstance(c, dict)]
    refused = [{"name": c[0], "onnxruntime": c[1]} for c in cases if not isinstance(c, dict)]
    doc = {"generator": "tools/export_spatial_goldens.py", "description": description,
           "tool_versions": fl.package_versions("numpy", "onnx", "onnxruntime"),
           "cases": kept, "refused": refused}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"{path.relative_to(fl.REPO_DIR)}: {len(kept)} cases, {len(refused)} refused, {path.stat().st_size / 1e3:.0f} KB")
    for r in refused:
        print(f"  refused {r['name']}: {r['onnxruntime'][:120]}")


def resize_cases() -> list:
    rng = np.random.default_rng(0)
    x = (rng.integers(-64, 64, size=(1, 1, 3, 4)) / 16).astype(np.float32)
    f32 = lambda v: np.array(v, dtype=np.float32)  # noqa: E731
    i64 = lambda v: np.array(v, dtype=np.int64)  # noqa: E731
    specs = {
        "up2": ("scales", f32([1, 1, 2, 2])),
        "down": ("scales", f32([1, 1, 0.6, 0.7])),
        "mixed": ("scales", f32([1, 1, 1.7, 0.8])),
        "sizes_up": ("sizes", i64([1, 1, 5, 7])),
        "sizes_down": ("sizes", i64([1, 1, 2, 3])),
        "sizes_one": ("sizes", i64([1, 1, 1, 1])),
    }
    roi = f32([0, 0, -0.2, 0.1, 1, 1, 1.3, 0.8])
    modes = [("nearest", m) for m in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")] + [("linear", None), ("cubic", None)]
    coordinates = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize"]
    cases = []

    def resize(name, data, opset=19, roi_=None, scales=None, sizes=None, **attrs):
        inputs = [("X", data), ("roi", roi_), ("scales", scales), ("sizes", sizes)]
        cases.append(run_case(name, "Resize", opset, inputs, attrs))

    for mode, nearest in modes:
        for coordinate in coordinates:
            for spec, (kind, value) in specs.items():
                attrs = {"mode": mode, "coordinate_transformation_mode": coordinate}
                if nearest:
                    attrs["nearest_mode"] = nearest
                if coordinate == "tf_crop_and_resize":
                    attrs["extrapolation_value"] = 7.5
                label = f"{mode}{'_' + nearest if nearest else ''}_{coordinate}_{spec}"
                resize(label, x, roi_=roi if coordinate == "tf_crop_and_resize" else None,
                       **{kind: value}, **attrs)
    # Filters: antialias, exclude_outside, cubic_coeff_a.
    wide = (rng.integers(-64, 64, size=(1, 2, 6, 7)) / 16).astype(np.float32)
    for mode in ("linear", "cubic"):
        for coordinate in ("half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel"):
            for spec, value in (("down", f32([1, 1, 0.5, 0.6])), ("strong", f32([1, 1, 0.34, 0.3])), ("up", f32([1, 1, 1.5, 2]))):
                resize(f"antialias_{mode}_{coordinate}_{spec}", wide, scales=value, mode=mode,
                       coordinate_transformation_mode=coordinate, antialias=1)
        resize(f"antialias_{mode}_sizes", wide, sizes=i64([1, 2, 3, 2]), mode=mode, antialias=1)
    for coordinate in ("half_pixel", "align_corners", "asymmetric"):
        for spec, value in (("down", f32([1, 1, 0.5, 0.6])), ("up", f32([1, 1, 1.5, 2.5]))):
            resize(f"cubic_exclude_outside_{coordinate}_{spec}", wide, scales=value, mode="cubic",
                   coordinate_transformation_mode=coordinate, exclude_outside=1, cubic_coeff_a=-0.5)
            resize(f"cubic_a_n0p5_{coordinate}_{spec}", wide, scales=value, mode="cubic",
                   coordinate_transformation_mode=coordinate, cubic_coeff_a=-0.5)
        resize(f"antialias_cubic_exclude_outside_{coordinate}", wide, scales=f32([1, 1, 0.5, 0.4]), mode="cubic",
               coordinate_transformation_mode=coordinate, antialias=1, exclude_outside=1)
    # Axes and aspect-ratio policies (opset 18+).
    resize("axes_2_3_scales_linear", wide, opset=18, scales=f32([0.6, 1.5]), axes=[2, 3], mode="linear")
    resize("axes_3_sizes_nearest", wide, opset=18, sizes=i64([10]), axes=[3], mode="nearest")
    resize("axes_neg_sizes_cubic", wide, opset=19, sizes=i64([4, 5]), axes=[-2, -1], mode="cubic")
    resize("axes_roi_tf_crop", wide, opset=19, roi_=f32([0.1, 0.3, 0.9, 1.2]), sizes=i64([4, 5]), axes=[2, 3],
           mode="linear", coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=-3.0)
    for policy in ("not_larger", "not_smaller"):
        for mode in ("nearest", "linear"):
            resize(f"policy_{policy}_{mode}", wide, opset=18, sizes=i64([4, 4]), axes=[2, 3], mode=mode,
                   keep_aspect_ratio_policy=policy)
        # With every axis resized, N and C scale too; onnxruntime's linear kernel takes that only
        # when the policy keeps their scale at 1.
        resize(f"policy_{policy}_nearest_all_axes", wide, opset=18, sizes=i64([1, 2, 9, 9]), mode="nearest",
               keep_aspect_ratio_policy=policy)
    # Older opsets.
    for opset in (11, 13):
        for mode in ("nearest", "linear", "cubic"):
            resize(f"opset{opset}_{mode}_half_pixel_scales", wide, opset=opset, roi_=f32([]), scales=f32([1, 1, 0.7, 1.4]),
                   mode=mode)
            # Opset 11 needs roi and scales present (empty); 13 lets them be omitted.
            empty = f32([]) if opset == 11 else None
            resize(f"opset{opset}_{mode}_sizes", wide, opset=opset, roi_=empty, scales=empty, sizes=i64([1, 2, 4, 9]),
                   mode=mode)
    for nearest in ("round_prefer_floor", "floor", "ceil"):
        resize(f"opset11_tf_half_pixel_for_nn_{nearest}", wide, opset=11, roi_=f32([]), scales=f32([1, 1, 1.5, 0.6]),
               mode="nearest", coordinate_transformation_mode="tf_half_pixel_for_nn", nearest_mode=nearest)
    for mode in ("nearest", "linear"):
        for spec, value in (("up", f32([1, 1, 2, 1.5])), ("down", f32([1, 1, 0.5, 0.6]))):
            cases.append(run_case(f"opset10_{mode}_{spec}", "Resize", 10, [("X", wide), ("scales", value)], {"mode": mode}))
        cases.append(run_case(f"upsample9_{mode}", "Upsample", 9, [("X", wide), ("scales", f32([1, 1, 2, 1.5]))], {"mode": mode}))
        cases.append(run_case(f"upsample7_{mode}", "Upsample", 7, [("X", wide)], {"mode": mode, "scales": [1.0, 1.0, 1.5, 3.0]}))
    # Other ranks and element types.
    resize("rank5_trilinear", (rng.integers(-64, 64, size=(1, 1, 2, 3, 4)) / 16).astype(np.float32),
           scales=f32([1, 1, 1.5, 2, 0.5]), mode="linear")
    resize("rank2_cubic", x[0, 0], scales=f32([2, 1.5]), mode="cubic")
    resize("rank2_linear_align_corners", x[0, 0], sizes=i64([5, 3]), mode="linear", coordinate_transformation_mode="align_corners")
    resize("rank1_nearest", np.arange(5, dtype=np.float32), scales=f32([1.6]), mode="nearest")
    resize("rank3_nearest_ceil", x[0], scales=f32([1, 2, 0.5]), mode="nearest", nearest_mode="ceil")
    resize("nchw_linear_channels", wide, scales=f32([1, 1, 2, 2]), mode="linear")
    resize("nchw_nearest_2x_asymmetric_floor", wide, scales=f32([1, 1, 2, 2]), mode="nearest",
           coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    ints = rng.integers(0, 200, size=(1, 1, 3, 4))
    resize("uint8_linear", ints.astype(np.uint8), scales=f32([1, 1, 1.5, 1.7]), mode="linear")
    resize("uint8_nearest", ints.astype(np.uint8), scales=f32([1, 1, 1.5, 1.7]), mode="nearest")
    resize("int8_linear", (ints - 100).astype(np.int8), sizes=i64([1, 1, 4, 6]), mode="linear")
    resize("int32_nearest", (ints * 1000 - 70000).astype(np.int32), scales=f32([1, 1, 2, 0.5]), mode="nearest")
    resize("float16_linear", x.astype(np.float16), scales=f32([1, 1, 1.7, 0.8]), mode="linear")
    resize("float16_nearest", x.astype(np.float16), scales=f32([1, 1, 1.7, 0.8]), mode="nearest")
    return cases


def spatial_cases() -> list:
    rng = np.random.default_rng(1)
    cases = []
    f32 = lambda v: np.array(v, dtype=np.float32)  # noqa: E731
    i64 = lambda v: np.array(v, dtype=np.int64)  # noqa: E731
    data = lambda *shape: (rng.integers(-64, 64, size=shape) / 16).astype(np.float32)  # noqa: E731

    # Pad: every mode with cropping, constant values, axes, the attribute form and other types.
    x = data(2, 3, 4)
    for mode in ("constant", "reflect", "edge", "wrap"):
        # Pads onnxruntime accepts in every mode (reflect: at most the cropped extent minus one).
        for label, pads in (("grow", [0, 1, 2, 0, 1, 1]), ("crop_begin", [0, -1, 1, 1, 1, -1]),
                            ("crop_end", [-1, 1, -1, 0, -1, 2]), ("crop_both", [0, -1, -1, 0, 1, -2])):
            cases.append(run_case(f"pad_{mode}_{label}", "Pad", 19, [("data", x), ("pads", i64(pads)),
                                  ("constant_value", f32(2.5) if mode == "constant" else None)], {"mode": mode}))
    cases.append(run_case("pad_wrap_longer_than_axis", "Pad", 19, [("data", x), ("pads", i64([0, 5, 7, 0, 4, 6]))], {"mode": "wrap"}))
    cases.append(run_case("pad_axes_negative", "Pad", 18, [("data", x), ("pads", i64([1, 2, 0, -1])), ("constant_value", f32(-1)),
                                                          ("axes", i64([-1, 1]))], {"mode": "constant"}))
    cases.append(run_case("pad_axes_reflect", "Pad", 18, [("data", x), ("pads", i64([2, 1])), ("constant_value", None),
                                                         ("axes", i64([2]))], {"mode": "reflect"}))
    cases.append(run_case("pad_opset2_attribute", "Pad", 2, [("data", x)], {"pads": [0, 1, 0, 1, 0, 2], "value": 1.5}))
    cases.append(run_case("pad_opset2_edge", "Pad", 2, [("data", x)], {"pads": [1, 0, 1, 0, 2, 0], "mode": "edge"}))
    cases.append(run_case("pad_opset11_reflect", "Pad", 11, [("data", x), ("pads", i64([0, 2, 1, 0, 1, 2]))], {"mode": "reflect"}))
    for dtype in ("int64", "int32", "int8", "uint8", "float64", "float16"):
        cases.append(run_case(f"pad_{dtype}_constant", "Pad", 13, [("data", (x * 16).astype(dtype)), ("pads", i64([0, 1, 1, 1, 0, 2])),
                                                                    ("constant_value", np.array(3, dtype=dtype))], {"mode": "constant"}))
        cases.append(run_case(f"pad_{dtype}_edge", "Pad", 13, [("data", (x * 16).astype(dtype)), ("pads", i64([1, 0, 1, 0, 1, 1]))],
                              {"mode": "edge"}))
    cases.append(run_case("pad_bool_constant", "Pad", 13, [("data", x > 0), ("pads", i64([0, 1, 1, 0, 0, 1])),
                                                           ("constant_value", np.array(True))], {"mode": "constant"}))

    # ConvTranspose: how auto_pad, output_shape, output_padding and pads split the padding.
    x1, w1 = data(1, 2, 5), data(2, 3, 3)
    for label, attrs in (
        ("stride2", {"strides": [2]}),
        ("same_upper_odd", {"strides": [2], "auto_pad": "SAME_UPPER"}),
        ("same_lower_odd", {"strides": [2], "auto_pad": "SAME_LOWER"}),
        ("same_upper_stride3", {"strides": [3], "auto_pad": "SAME_UPPER"}),
        ("valid", {"strides": [2], "auto_pad": "VALID"}),
        ("output_shape_odd", {"strides": [2], "output_shape": [10]}),
        ("output_shape_same_upper", {"strides": [2], "output_shape": [10], "auto_pad": "SAME_UPPER"}),
        ("output_shape_larger", {"strides": [2], "output_shape": [12]}),
        ("output_padding", {"strides": [3], "output_padding": [2], "pads": [1, 0]}),
        ("output_padding_shape", {"strides": [2], "output_padding": [1], "output_shape": [11]}),
        ("dilations_pads", {"dilations": [2], "pads": [2, 1]}),
    ):
        cases.append(run_case(f"convtranspose_1d_{label}", "ConvTranspose", 17, [("X", x1), ("W", w1), ("B", data(3))], attrs))
    x2 = data(2, 4, 3, 4)
    cases.append(run_case("convtranspose_2d_group_stride_dilation", "ConvTranspose", 17,
                          [("X", x2), ("W", data(4, 3, 2, 3)), ("B", data(6))],
                          {"group": 2, "strides": [2, 3], "dilations": [2, 1], "pads": [1, 0, 0, 2], "output_padding": [1, 2]}))
    cases.append(run_case("convtranspose_2d_depthwise_same_lower", "ConvTranspose", 17, [("X", x2), ("W", data(4, 1, 3, 3))],
                          {"group": 4, "strides": [2, 2], "auto_pad": "SAME_LOWER"}))
    cases.append(run_case("convtranspose_2d_kernel_shape_output_shape", "ConvTranspose", 11, [("X", x2), ("W", data(4, 2, 3, 2))],
                          {"kernel_shape": [3, 2], "strides": [2, 2], "output_shape": [6, 9]}))
    cases.append(run_case("convtranspose_3d", "ConvTranspose", 22, [("X", data(1, 2, 2, 3, 2)), ("W", data(2, 2, 2, 2, 3)), ("B", data(2))],
                          {"strides": [1, 2, 2], "pads": [0, 1, 1, 1, 0, 1]}))
    cases.append(run_case("convtranspose_float16", "ConvTranspose", 17,
                          [("X", x2.astype(np.float16)), ("W", data(4, 2, 2, 2).astype(np.float16))], {"strides": [2, 2]}))

    # Einsum: implicit output, ellipsis broadcasting, diagonals, sums, several operands, integers.
    for label, equation, shapes in (
        ("matmul_implicit", "ij,jk", [(2, 3), (3, 4)]),
        ("attention_scores", "bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
        ("attention_values", "bhqk,bhkd->bhqd", [(2, 3, 4, 6), (2, 3, 6, 5)]),
        ("channel_mix", "bchw,bkc->bkhw", [(2, 3, 4, 5), (2, 6, 3)]),
        ("ellipsis_broadcast", "...ij,...jk->...ik", [(2, 1, 3, 4), (1, 3, 4, 2)]),
        ("ellipsis_implicit", "...ij,jk", [(2, 3, 4), (4, 5)]),
        ("ellipsis_middle", "b...d,d->b...", [(2, 3, 4, 5), (5,)]),
        ("diagonal", "ii->i", [(4, 4)]),
        ("trace", "ii", [(4, 4)]),
        ("batch_diagonal_sum", "bii->b", [(3, 4, 4)]),
        ("diagonal_product", "iij,jk->ik", [(3, 3, 4), (4, 2)]),
        ("outer", "i,j->ij", [(3,), (4,)]),
        ("sum_all", "ijk->", [(2, 3, 4)]),
        ("private_sum", "ij,k->i", [(2, 3), (4,)]),
        ("transpose", "ijk->kji", [(2, 3, 4)]),
        ("three_operands", "ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
        ("bilinear", "bi,oij,bj->bo", [(2, 3), (4, 3, 5), (2, 5)]),
        ("spaces_uppercase", "Ab , bC -> AC", [(2, 3), (3, 4)]),
    ):
        operands = [(f"x{i}", data(*s)) for i, s in enumerate(shapes)]
        cases.append(run_case(f"einsum_{label}", "Einsum", 12, operands, {"equation": equation}))
    for dtype in ("int32", "int64", "float64", "float16"):
        operands = [("x0", (data(2, 3, 4) * 16).astype(dtype)), ("x1", (data(2, 4, 5) * 16).astype(dtype))]
        cases.append(run_case(f"einsum_batched_{dtype}", "Einsum", 12, operands, {"equation": "bij,bjk->bik"}))

    # Normalizations.
    x4 = data(2, 6, 3, 4)
    cases.append(run_case("groupnorm_opset18_per_group", "GroupNormalization", 18, [("X", x4), ("scale", data(3)), ("bias", data(3))],
                          {"num_groups": 3, "epsilon": 1e-3}))
    cases.append(run_case("groupnorm_opset21_per_channel", "GroupNormalization", 21, [("X", x4), ("scale", data(6)), ("bias", data(6))],
                          {"num_groups": 2}))
    cases.append(run_case("groupnorm_one_group", "GroupNormalization", 21, [("X", x4), ("scale", data(6)), ("bias", data(6))],
                          {"num_groups": 1}))
    cases.append(run_case("groupnorm_float64_3d", "GroupNormalization", 21,
                          [("X", data(2, 4, 5).astype(np.float64)), ("scale", data(4).astype(np.float64)), ("bias", data(4).astype(np.float64))],
                          {"num_groups": 2}))
    for label, shape in (("3d", (2, 3, 5)), ("5d", (1, 2, 2, 3, 2))):
        cases.append(run_case(f"instancenorm_{label}", "InstanceNormalization", 22,
                              [("input", data(*shape)), ("scale", data(shape[1])), ("B", data(shape[1]))], {"epsilon": 1e-2}))
    for axes in ([0, 2, 3], [2, 3], [1, 2, 3], [0, 1], [1], [3]):
        cases.append(run_case(f"mvn_axes_{'_'.join(map(str, axes))}", "MeanVarianceNormalization", 13, [("X", x4)], {"axes": axes}))
    cases.append(run_case("mvn_opset9_default", "MeanVarianceNormalization", 9, [("X", x4)], {}))
    for size in (1, 3, 5):  # onnxruntime takes odd sizes only
        cases.append(run_case(f"lrn_size{size}", "LRN", 13, [("X", x4)], {"size": size, "alpha": 0.5, "beta": 0.6, "bias": 1.5}))
    for p in (1, 2):
        for axis in (0, 1, -1):
            cases.append(run_case(f"lpnorm_p{p}_axis{axis}", "LpNormalization", 22, [("input", x4)], {"p": p, "axis": axis}))
    cases.append(run_case("lpnorm_zero_row", "LpNormalization", 22, [("input", np.array([[0, 0, 0], [3, -4, 0]], dtype=np.float32))], {"p": 2}))
    for opset in (14, 15):
        cases.append(run_case(f"batchnorm_training_opset{opset}", "BatchNormalization", opset,
                              [("X", x4), ("scale", data(6)), ("B", data(6)), ("input_mean", data(6)),
                               ("input_var", np.abs(data(6)) + 0.5)], {"training_mode": 1, "momentum": 0.7, "epsilon": 1e-3}, outputs=3))
    cases.append(run_case("batchnorm_training_rank2", "BatchNormalization", 15,
                          [("X", data(5, 3)), ("scale", data(3)), ("B", data(3)), ("input_mean", data(3)),
                           ("input_var", np.abs(data(3)) + 0.5)], {"training_mode": 1}, outputs=3))
    return cases


def main() -> int:
    write(OUT_DIR / "resize.json", "Resize and Upsample outputs of onnxruntime over a grid of attributes", resize_cases())
    write(OUT_DIR / "spatial.json", "Pad, ConvTranspose, Einsum and normalization outputs of onnxruntime", spatial_cases())
    return 0


if __name__ == "__main__":
    sys.exit(main())
