#!/usr/bin/env python3
"""Goldens for QuantizeLinear and DequantizeLinear beyond the upstream node tests.

1. Single-node cases (<case>/ packed in Fixtures/quantization/ops.tar.gz, the node-test layout:
   model.onnx + test_data_set_0/{input,output}_K.pb) at opsets 10, 13, 19, 21,
   23 and 25: per tensor, per axis (negative axis too), blocked with a
   remainder block, int8/uint8 outputs, int32 DequantizeLinear input, float16
   inputs and scales, output_dtype, precision, values exactly halfway between
   two quanta (rounding half to even) and values that saturate.  Outputs come
   from onnxruntime (CPU, optimisations off); where onnxruntime has no kernel
   for a case, from onnx's reference evaluator -- the manifest says which.
   Where both run, they must agree exactly (the script fails otherwise).
2. Straight-through-estimator goldens (Fixtures/quantization/ste/<case>/*.npy):
   PyTorch's fake_quantize_per_tensor_affine / fake_quantize_per_channel_affine
   (what a QuantizeLinear -> DequantizeLinear pair computes) and their autograd
   gradient for a random upstream gradient, with inputs that saturate.
3. A tiny ResNet-style net (torchvision BasicBlocks) exported with
   torch.onnx.export (TorchScript, opset 17), pre-processed with
   onnxruntime.quantization.quant_pre_process and quantized with
   quantize_static (QuantFormat.QDQ, calibrated on 8 seeded random inputs),
   per tensor (uint8 activations, int8 weights) and per channel (int8
   activations and weights): Fixtures/quantization/models/<name>.onnx with the
   input and onnxruntime's logits (optimisations off: Q/DQ run as written, as
   the spec defines them).  The logits of onnxruntime's optimised session
   (integer QLinear kernels) are compared in the manifest, for information.

Fixtures/quantization/manifest.json records the cases and tool versions (no
timestamp).  The directory is regenerated from scratch.

Run with tools/.venv/bin/python tools/export_quantization_goldens.py
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tvcompat import torchvision  # noqa: E402, F401  (must precede other torchvision users; fl.tool_versions reads it)

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from onnx import TensorProto, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static  # noqa: E402
from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: E402
from torchvision.models.resnet import BasicBlock  # noqa: E402

import fixturelib as fl  # noqa: E402

OUT_DIR = fl.REPO_DIR / "Fixtures" / "quantization"


# --------------------------------------------------------------------------- single-node cases


def halfway_and_saturating(rng, shape, scale, zero, lo, hi):
    """Float inputs with some values exactly halfway between quanta and some beyond the range."""
    q = rng.integers(lo - 20, hi + 20, size=shape)
    frac = rng.choice([0.0, 0.5, -0.5, 0.3, -0.3], size=shape)
    return ((q - zero + frac) * scale).astype(np.float32)


def quantize_cases(rng):
    cases = []

    def add(name, op, opset, inputs, attrs=None, note=""):
        cases.append(dict(name=name, op=op, opset=opset, inputs=inputs, attrs=attrs or {}, note=note))

    s, z = np.float32(0.05), np.uint8(128)
    add("q_per_tensor_uint8_opset10", "QuantizeLinear", 10,
        [halfway_and_saturating(rng, [3, 8], 0.05, 128, 0, 255), np.array(s), np.array(z)],
        note="halfway values round to even; both ends saturate")
    add("q_per_tensor_int8_opset13", "QuantizeLinear", 13,
        [halfway_and_saturating(rng, [2, 3, 5], 0.02, -7, -128, 127), np.array(0.02, np.float32), np.array(-7, np.int8)])
    add("q_no_zero_point_opset13", "QuantizeLinear", 13,
        [halfway_and_saturating(rng, [4, 6], 0.1, 0, 0, 255), np.array(0.1, np.float32)], note="uint8 by default")
    scales = np.array([0.02, 0.05, 0.1], np.float32)
    zeros = np.array([-3, 0, 10], np.int8)
    x = np.stack([halfway_and_saturating(rng, [2, 4], sc, zp, -128, 127) for sc, zp in zip(scales, zeros)], axis=1)
    add("q_per_axis_int8_opset13", "QuantizeLinear", 13, [x, scales, zeros])
    add("q_per_axis_negative_axis_uint8_opset19", "QuantizeLinear", 19,
        [np.moveaxis(x, 1, -1).copy(), scales, np.array([100, 128, 0], np.uint8)], attrs=dict(axis=-1))
    add("q_float16_opset19", "QuantizeLinear", 19,
        [halfway_and_saturating(rng, [3, 4], 0.125, 3, -128, 127).astype(np.float16), np.array(0.125, np.float16),
         np.array(3, np.int8)], note="float16 x and scale: the quotient rounds to float16 first")
    blocked_scale = rng.uniform(0.02, 0.1, [2, 3, 3]).astype(np.float32)
    add("q_blocked_remainder_uint8_opset21", "QuantizeLinear", 21,
        [rng.standard_normal([2, 5, 3]).astype(np.float32) * 4, blocked_scale,
         rng.integers(0, 256, [2, 3, 3]).astype(np.uint8)], attrs=dict(axis=1, block_size=2),
        note="block 2 over an axis of 5: the last block holds one index")
    add("q_output_dtype_int8_opset21", "QuantizeLinear", 21,
        [halfway_and_saturating(rng, [5, 3], 0.04, 0, -128, 127), np.array(0.04, np.float32)], attrs=dict(output_dtype=3))
    add("q_precision_float16_opset23", "QuantizeLinear", 23,
        [(rng.standard_normal([4, 5]) * 3).astype(np.float32), np.array(0.0371, np.float32), np.array(-2, np.int8)],
        attrs=dict(precision=TensorProto.FLOAT16))
    add("q_per_axis_uint8_opset24", "QuantizeLinear", 24,
        [np.moveaxis(x, 1, 0).copy(), scales, np.array([0, 128, 255], np.uint8)], attrs=dict(axis=0))
    add("q_per_axis_int8_opset25", "QuantizeLinear", 25, [x, scales, zeros], attrs=dict(axis=1))
    add("q_int32_input_opset10", "QuantizeLinear", 10,
        [rng.integers(-400, 400, [3, 4]).astype(np.int32), np.array(3.0, np.float32), np.array(10, np.int8)],
        note="int32 x (T1 of opsets 10-25)")

    q8 = rng.integers(-128, 128, [2, 3, 4]).astype(np.int8)
    add("dq_per_tensor_uint8_opset10", "DequantizeLinear", 10,
        [rng.integers(0, 256, [3, 5]).astype(np.uint8), np.array(0.07, np.float32), np.array(131, np.uint8)])
    add("dq_per_axis_int8_opset13", "DequantizeLinear", 13, [q8, scales, zeros])
    add("dq_int32_bias_opset13", "DequantizeLinear", 13,
        [rng.integers(-2**20, 2**20, [6]).astype(np.int32), np.array(0.0013, np.float32), np.array(0, np.int32)],
        note="int32 bias as quantize_static writes it")
    add("dq_int32_per_axis_opset13", "DequantizeLinear", 13,
        [rng.integers(-2**20, 2**20, [3]).astype(np.int32), scales, np.zeros(3, np.int32)], attrs=dict(axis=0))
    add("dq_float16_scale_opset19", "DequantizeLinear", 19,
        [q8, np.array([0.5, 0.25, 0.0625], np.float16), zeros])
    add("dq_blocked_remainder_int8_opset21", "DequantizeLinear", 21,
        [rng.integers(-128, 128, [2, 7]).astype(np.int8), rng.uniform(0.01, 0.2, [2, 3]).astype(np.float32),
         rng.integers(-20, 20, [2, 3]).astype(np.int8)], attrs=dict(axis=1, block_size=3))
    add("dq_blocked_size1_int8_opset21", "DequantizeLinear", 21,
        [q8, rng.uniform(0.01, 0.2, [2, 3, 4]).astype(np.float32), rng.integers(-20, 20, [2, 3, 4]).astype(np.int8)],
        attrs=dict(axis=2, block_size=1), note="block_size 1: one scale per element")
    add("dq_output_dtype_float16_opset23", "DequantizeLinear", 23,
        [q8, np.array(0.0123, np.float32), np.array(5, np.int8)], attrs=dict(output_dtype=TensorProto.FLOAT16))
    add("dq_blocked_uint8_opset24", "DequantizeLinear", 24,
        [rng.integers(0, 256, [4, 6]).astype(np.uint8), rng.uniform(0.01, 0.2, [2, 6]).astype(np.float32),
         rng.integers(0, 256, [2, 6]).astype(np.uint8)], attrs=dict(axis=0, block_size=2))
    add("dq_negative_axis_uint8_opset25", "DequantizeLinear", 25,
        [rng.integers(0, 256, [2, 4, 3]).astype(np.uint8), scales, np.array([1, 128, 255], np.uint8)], attrs=dict(axis=-1))
    return cases


def write_case(c, stage: Path) -> dict:
    """Writes the case under `stage` (packed into ops.tar.gz by main) and returns its manifest entry."""
    names = ["x", "scale", "zero_point"]
    model = fl.node_model(c["op"], c["opset"], list(zip(names, c["inputs"])), c["attrs"], ["y"], name=c["name"],
                          ir_version=10 if c["opset"] >= 21 else 8)
    onnx.checker.check_model(model)
    feeds = dict(zip(names, c["inputs"]))
    results, failures = {}, {}
    for source, run in [("onnxruntime", lambda: fl.ort_session(model.SerializeToString()).run(None, feeds)[0]),
                        ("onnx.reference", lambda: ReferenceEvaluator(model).run(None, feeds)[0])]:
        try:
            results[source] = run()
        except Exception as error:  # noqa: BLE001
            failures[source] = str(error).strip().splitlines()[0][:160]
    if not results:
        raise RuntimeError(f"{c['name']}: neither onnxruntime nor the reference evaluator runs it: {failures}")
    if len(results) == 2:
        ort, ref = results["onnxruntime"], results["onnx.reference"]
        if ort.dtype != ref.dtype or not np.array_equal(ort, ref):
            raise RuntimeError(f"{c['name']}: onnxruntime and the reference evaluator differ")
        golden, source = ort, "onnxruntime; onnx.reference agrees exactly"
    else:
        (name, golden), = results.items()
        other = next(iter(failures))
        source = f"{name} ({other} cannot run it: {failures[other]})"
    fl.write_node_case(stage / c["name"], model, c["inputs"], [("y", golden)])
    return dict(name=c["name"], op=c["op"], opset=c["opset"], attrs=c["attrs"], note=c["note"], golden=source,
                output_dtype=str(golden.dtype))


# --------------------------------------------------------------------------- straight-through estimator


def ste_cases(rng):
    x = torch.tensor(rng.standard_normal([2, 3, 4, 5]) * 3, dtype=torch.float32)
    upstream = torch.tensor(rng.uniform(-1, 1, [2, 3, 4, 5]), dtype=torch.float32)
    per_channel_scale = torch.tensor([0.02, 0.05, 0.03], dtype=torch.float32)
    return [
        dict(name="per_tensor_uint8", x=x, g=upstream, scale=torch.tensor(0.03), zero=torch.tensor(100, dtype=torch.int32),
             lo=0, hi=255, axis=None, dtype=np.uint8),
        dict(name="per_tensor_int8", x=x, g=upstream, scale=torch.tensor(0.025), zero=torch.tensor(-10, dtype=torch.int32),
             lo=-128, hi=127, axis=None, dtype=np.int8),
        dict(name="per_channel_int8", x=x, g=upstream, scale=per_channel_scale,
             zero=torch.tensor([0, 5, -5], dtype=torch.int32), lo=-128, hi=127, axis=1, dtype=np.int8),
    ]


def write_ste(c) -> dict:
    x = c["x"].clone().requires_grad_(True)
    if c["axis"] is None:
        y = torch.fake_quantize_per_tensor_affine(x, float(c["scale"]), int(c["zero"]), c["lo"], c["hi"])
    else:
        y = torch.fake_quantize_per_channel_affine(x, c["scale"], c["zero"], c["axis"], c["lo"], c["hi"])
    (y * c["g"]).sum().backward()
    dest = OUT_DIR / "ste" / c["name"]
    dest.mkdir(parents=True)
    for name, value in [("x", c["x"].numpy()), ("upstream", c["g"].numpy()), ("y", y.detach().numpy()),
                        ("gradient", x.grad.numpy()), ("scale", c["scale"].numpy().astype(np.float32).reshape(-1)),
                        ("zero_point", c["zero"].numpy().astype(c["dtype"]).reshape(-1))]:
        np.save(dest / f"{name}.npy", np.ascontiguousarray(value))
    saturated = int((x.grad == 0).sum())
    return dict(name=c["name"], axis=c["axis"], dtype=np.dtype(c["dtype"]).name, per_channel=c["axis"] is not None,
                saturated_elements=saturated, elements=int(x.numel()),
                torch_op="fake_quantize_per_channel_affine" if c["axis"] is not None else "fake_quantize_per_tensor_affine")


# --------------------------------------------------------------------------- QDQ ResNet


class TinyResNet(nn.Module):
    """A ResNet-style net from torchvision's BasicBlock: a conv stem, one block at 8 channels,
    one downsampling block to 16, global average pooling and a linear head (5 classes)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = BasicBlock(8, 8)
        self.layer2 = BasicBlock(
            8, 16, stride=2, downsample=nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class Calibration(CalibrationDataReader):
    """quantize_static's CalibrationDataReader over 8 seeded random images."""

    def __init__(self):
        rng = np.random.default_rng(20)
        self.batches = iter([{"input": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(8)])

    def get_next(self):
        return next(self.batches, None)


QDQ_MODELS = [
    ("resnet_qdq_per_tensor", False, "QUInt8"),
    ("resnet_qdq_per_channel", True, "QInt8"),
]


def write_qdq_models() -> list:
    torch.manual_seed(31)
    model = TinyResNet().eval()
    fl.randomize(model, torch.Generator().manual_seed(32))
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(33))
    entries = []
    (OUT_DIR / "models").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        float_path, prepared_path = Path(tmp) / "float.onnx", Path(tmp) / "prepared.onnx"
        with fl.captured_output():
            torch.onnx.export(model, (x,), str(float_path), dynamo=False, opset_version=17, input_names=["input"],
                              output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
            quant_pre_process(str(float_path), str(prepared_path))
        for name, per_channel, activation in QDQ_MODELS:
            path = OUT_DIR / "models" / f"{name}.onnx"
            with fl.captured_output():
                quantize_static(str(prepared_path), str(path), Calibration(), quant_format=QuantFormat.QDQ,
                                per_channel=per_channel, activation_type=getattr(QuantType, activation),
                                weight_type=QuantType.QInt8)
            proto = onnx.load(str(path))
            logits = fl.ort_session(path).run(None, {"input": x.numpy()})[0]
            optimized = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
                None, {"input": x.numpy()})[0]
            folder = OUT_DIR / "models" / name
            fl.save_npy(folder / "input.npy", x.numpy())
            fl.save_npy(folder / "logits.npy", logits)
            with torch.no_grad():
                float_logits = model(x).numpy()
            # The logits come out of a DequantizeLinear: multiples of its scale.
            last = next(n for n in proto.graph.node if "logits" in n.output)
            initializers = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
            logits_scale = float(initializers[last.input[1]]) if last.op_type == "DequantizeLinear" else None
            entries.append(dict(
                name=name, file=f"models/{name}.onnx", source=TinyResNet.__doc__.split("\n\n")[0].replace("\n    ", " "),
                exporter="torchscript", opset=17, per_channel=per_channel, activation_type=activation,
                weight_type="QInt8", quant_format="QDQ", calibration="8 inputs ~ N(0, 1), numpy default_rng(20)",
                ops=fl.op_histogram(proto), opsets=fl.opset_imports(proto), input=f"models/{name}/input.npy",
                logits=f"models/{name}/logits.npy", logits_scale=logits_scale,
                max_abs_optimized_ort_minus_golden=float(np.abs(optimized - logits).max()),
                max_abs_float_model_minus_golden=float(np.abs(float_logits - logits).max()),
                bytes=path.stat().st_size))
    return entries


def main() -> int:
    fl.quiet_warnings()
    fl.fresh_dir(OUT_DIR)
    rng = np.random.default_rng(2024)
    with tempfile.TemporaryDirectory() as stage:
        cases = [write_case(c, Path(stage)) for c in quantize_cases(rng)]
        fl.write_archive(Path(stage), OUT_DIR / "ops.tar.gz")
    ste = [write_ste(c) for c in ste_cases(np.random.default_rng(7))]
    models = write_qdq_models()
    manifest = {
        "generator": "tools/export_quantization_goldens.py",
        "tools": fl.tool_versions(),
        "onnxruntime_settings": fl.ORT_SETTINGS,
        "cases": cases,
        "ste": ste,
        "models": models,
    }
    total = fl.write_manifest(OUT_DIR, manifest)
    print(f"{len(cases)} cases, {len(ste)} STE goldens, {len(models)} models, {total / 1e3:.1f} KB in {OUT_DIR}")
    for c in cases:
        print(f"  {c['name']:45s} {c['golden'][:60]}")
    for m in models:
        print(f"  {m['name']}: {m['ops']} optimized-vs-golden {m['max_abs_optimized_ort_minus_golden']:.3g} "
              f"float-vs-golden {m['max_abs_float_model_minus_golden']:.3g} logits scale {m['logits_scale']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
