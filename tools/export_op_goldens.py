#!/usr/bin/env python3
"""Golden values for the activation, math, logic and LogSoftmax ops beyond the upstream node tests.

Two kinds of case, each a one-node ONNX model in Fixtures/ops/<case>/:

  forward   attribute defaults and the opset-dependent forms the ONNX backend node tests leave
            out (LeakyRelu's alpha 0.01, HardSigmoid's 0.2/0.5, Selu's constants, Shrink's
            lambd/bias, IsInf's detect flags, LogSoftmax's axis before and after opset 13,
            Min/Max/Sum/Mean before and after broadcasting arrived in opset 8, integer forms).
            Files: model.onnx, input_K.pb, output_K.pb. Outputs come from onnxruntime (CPU, graph
            optimisations off); where onnxruntime has no kernel for the case, from the ONNX
            reference evaluator (the manifest says which).
  gradient  the backward rules at their kinks and ties, where finite differences cannot judge
            them, against PyTorch autograd in float64 (HardSigmoid/HardSwish at their bends,
            LeakyRelu/PRelu/Elu/Abs at 0, ThresholdedRelu at alpha, Shrink at +-lambd, Max/Min
            with two and three tied inputs, the step functions at their jumps, LogSoftmax's
            axis forms). Files: model.onnx, input_K.pb, seed.pb (the upstream gradient of
            output 0), gradient_K.pb (d<seed, y>/d input K).

Writes Fixtures/ops/manifest.json (cases, sources, tool versions). The directory is regenerated
from scratch. Run with tools/.venv/bin/python tools/export_op_goldens.py
"""
from __future__ import annotations

import json
import platform
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import fixturelib as fl  # noqa: E402

OUT_DIR = fl.REPO_DIR / "Fixtures" / "ops"
RNG = np.random.default_rng(11)
F32_SIXTH = float(np.float32(1) / np.float32(6))  # HardSwish's alpha in its ONNX function body


def model(op: str, opset: int, inputs: list[np.ndarray], attributes: dict, n_outputs: int = 1) -> onnx.ModelProto:
    names = [f"x{k}" for k in range(len(inputs))]
    node = helper.make_node(op, names, [f"y{k}" for k in range(n_outputs)], **attributes)
    graph = helper.make_graph(
        [node], "case",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in zip(names, inputs)],
        [helper.make_empty_tensor_value_info(f"y{k}") for k in range(n_outputs)])
    # IR version 8 loads in every onnxruntime that runs these opsets.
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    # The outputs' types and shapes as the spec's inference gives them (strict: a bad case fails here).
    inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    known = {v.name: v for v in inferred.graph.value_info}
    del proto.graph.output[:]
    proto.graph.output.extend(known[f"y{k}"] for k in range(n_outputs))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def write(case_dir: Path, proto: onnx.ModelProto, tensors: dict[str, np.ndarray]) -> None:
    case_dir.mkdir(parents=True)
    (case_dir / "model.onnx").write_bytes(proto.SerializeToString())
    for name, array in tensors.items():
        (case_dir / f"{name}.pb").write_bytes(numpy_helper.from_array(np.asarray(array), name).SerializeToString())


def forward(name: str, op: str, opset: int, inputs: list[np.ndarray], **attributes) -> dict:
    proto = model(op, opset, inputs, attributes)
    feeds = {f"x{k}": a for k, a in enumerate(inputs)}
    try:
        outputs = fl.ort_session(proto.SerializeToString()).run(None, feeds)
        source = f"onnxruntime {onnxruntime.__version__}"
    except Exception as error:  # no kernel for this op/type/opset
        outputs = ReferenceEvaluator(proto).run(None, feeds)
        source = f"onnx.reference {onnx.__version__} (onnxruntime: {type(error).__name__})"
    tensors = {f"input_{k}": a for k, a in enumerate(inputs)} | {f"output_{k}": o for k, o in enumerate(outputs)}
    write(OUT_DIR / name, proto, tensors)
    return {"name": name, "kind": "forward", "op": op, "opset": opset,
            "attributes": attributes, "dtype": str(inputs[0].dtype), "source": source}


