#!/usr/bin/env python3
"""Fixtures from non-torch exporters: Keras through tf2onnx, PaddlePaddle through paddle2onnx.

Run with the main venv (onnxruntime computes the goldens):

    tools/.venv/bin/python tools/export_exporter_fixtures.py

The models are built and exported by the exporters' own venv, tools/.venv-exporters
(tensorflow-cpu, tf2onnx, paddlepaddle, paddle2onnx: they pin numpy/protobuf/onnx
versions that clash with torch's, and TensorFlow and Paddle cannot even share a
process: importing both segfaults). Create it once with

    python3 -m venv tools/.venv-exporters
    tools/.venv-exporters/bin/pip install -r tools/requirements-exporters.txt

This script runs that venv's python on itself (`--worker keras|paddle DIR`) for each
framework, in its own process.

Fixtures (Fixtures/exporters/, regenerated from scratch; manifest.json records every
tool version):

  keras_mobilenetv3_op15   keras.applications.MobileNetV3Small(weights=None,
                           input_shape=(64, 64, 3), alpha=0.35, minimalistic=False,
                           include_top=False, pooling="avg", include_preprocessing=True)
                           + Dense(10), tf2onnx opset 15. NHWC input [unk__N, 64, 64, 3]
                           in [0, 255] (the Rescaling layer is in the graph), Keras's
                           NHWC<->NCHW Transposes around every convolution, explicit Pad
                           before the stride-2 depthwise convolutions, hard-swish and
                           hard-sigmoid written as Add/Clip/Mul.
  paddle_lcnet_op11        a PaddleClas-style net (PP-LCNet / MobileNetV3 blocks: Conv+BN+
  paddle_lcnet_op15        Hardswish, depthwise separable convolutions, an SE block with
                           hardsigmoid(slope=0.2, offset=0.5), a Conv2DTranspose + nearest
                           and bilinear interpolate to a tensor's size, as in PaddleDet/Seg
                           necks), paddle2onnx at opsets 11 (HardSwish as HardSigmoid*x,
                           Resize-11) and 15 (HardSwish), input [N?, 3, H?, W?] dynamic,
                           fed [2, 3, 48, 96].
  paddle_lcnet_op11_dims   the opset-11 export with its input declared [-1, 3, ?, ?] and its
                           output [-1, 10] (dim_value -1, then dims with neither value nor
                           name), as older paddle2onnx releases wrote them; derived with
                           onnx.helper, goldens are onnxruntime's on the derived file.
                           (paddle2onnx 2.1 still writes every weight as a Constant node,
                           its Polygraphy constant folding leaves no initializers.)

Weights: framework initialisation (seeded), with BatchNorm statistics and affine
parameters drawn away from identity (mean ~ N(0, 0.2^2), var ~ U(0.5, 1.5), gamma ~
U(0.5, 1.5), beta ~ N(0, 0.2^2)), as tools/fixturelib.randomize does for torch.

Goldens per fixture (Fixtures/exporters/<name>/):
  input.npy      the seeded input
  logits.npy     onnxruntime's output (CPU, graph optimisations off)
  features.npy   onnxruntime's value of the CAM tensor: the input of the last global
                 average pool (its name in manifest.json); checked against the
                 framework's own activation (the manifest records the difference)
  cam_raw.npy    GradCAM's layer-resolution map at that tensor, [N, h, w], from the
                 framework's autodiff (tf.GradientTape / paddle.grad): weights = mean
                 over space of d logit[class] / d features, map = sum over channels of
                 weights x features, before ReLU and scaling; classes = the framework's
                 argmax per sample (in the manifest)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

TOOLS_DIR = Path(__file__).resolve().parent
REPO_DIR = TOOLS_DIR.parent
OUT_DIR = REPO_DIR / "Fixtures" / "exporters"
EXPORTERS_PYTHON = TOOLS_DIR / ".venv-exporters" / "bin" / "python"
SEED = 2024


def rel(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-30))


def bn_values(rng, n):
    """(gamma, beta, mean, var) away from identity."""
    return (rng.uniform(0.5, 1.5, n).astype(np.float32), (rng.standard_normal(n) * 0.2).astype(np.float32),
            (rng.standard_normal(n) * 0.2).astype(np.float32), rng.uniform(0.5, 1.5, n).astype(np.float32))


# --------------------------------------------------------------------------- Keras (exporters venv)


def keras_worker(out: Path) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf
    import tf2onnx

    keras.utils.set_random_seed(SEED)
    base = keras.applications.MobileNetV3Small(
        weights=None, input_shape=(64, 64, 3), alpha=0.35, minimalistic=False, include_top=False,
        pooling="avg", include_preprocessing=True)
    logits = keras.layers.Dense(10, name="logits")(base.output)
    model = keras.Model(base.input, logits)
    rng = np.random.default_rng(SEED)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.get_weights()[0].shape[0]
            layer.set_weights(list(bn_values(rng, n)))
    x = rng.uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)

    pool = [layer for layer in model.layers if isinstance(layer, keras.layers.GlobalAveragePooling2D)][-1]
    probe = keras.Model(model.input, [pool.input, model.output])
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        act, y = probe(xt, training=False)
        tape.watch(act)
        classes = tf.argmax(y, axis=1)
        target = tf.reduce_sum(tf.gather(y, classes, axis=1, batch_dims=1))
    grads = tape.gradient(target, act)  # [N, h, w, C]
    weights = tf.reduce_mean(grads, axis=(1, 2))
    raw = tf.einsum("nhwc,nc->nhw", act, weights)

    spec = (tf.TensorSpec((None, 64, 64, 3), tf.float32, name="input"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=15)
    (out / "model.onnx").write_bytes(proto.SerializeToString())
    np.save(out / "input.npy", x)
    np.save(out / "framework_logits.npy", y.numpy())
    np.save(out / "framework_features.npy", act.numpy())  # NHWC
    np.save(out / "cam_raw.npy", raw.numpy().astype(np.float32))
    return {"classes": [int(c) for c in classes.numpy()], "features_layer": pool.input.name if hasattr(
        pool.input, "name") else "", "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                                                   "tf2onnx": tf2onnx.__version__}}


# --------------------------------------------------------------------------- Paddle (exporters venv)


def paddle_worker(out: Path) -> dict:
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F
    import paddle2onnx
    from paddle.static import InputSpec

    class ConvBN(nn.Layer):
        def __init__(self, cin, cout, k, stride=1, groups=1, act=True):
            super().__init__()
            self.conv = nn.Conv2D(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias_attr=False)
            self.bn = nn.BatchNorm2D(cout)
            self.act = nn.Hardswish() if act else None

        def forward(self, x):
            x = self.bn(self.conv(x))
            return self.act(x) if self.act is not None else x

    class SE(nn.Layer):
        """PaddleClas MobileNetV3's SE: pool, 1x1 reduce, ReLU, 1x1 expand, hardsigmoid(0.2, 0.5)."""

        def __init__(self, c, r=4):
            super().__init__()
            self.pool = nn.AdaptiveAvgPool2D(1)
            self.reduce = nn.Conv2D(c, c // r, 1)
            self.relu = nn.ReLU()
            self.expand = nn.Conv2D(c // r, c, 1)

        def forward(self, x):
            s = self.expand(self.relu(self.reduce(self.pool(x))))
            return x * F.hardsigmoid(s, slope=0.2, offset=0.5)

    class DepthwiseSeparable(nn.Layer):
        def __init__(self, cin, cout, stride, k=3, se=False):
            super().__init__()
            self.dw = ConvBN(cin, cin, k, stride, groups=cin)
            self.se = SE(cin) if se else None
            self.pw = ConvBN(cin, cout, 1)

        def forward(self, x):
            x = self.dw(x)
            if self.se is not None:
                x = self.se(x)
            return self.pw(x)

    class LCNetStyle(nn.Layer):
        def __init__(self, classes=10):
            super().__init__()
            self.stem = ConvBN(3, 8, 3, 2)
            self.b1 = DepthwiseSeparable(8, 16, 1)
            self.b2 = DepthwiseSeparable(16, 24, 2)
            self.b3 = DepthwiseSeparable(24, 32, 2, k=5)
            self.b4 = DepthwiseSeparable(32, 48, 2, k=5, se=True)
            self.up = nn.Conv2DTranspose(48, 32, 2, stride=2)
            self.fuse = ConvBN(32, 32, 3)
            self.pool = nn.AdaptiveAvgPool2D(1)
            self.last = nn.Conv2D(32, 64, 1)
            self.last_act = nn.Hardswish()
            self.fc = nn.Linear(64, classes)

        def features(self, x):
            c3 = self.b3(self.b2(self.b1(self.stem(x))))
            c4 = self.b4(c3)
            size = c3.shape[2:]
            y = self.fuse(self.up(c4) + c3)
            return (y + F.interpolate(c4[:, :32], size=size, mode="nearest")
                    + F.interpolate(c4[:, 16:], size=size, mode="bilinear", align_corners=False))

        def head(self, y):
            return self.fc(paddle.flatten(self.last_act(self.last(self.pool(y))), 1))

        def forward(self, x):
            return self.head(self.features(x))

    paddle.seed(SEED)
    model = LCNetStyle()
    rng = np.random.default_rng(SEED)
    for layer in model.sublayers():
        if isinstance(layer, nn.BatchNorm2D):
            gamma, beta, mean, var = bn_values(rng, layer.weight.shape[0])
            layer.weight.set_value(gamma)
            layer.bias.set_value(beta)
            layer._mean.set_value(mean)
            layer._variance.set_value(var)
    model.eval()
    x = rng.standard_normal((2, 3, 48, 96)).astype(np.float32)

    xt = paddle.to_tensor(x)
    feats = model.features(xt)
    y = model.head(feats)
    classes = paddle.argmax(y, axis=1)
    target = paddle.take_along_axis(y, classes.unsqueeze(1), axis=1).sum()
    (grads,) = paddle.grad(target, feats)
    raw = (grads.mean(axis=[2, 3], keepdim=True) * feats).sum(axis=1)

    prefix = out / "paddle" / "model"
    paddle.jit.save(model, str(prefix), input_spec=[InputSpec([None, 3, None, None], "float32", "x")])
    program = next(p for p in (prefix.with_suffix(".json"), prefix.with_suffix(".pdmodel")) if p.exists())
    for opset in (11, 15):
        paddle2onnx.export(str(program), str(prefix.with_suffix(".pdiparams")), str(out / f"model_op{opset}.onnx"),
                           opset_version=opset)
    np.save(out / "input.npy", x)
    np.save(out / "framework_logits.npy", y.numpy())
    np.save(out / "framework_features.npy", feats.numpy())
    np.save(out / "cam_raw.npy", raw.numpy().astype(np.float32))
    return {"classes": [int(c) for c in classes.numpy()],
            "versions": {"paddlepaddle": paddle.__version__, "paddle2onnx": paddle2onnx.__version__}}


def worker(kind: str, out: Path) -> None:
    import onnx

    out.mkdir(parents=True, exist_ok=True)
    info = keras_worker(out) if kind == "keras" else paddle_worker(out)
    info["versions"].update({"python": sys.version.split()[0], "numpy": np.__version__, "onnx": onnx.__version__})
    (out / "info.json").write_text(json.dumps(info, indent=1) + "\n")


# --------------------------------------------------------------------------- goldens (main venv)


def feature_tensor(proto) -> str:
    """The input of the graph's last global average pool (GlobalAveragePool, or ReduceMean over H, W)."""
    import onnx.numpy_helper

    consts = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = onnx.numpy_helper.to_array(node.attribute[0].t)
    found = None
    for node in proto.graph.node:
        if node.op_type == "GlobalAveragePool":
            found = node.input[0]
        elif node.op_type == "ReduceMean":
            axes = [a.ints for a in node.attribute if a.name == "axes"]
            axes = list(axes[0]) if axes else (list(consts.get(node.input[1], [])) if len(node.input) > 1 else [])
            if sorted(axes) in ([2, 3], [1, 2]):
                found = node.input[0]
    if found is None:
        raise RuntimeError("no global average pool in the graph")
    return found


def ort_run(proto, x, fetch_extra):
    """onnxruntime's outputs plus `fetch_extra` (added as graph outputs on a copy)."""
    import onnx

    sys.path.insert(0, str(TOOLS_DIR))
    import fixturelib as fl

    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    for name in fetch_extra:
        probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    sess = fl.ort_session(probe.SerializeToString(), threads=1)
    names = [o.name for o in sess.get_outputs()]
    values = sess.run(names, {sess.get_inputs()[0].name: x})
    return dict(zip(names, values))


def minus_one_dims(proto):
    """The model with its dynamic dims written as older paddle2onnx did: -1 for the batch, unset for the rest."""
    import onnx

    derived = onnx.ModelProto()
    derived.CopyFrom(proto)
    for value in list(derived.graph.input) + list(derived.graph.output):
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_param"):
                dim.ClearField("dim_param")
                if axis == 0:
                    dim.dim_value = -1
    onnx.checker.check_model(derived)
    return derived


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", choices=["keras", "paddle"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, Path(args.out))
        return 0

    import onnx

    sys.path.insert(0, str(TOOLS_DIR))
    import fixturelib as fl

    if not EXPORTERS_PYTHON.exists():
        print(f"missing {EXPORTERS_PYTHON}: create the exporters' venv first (see --help)", file=sys.stderr)
        return 2
    work = TOOLS_DIR / ".cache" / "exporters"
    shutil.rmtree(work, ignore_errors=True)
    for kind in ("keras", "paddle"):
        print(f"exporting {kind} ...", flush=True)
        subprocess.run([str(EXPORTERS_PYTHON), str(Path(__file__).resolve()), "--worker", kind,
                        "--out", str(work / kind)], check=True)

    shutil.rmtree(OUT_DIR, ignore_errors=True)
    OUT_DIR.mkdir(parents=True)
    infos = {kind: json.loads((work / kind / "info.json").read_text()) for kind in ("keras", "paddle")}
    paddle_op11 = onnx.load(str(work / "paddle" / "model_op11.onnx"))
    fixtures = [
        ("keras_mobilenetv3_op15", "keras", onnx.load(str(work / "keras" / "model.onnx")),
         "keras.applications.MobileNetV3Small(weights=None, input_shape=(64, 64, 3), alpha=0.35, "
         "minimalistic=False, include_top=False, pooling='avg', include_preprocessing=True) + Dense(10); "
         "tf2onnx.convert.from_keras(opset=15), input TensorSpec((None, 64, 64, 3))", "NHWC"),
        ("paddle_lcnet_op11", "paddle", paddle_op11,
         "PaddleClas-style LCNet blocks (tools/export_exporter_fixtures.py LCNetStyle); paddle.jit.save with "
         "InputSpec([None, 3, None, None]); paddle2onnx.export(opset_version=11)", "NCHW"),
        ("paddle_lcnet_op15", "paddle", onnx.load(str(work / "paddle" / "model_op15.onnx")),
         "the same net; paddle2onnx.export(opset_version=15)", "NCHW"),
        ("paddle_lcnet_op11_dims", "paddle", minus_one_dims(paddle_op11),
         "paddle_lcnet_op11 with the input and output dims written [-1, 3, ?, ?] and [-1, 10] (what older "
         "paddle2onnx releases wrote), via onnx.helper", "NCHW"),
    ]
    records = []
    for name, kind, proto, source, layout in fixtures:
        folder = OUT_DIR / name
        folder.mkdir()
        x = np.load(work / kind / "input.npy")
        features = feature_tensor(proto)
        outputs = ort_run(proto, x, [features])
        framework_features = np.load(work / kind / "framework_features.npy")
        feature_layout = "NHWC" if kind == "keras" else "NCHW"
        if outputs[features].shape != framework_features.shape:  # the exporter moved the layout
            framework_features = np.transpose(framework_features, (0, 3, 1, 2) if kind == "keras" else (0, 2, 3, 1))
            feature_layout = "NCHW" if kind == "keras" else "NHWC"
        logits_name = proto.graph.output[0].name
        fl.save_npy(folder / "input.npy", x)
        fl.save_npy(folder / "logits.npy", outputs[logits_name])
        fl.save_npy(folder / "features.npy", outputs[features])
        fl.save_npy(folder / "cam_raw.npy", np.load(work / kind / "cam_raw.npy"))
        onnx.save(proto, str(OUT_DIR / f"{name}.onnx"))
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in proto.graph.input[0].type.tensor_type.shape.dim]
        records.append({
            "name": name, "file": f"{name}.onnx", "framework": kind, "source": source,
            "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
            "opset": fl.opset_imports(proto).get(""), "ops": fl.op_histogram(proto),
            "initializers": len(proto.graph.initializer),
            "constant_nodes": sum(n.op_type == "Constant" for n in proto.graph.node),
            "input_name": proto.graph.input[0].name, "input_declared": dims, "input_layout": layout,
            "input": f"{name}/input.npy", "input_shape": list(x.shape),
            "outputs": [{"tensor": logits_name, "file": f"{name}/logits.npy", "role": "output"},
                        {"tensor": features, "file": f"{name}/features.npy", "role": "cam layer"}],
            "cam": {"layer": features, "layout": feature_layout, "classes": infos[kind]["classes"], "raw": f"{name}/cam_raw.npy",
                    "reference": "tf.GradientTape" if kind == "keras" else "paddle.grad"},
            "framework_vs_onnxruntime": {
                "logits": rel(outputs[logits_name], np.load(work / kind / "framework_logits.npy")),
                "features": rel(outputs[features], framework_features)},
            "bytes": (OUT_DIR / f"{name}.onnx").stat().st_size,
        })
        print(f"  {name}: {records[-1]['bytes'] / 1e3:.0f} kB, ops {records[-1]['ops']}, "
              f"framework vs ORT {records[-1]['framework_vs_onnxruntime']}", flush=True)
    import onnxruntime

    tools = {"goldens": {"python": sys.version.split()[0], "onnx": onnx.__version__,
                         "onnxruntime": onnxruntime.__version__, "numpy": np.__version__},
        "keras": infos["keras"]["versions"], "paddle": infos["paddle"]["versions"]}
    manifest = {"tools": tools, "generated": fl.now_iso(), "generator": "tools/export_exporter_fixtures.py",
                "onnxruntime_settings": {"providers": ["CPUExecutionProvider"],
                                         "graph_optimization_level": "ORT_DISABLE_ALL", "intra_op_num_threads": 1},
                "seed": SEED, "models": records}
    (OUT_DIR / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
