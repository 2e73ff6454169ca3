"""Activation, math, logic and LogSoftmax cases: attribute defaults and the opset-dependent forms the
upstream node tests leave out (LeakyRelu's alpha 0.01, HardSigmoid's 0.2/0.5, Selu's constants,
Shrink's lambd/bias, IsInf's detect flags, LogSoftmax's axis before and after opset 13,
Min/Max/Sum/Mean before and after broadcasting arrived in opset 8, integer forms), and the backward
rules at their kinks and ties, where finite differences cannot judge them, against PyTorch autograd
in float64 (HardSigmoid/HardSwish at their bends, LeakyRelu/PRelu/Elu/Abs at 0, ThresholdedRelu at
alpha, Shrink at ±lambd, Max/Min with two and three tied inputs, the step functions at their jumps,
LogSoftmax's axis forms)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from op_cases import case

RNG = np.random.default_rng(11)
F32_SIXTH = float(np.float32(1) / np.float32(6))  # HardSwish's alpha in its ONNX function body


def forward(name: str, op: str, opset: int, inputs: list[np.ndarray], **attributes) -> None:
    case(name, op, opset, FORWARD_WHAT.get(op, "the forms the node tests leave out"),
         [(f"x{k}", a) for k, a in enumerate(inputs)], attributes)


def gradient(name: str, op: str, opset: int, inputs: list[np.ndarray], torch_fn, description: str, **attributes) -> None:
    """`torch_fn(*tensors)` is PyTorch's version of the op; its autograd gives the golden gradients
    with respect to every input. The upstream gradient is drawn here, in definition order."""
    tensors = [torch.tensor(a, dtype=torch.float64) for a in inputs]
    seed = RNG.uniform(-1, 1, size=tuple(torch_fn(*tensors).shape))
    case(name, op, opset, f"gradient at kinks and ties against {description}", [(f"x{k}", a) for k, a in enumerate(inputs)],
         attributes, gradient=(torch_fn, description), wrt=len(inputs), upstream=seed,
         torch_forward_differs=TORCH_FORWARD_DIFFERS.get(name))


def f32(*values) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def f64(*values) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def forward_cases() -> None:
    x = RNG.uniform(-4, 4, size=(2, 3, 4)).astype(np.float32)
    wide = np.concatenate([RNG.uniform(-6, 6, size=20), [-3, 3, 0, -2.5, 2.5]]).astype(np.float32)
    special = f32(-np.inf, -2, -0.0, 0, 1.5, np.inf, np.nan)
    # Attribute defaults (no attribute set) and explicit values, old and new opsets.
    forward("leakyrelu_default_opset6", "LeakyRelu", 6, [x])
    forward("leakyrelu_default_opset16", "LeakyRelu", 16, [x])
    forward("leakyrelu_alpha_opset16", "LeakyRelu", 16, [x], alpha=0.1)
    forward("leakyrelu_default_float64", "LeakyRelu", 16, [x.astype(np.float64)])
    forward("leakyrelu_default_float16", "LeakyRelu", 16, [x.astype(np.float16)])
    forward("hardsigmoid_default_opset6", "HardSigmoid", 6, [wide])
    forward("hardsigmoid_alpha_beta_opset22", "HardSigmoid", 22, [wide], alpha=0.5, beta=0.6)
    forward("hardswish_opset14", "HardSwish", 14, [wide])
    forward("hardswish_float64", "HardSwish", 14, [wide.astype(np.float64)])
    forward("selu_default_opset6", "Selu", 6, [x])
    forward("selu_alpha_gamma_opset22", "Selu", 22, [x], alpha=2.0, gamma=3.0)
    forward("elu_default_opset6", "Elu", 6, [x])
    forward("elu_alpha_opset22", "Elu", 22, [x], alpha=0.5)
    forward("celu_default_opset12", "Celu", 12, [x])
    forward("celu_alpha_opset12", "Celu", 12, [x], alpha=2.0)
    forward("thresholdedrelu_default_opset10", "ThresholdedRelu", 10, [f32(-2, 0, 0.5, 1, 1.0000001, 3)])
    forward("thresholdedrelu_alpha_opset22", "ThresholdedRelu", 22, [f32(-2, -0.5, 0, 0.5, 1, 3)], alpha=-0.5)
    forward("shrink_default_opset9", "Shrink", 9, [f32(-2, -0.5, -0.3, 0, 0.3, 0.5, 0.7, 2)])
    forward("shrink_lambd_bias_opset9", "Shrink", 9, [f32(-3, -1.5, -1, -0.2, 0, 1, 1.5, 3)], lambd=1.0, bias=0.4)
    forward("shrink_int8_opset9", "Shrink", 9, [np.array([-100, -3, -2, -1, 0, 1, 2, 3, 100], np.int8)], lambd=1.5, bias=1.5)
    forward("shrink_int32_opset9", "Shrink", 9, [np.array([-7, -2, -1, 0, 1, 2, 7], np.int32)], lambd=1.0, bias=0.5)
    forward("softplus_large_opset7", "Softplus", 7, [f32(-100, -30, -1, 0, 1, 30, 88, 100)])
    forward("softsign_opset7", "Softsign", 7, [x])
    forward("mish_opset18", "Mish", 18, [wide])
    # IsInf's flags: both (default), negative only, positive only, neither.
    forward("isinf_default_opset10", "IsInf", 10, [special])
    forward("isinf_negative_opset10", "IsInf", 10, [special], detect_positive=0)
    forward("isinf_positive_opset10", "IsInf", 10, [special], detect_negative=0)
    forward("isinf_neither_opset10", "IsInf", 10, [special], detect_negative=0, detect_positive=0)
    forward("isinf_float64_opset10", "IsInf", 10, [special.astype(np.float64)], detect_positive=0)
    forward("isnan_opset9", "IsNaN", 9, [special])
    # LogSoftmax: flattened at axis (default 1) before opset 13, one axis (default -1) from 13 on.
    forward("logsoftmax_default_opset7", "LogSoftmax", 7, [x])
    forward("logsoftmax_default_opset11", "LogSoftmax", 11, [x])
    forward("logsoftmax_axis0_opset11", "LogSoftmax", 11, [x], axis=0)
    forward("logsoftmax_axis_negative_opset11", "LogSoftmax", 11, [x], axis=-1)
    forward("logsoftmax_default_opset13", "LogSoftmax", 13, [x])
    forward("logsoftmax_axis1_opset13", "LogSoftmax", 13, [x], axis=1)
    forward("logsoftmax_float64_opset13", "LogSoftmax", 13, [x.astype(np.float64)], axis=0)
    # Variadic ops: equal shapes at opset 7, broadcasting from 8, integers for Max/Min from 12.
    forward("max_opset7", "Max", 7, [x, x[::-1].copy(), -x])
    forward("max_broadcast_opset8", "Max", 8, [x, x[0, :, :1].copy(), f32(0.5)])
    forward("max_int32_opset13", "Max", 13, [np.array([[1, -5, 7]], np.int32), np.array([[3], [-9]], np.int32)])
    forward("min_nan_opset13", "Min", 13, [f32(1, np.nan, 3, -np.inf), f32(2, 0, np.nan, 5)])
    forward("min_broadcast_opset8", "Min", 8, [x, x[:, :1, :].copy()])
    forward("sum_opset7", "Sum", 7, [x, x * 2, x - 1])
    forward("sum_broadcast_opset8", "Sum", 8, [x, x[0, :, :1].copy(), f32(0.25)])
    forward("mean_opset7", "Mean", 7, [x, x * 3])
    forward("mean_broadcast_opset13", "Mean", 13, [x, x[0].copy(), f32(1.5), x[:, :, :1].copy()])
    # Comparisons: floats (NaN compares false) since opset 7, integers since 9, the OrEqual forms since 12.
    forward("greater_opset7", "Greater", 7, [f32(1, 2, np.nan, -1), f32(0, 2, 1, np.nan)])
    forward("greater_int32_opset9", "Greater", 9, [np.array([[1, 5, -3]], np.int32), np.array([[2], [-3]], np.int32)])
    forward("less_int64_opset13", "Less", 13, [np.array([1, 5, -3], np.int64), np.array([5], np.int64)])
    forward("greater_or_equal_opset12", "GreaterOrEqual", 12, [f32(1, 2, np.nan, -1), f32(0, 2, 1, np.nan)])
    forward("less_or_equal_uint8_opset16", "LessOrEqual", 16, [np.array([0, 7, 255], np.uint8), np.array([7], np.uint8)])
    # PRelu: per-channel slope as exporters write it; integers since opset 9.
    forward("prelu_channel_opset7", "PRelu", 7, [x, RNG.uniform(0, 0.5, size=(3, 1)).astype(np.float32)])
    forward("prelu_int32_opset9", "PRelu", 9, [np.array([[-4, 0, 5], [3, -2, -1]], np.int32), np.array([2, -3, 1], np.int32)])
    forward("prelu_int64_opset16", "PRelu", 16, [np.array([-4, 0, 5, -7], np.int64), np.array([3], np.int64)])
    # Math ops' integer and rounding forms.
    forward("round_halves_opset11", "Round", 11, [f32(-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4999998, -0.4)])
    forward("sign_int32_opset9", "Sign", 9, [np.array([-7, 0, 3], np.int32)])
    forward("sign_float_opset13", "Sign", 13, [f32(-2, -0.0, 0, 3, np.nan)])
    forward("abs_int8_opset6", "Abs", 6, [np.array([-127, -1, 0, 5, 127], np.int8)])
    forward("abs_int64_opset13", "Abs", 13, [np.array([-(2**40), -1, 0, 7], np.int64)])
    forward("reciprocal_opset6", "Reciprocal", 6, [f32(-4, -0.5, 0.25, 3, 1e-3)])


def gradient_cases() -> None:
    bends = f64(-4, -3, -2, -0.5, 0, 0.5, 2, 3, 4)
    jumps = f64(-1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2.5)
    a = f64(1, 2, 3, 0, -1, 4)
    b = f64(1, 2, -1, 5, -1, 4)
    c = f64(1, -7, 3, 0, -1, 9)
    sixth = F32_SIXTH
    # HardSigmoid with HardSwish's (float32) 1/6 against PyTorch's hardsigmoid (exact 1/6): 0 at the bends ±3.
    gradient("hardsigmoid_bends", "HardSigmoid", 6, [bends], F.hardsigmoid, "F.hardsigmoid", alpha=sixth, beta=0.5)
    gradient("hardswish_bends", "HardSwish", 14, [bends], F.hardswish, "F.hardswish")
    gradient("leakyrelu_at_zero", "LeakyRelu", 16, [bends], lambda t: F.leaky_relu(t, 0.25), "F.leaky_relu(x, 0.25)",
             alpha=0.25)
    gradient("prelu_at_zero", "PRelu", 16, [np.array([[-1, 0, 2], [0, -3, 0.5]]), f64(0.25, -0.5, 2)], F.prelu, "F.prelu")
    gradient("elu_at_zero", "Elu", 6, [bends], lambda t: F.elu(t, 0.5), "F.elu(x, 0.5)", alpha=0.5)
    # Celu takes float64 only from opset 28 (float32 before).
    gradient("celu_at_zero", "Celu", 28, [bends], lambda t: F.celu(t, 2.0), "F.celu(x, 2.0)", alpha=2.0)
    gradient("thresholdedrelu_at_alpha", "ThresholdedRelu", 10, [f64(-1, 0, 0.5, 1, 2)],
             lambda t: F.threshold(t, 0.5, 0.0), "F.threshold(x, 0.5, 0.0)", alpha=0.5)
    # Shrink with bias = lambd is PyTorch's softshrink, with bias 0 its hardshrink.
    gradient("shrink_soft_at_lambd", "Shrink", 9, [jumps], lambda t: F.softshrink(t, 0.5), "F.softshrink(x, 0.5)",
             lambd=0.5, bias=0.5)
    gradient("shrink_hard_at_lambd", "Shrink", 9, [jumps], lambda t: F.hardshrink(t, 0.5), "F.hardshrink(x, 0.5)", lambd=0.5)
    gradient("abs_at_zero", "Abs", 13, [bends], torch.abs, "torch.abs")
    # Ties: PyTorch's maximum/minimum give each of two tied inputs half; amax/amin split k ways.
    gradient("max_two_ties", "Max", 13, [a, b], torch.maximum, "torch.maximum")
    gradient("min_two_ties", "Min", 13, [a, b], torch.minimum, "torch.minimum")
    gradient("max_three_ties", "Max", 13, [a, b, c], lambda *t: torch.amax(torch.stack(t), 0), "torch.amax(torch.stack(xs), 0)")
    gradient("min_three_ties", "Min", 13, [a, b, c], lambda *t: torch.amin(torch.stack(t), 0), "torch.amin(torch.stack(xs), 0)")
    # Step functions at and between their jumps: zero gradient everywhere.
    gradient("floor_jumps", "Floor", 13, [jumps], torch.floor, "torch.floor")
    gradient("ceil_jumps", "Ceil", 13, [jumps], torch.ceil, "torch.ceil")
    gradient("round_jumps", "Round", 11, [jumps], torch.round, "torch.round")
    gradient("sign_jumps", "Sign", 13, [jumps], torch.sign, "torch.sign")
    # LogSoftmax's axis forms against log_softmax on the equivalent view.
    gradient("logsoftmax_axis1_opset13_gradient", "LogSoftmax", 13, [RNG.normal(size=(2, 3, 4))],
             lambda t: F.log_softmax(t, 1), "F.log_softmax(x, 1)", axis=1)
    gradient("logsoftmax_default_opset11_gradient", "LogSoftmax", 11, [RNG.normal(size=(2, 3, 4))],
             lambda t: F.log_softmax(t.reshape(2, 12), 1).reshape(2, 3, 4), "F.log_softmax(x.reshape(2, 12), 1)")


# What each op's forward cases check, for the manifest.
FORWARD_WHAT = {
    "LeakyRelu": "alpha default (0.01) and set, old and new opsets, float types",
    "HardSigmoid": "alpha/beta defaults (0.2/0.5) and set",
    "HardSwish": "float32 and float64",
    "Selu": "alpha/gamma defaults and set",
    "Elu": "alpha default and set",
    "Celu": "alpha default and set",
    "ThresholdedRelu": "alpha default (1) and set, values at alpha",
    "Shrink": "lambd/bias defaults and set, integer forms",
    "Softplus": "large magnitudes without overflow",
    "Softsign": "float32",
    "Mish": "float32",
    "IsInf": "detect_negative/detect_positive flags",
    "IsNaN": "NaN among infinities and signed zeros",
    "LogSoftmax": "axis default and set, flattened before opset 13, one axis from 13",
    "Max": "equal shapes (opset 7), broadcasting (8), integers (12+), NaN",
    "Min": "equal shapes (opset 7), broadcasting (8), integers (12+), NaN",
    "Sum": "equal shapes (opset 7) and broadcasting (8)",
    "Mean": "equal shapes (opset 7) and broadcasting (8)",
    "Greater": "floats with NaN (opset 7), integers (9)",
    "Less": "integers",
    "GreaterOrEqual": "floats with NaN (opset 12)",
    "LessOrEqual": "uint8",
    "PRelu": "per-channel slope, integer forms (opset 9+)",
    "Round": "halves round to even",
    "Sign": "integers, signed zero and NaN",
    "Abs": "integer forms",
    "Reciprocal": "float32",
}

# Where PyTorch's function is not exactly the ONNX node's (the gradient golden still holds).
TORCH_FORWARD_DIFFERS = {
    "hardsigmoid_bends": "PyTorch's hardsigmoid has alpha exactly 1/6, the node HardSwish's float32 1/6",
    "hardswish_bends": "PyTorch's hardswish divides by 6 exactly; the ONNX function body multiplies by float32 1/6",
}


forward_cases()
gradient_cases()