def gradient(name: str, op: str, opset: int, inputs: list[np.ndarray], torch_fn, **attributes) -> dict:
    """`torch_fn(*tensors)` is PyTorch's version of the op; its autograd gives the golden gradients."""
    proto = model(op, opset, inputs, attributes)
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in inputs]
    y = torch_fn(*tensors)
    seed = RNG.uniform(-1, 1, size=tuple(y.shape))
    grads = torch.autograd.grad(y, tensors, grad_outputs=torch.tensor(seed), allow_unused=True)
    files = {f"input_{k}": a for k, a in enumerate(inputs)} | {"seed": seed}
    for k, (g, a) in enumerate(zip(grads, inputs)):
        files[f"gradient_{k}"] = np.zeros_like(a) if g is None else g.numpy()
    write(OUT_DIR / name, proto, files)
    return {"name": name, "kind": "gradient", "op": op, "opset": opset,
            "attributes": attributes, "dtype": "float64", "source": f"torch {torch.__version__} autograd"}


def f32(*values) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def f64(*values) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def forward_cases() -> list[dict]:
    x = RNG.uniform(-4, 4, size=(2, 3, 4)).astype(np.float32)
    wide = np.concatenate([RNG.uniform(-6, 6, size=20), [-3, 3, 0, -2.5, 2.5]]).astype(np.float32)
    special = f32(-np.inf, -2, -0.0, 0, 1.5, np.inf, np.nan)
    cases = [
        # Attribute defaults (no attribute set) and explicit values, old and new opsets.
        forward("leakyrelu_default_opset6", "LeakyRelu", 6, [x]),
        forward("leakyrelu_default_opset16", "LeakyRelu", 16, [x]),
        forward("leakyrelu_alpha_opset16", "LeakyRelu", 16, [x], alpha=0.1),
        forward("leakyrelu_default_float64", "LeakyRelu", 16, [x.astype(np.float64)]),
        forward("leakyrelu_default_float16", "LeakyRelu", 16, [x.astype(np.float16)]),
        forward("hardsigmoid_default_opset6", "HardSigmoid", 6, [wide]),
        forward("hardsigmoid_alpha_beta_opset22", "HardSigmoid", 22, [wide], alpha=0.5, beta=0.6),
        forward("hardswish_opset14", "HardSwish", 14, [wide]),
        forward("hardswish_float64", "HardSwish", 14, [wide.astype(np.float64)]),
        forward("selu_default_opset6", "Selu", 6, [x]),
        forward("selu_alpha_gamma_opset22", "Selu", 22, [x], alpha=2.0, gamma=3.0),
        forward("elu_default_opset6", "Elu", 6, [x]),
        forward("elu_alpha_opset22", "Elu", 22, [x], alpha=0.5),
        forward("celu_default_opset12", "Celu", 12, [x]),
        forward("celu_alpha_opset12", "Celu", 12, [x], alpha=2.0),
        forward("thresholdedrelu_default_opset10", "ThresholdedRelu", 10, [f32(-2, 0, 0.5, 1, 1.0000001, 3)]),
        forward("thresholdedrelu_alpha_opset22", "ThresholdedRelu", 22, [f32(-2, -0.5, 0, 0.5, 1, 3)], alpha=-0.5),
        forward("shrink_default_opset9", "Shrink", 9, [f32(-2, -0.5, -0.3, 0, 0.3, 0.5, 0.7, 2)]),
        forward("shrink_lambd_bias_opset9", "Shrink", 9, [f32(-3, -1.5, -1, -0.2, 0, 1, 1.5, 3)], lambd=1.0, bias=0.4),
        forward("shrink_int8_opset9", "Shrink", 9, [np.array([-100, -3, -2, -1, 0, 1, 2, 3, 100], np.int8)], lambd=1.5, bias=1.5),
        forward("shrink_int32_opset9", "Shrink", 9, [np.array([-7, -2, -1, 0, 1, 2, 7], np.int32)], lambd=1.0, bias=0.5),
        forward("softplus_large_opset7", "Softplus", 7, [f32(-100, -30, -1, 0, 1, 30, 88, 100)]),
        forward("softsign_opset7", "Softsign", 7, [x]),
        forward("mish_opset18", "Mish", 18, [wide]),
        # IsInf's flags: both (default), negative only, positive only, neither.
        forward("isinf_default_opset10", "IsInf", 10, [special]),
        forward("isinf_negative_opset10", "IsInf", 10, [special], detect_positive=0),
        forward("isinf_positive_opset10", "IsInf", 10, [special], detect_negative=0),
        forward("isinf_neither_opset10", "IsInf", 10, [special], detect_negative=0, detect_positive=0),
        forward("isinf_float64_opset10", "IsInf", 10, [special.astype(np.float64)], detect_positive=0),
        forward("isnan_opset9", "IsNaN", 9, [special]),
        # LogSoftmax: flattened at axis (default 1) before opset 13, one axis (default -1) from 13 on.
        forward("logsoftmax_default_opset7", "LogSoftmax", 7, [x]),
        forward("logsoftmax_default_opset11", "LogSoftmax", 11, [x]),
        forward("logsoftmax_axis0_opset11", "LogSoftmax", 11, [x], axis=0),
        forward("logsoftmax_axis_negative_opset11", "LogSoftmax", 11, [x], axis=-1),
        forward("logsoftmax_default_opset13", "LogSoftmax", 13, [x]),
        forward("logsoftmax_axis1_opset13", "LogSoftmax", 13, [x], axis=1),
        forward("logsoftmax_float64_opset13", "LogSoftmax", 13, [x.astype(np.float64)], axis=0),
        # Variadic ops: equal shapes at opset 7, broadcasting from 8, integers for Max/Min from 12.
        forward("max_opset7", "Max", 7, [x, x[::-1].copy(), -x]),
        forward("max_broadcast_opset8", "Max", 8, [x, x[0, :, :1].copy(), f32(0.5)]),
        forward("max_int32_opset13", "Max", 13, [np.array([[1, -5, 7]], np.int32), np.array([[3], [-9]], np.int32)]),
        forward("min_nan_opset13", "Min", 13, [f32(1, np.nan, 3, -np.inf), f32(2, 0, np.nan, 5)]),
        forward("min_broadcast_opset8", "Min", 8, [x, x[:, :1, :].copy()]),
        forward("sum_opset7", "Sum", 7, [x, x * 2, x - 1]),
        forward("sum_broadcast_opset8", "Sum", 8, [x, x[0, :, :1].copy(), f32(0.25)]),
        forward("mean_opset7", "Mean", 7, [x, x * 3]),
        forward("mean_broadcast_opset13", "Mean", 13, [x, x[0].copy(), f32(1.5), x[:, :, :1].copy()]),
        # Comparisons: floats (NaN compares false) since opset 7, integers since 9, the OrEqual forms since 12.
        forward("greater_opset7", "Greater", 7, [f32(1, 2, np.nan, -1), f32(0, 2, 1, np.nan)]),
        forward("greater_int32_opset9", "Greater", 9, [np.array([[1, 5, -3]], np.int32), np.array([[2], [-3]], np.int32)]),
        forward("less_int64_opset13", "Less", 13, [np.array([1, 5, -3], np.int64), np.array([5], np.int64)]),
        forward("greater_or_equal_opset12", "GreaterOrEqual", 12, [f32(1, 2, np.nan, -1), f32(0, 2, 1, np.nan)]),
        forward("less_or_equal_uint8_opset16", "LessOrEqual", 16, [np.array([0, 7, 255], np.uint8), np.array([7], np.uint8)]),
        # PRelu: per-channel slope as exporters write it; integers since opset 9.
        forward("prelu_channel_opset7", "PRelu", 7, [x, RNG.uniform(0, 0.5, size=(3, 1)).astype(np.float32)]),
        forward("prelu_int32_opset9", "PRelu", 9, [np.array([[-4, 0, 5], [3, -2, -1]], np.int32), np.array([2, -3, 1], np.int32)]),
        forward("prelu_int64_opset16", "PRelu", 16, [np.array([-4, 0, 5, -7], np.int64), np.array([3], np.int64)]),
        # Math ops' integer and rounding forms.
        forward("round_halves_opset11", "Round", 11, [f32(-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4999998, -0.4)]),
        forward("sign_int32_opset9", "Sign", 9, [np.array([-7, 0, 3], np.int32)]),
        forward("sign_float_opset13", "Sign", 13, [f32(-2, -0.0, 0, 3, np.nan)]),
        forward("abs_int8_opset6", "Abs", 6, [np.array([-127, -1, 0, 5, 127], np.int8)]),
        forward("abs_int64_opset13", "Abs", 13, [np.array([-(2**40), -1, 0, 7], np.int64)]),
        forward("reciprocal_opset6", "Reciprocal", 6, [f32(-4, -0.5, 0.25, 3, 1e-3)]),
    ]
    return cases


def gradient_cases() -> list[dict]:
    bends = f64(-4, -3, -2, -0.5, 0, 0.5, 2, 3, 4)
    jumps = f64(-1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2.5)
    a = f64(1, 2, 3, 0, -1, 4)
    b = f64(1, 2, -1, 5, -1, 4)
    c = f64(1, -7, 3, 0, -1, 9)
    sixth = F32_SIXTH
    cases = [
        # HardSigmoid with HardSwish's (float32) 1/6 against PyTorch's hardsigmoid (exact 1/6): 0 at the bends ±3.
        gradient("hardsigmoid_bends", "HardSigmoid", 6, [bends], F.hardsigmoid, alpha=sixth, beta=0.5),
        gradient("hardswish_bends", "HardSwish", 14, [bends], F.hardswish),
        gradient("leakyrelu_at_zero", "LeakyRelu", 16, [bends], lambda t: F.leaky_relu(t, 0.25), alpha=0.25),
        gradient("prelu_at_zero", "PRelu", 16, [np.array([[-1, 0, 2], [0, -3, 0.5]]), f64(0.25, -0.5, 2)], F.prelu),
        gradient("elu_at_zero", "Elu", 6, [bends], lambda t: F.elu(t, 0.5), alpha=0.5),
        # Celu takes float64 only from opset 28 (float32 before).
        gradient("celu_at_zero", "Celu", 28, [bends], lambda t: F.celu(t, 2.0), alpha=2.0),
        gradient("thresholdedrelu_at_alpha", "ThresholdedRelu", 10, [f64(-1, 0, 0.5, 1, 2)],
                 lambda t: F.threshold(t, 0.5, 0.0), alpha=0.5),
        # Shrink with bias = lambd is PyTorch's softshrink, with bias 0 its hardshrink.
        gradient("shrink_soft_at_lambd", "Shrink", 9, [jumps], lambda t: F.softshrink(t, 0.5), lambd=0.5, bias=0.5),
        gradient("shrink_hard_at_lambd", "Shrink", 9, [jumps], lambda t: F.hardshrink(t, 0.5), lambd=0.5),
        gradient("abs_at_zero", "Abs", 13, [bends], torch.abs),
        # Ties: PyTorch's maximum/minimum give each of two tied inputs half; amax/amin split k ways.
        gradient("max_two_ties", "Max", 13, [a, b], torch.maximum),
        gradient("min_two_ties", "Min", 13, [a, b], torch.minimum),
        gradient("max_three_ties", "Max", 13, [a, b, c], lambda *t: torch.amax(torch.stack(t), 0)),
        gradient("min_three_ties", "Min", 13, [a, b, c], lambda *t: torch.amin(torch.stack(t), 0)),
        # Step functions at and between their jumps: zero gradient everywhere.
        gradient("floor_jumps", "Floor", 13, [jumps], torch.floor),
        gradient("ceil_jumps", "Ceil", 13, [jumps], torch.ceil),
        gradient("round_jumps", "Round", 11, [jumps], torch.round),
        gradient("sign_jumps", "Sign", 13, [jumps], torch.sign),
        # LogSoftmax's axis forms against log_softmax on the equivalent view.
        gradient("logsoftmax_axis1_opset13_gradient", "LogSoftmax", 13, [RNG.normal(size=(2, 3, 4))],
                 lambda t: F.log_softmax(t, 1), axis=1),
        gradient("logsoftmax_default_opset11_gradient", "LogSoftmax", 11, [RNG.normal(size=(2, 3, 4))],
                 lambda t: F.log_softmax(t.reshape(2, 12), 1).reshape(2, 3, 4)),
    ]
    return cases


def main() -> int:
    fl.quiet_warnings()
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True)
    cases = forward_cases() + gradient_cases()
    versions = {"python": platform.python_version(), "torch": torch.__version__, "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}
    manifest = {"generator": "tools/export_op_goldens.py", "generated": fl.now_iso(), "tools": versions, "cases": cases}
    (OUT_DIR / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    fallbacks = [c["name"] for c in cases if c["source"].startswith("onnx.reference")]
    size = sum(p.stat().st_size for p in OUT_DIR.rglob("*") if p.is_file())
    print(f"{len(cases)} cases, {size / 1e3:.0f} KB in {OUT_DIR}")
    print("from the ONNX reference evaluator (no onnxruntime kernel):", fallbacks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
