#!/usr/bin/env python3
"""Goldens for RNN, GRU and LSTM beyond the upstream node tests.

1. Single-node cases (<case>/ packed in Fixtures/recurrent/ops.tar.gz), in the node-test layout
   (model.onnx + test_data_set_0/{input,output}_K.pb), outputs from onnxruntime
   (CPU, graph optimisations off): every direction and both layouts,
   sequence_lens (including lengths 0 and 1), initial states, peepholes, clip,
   input_forget, linear_before_reset, every activation with its alpha/beta
   (checking that only the functions that take alpha/beta consume list
   entries), opset 7, omitted outputs, and weights as initializers over enough
   rows (steps x batch >= 16) for the packed-weight path.
   onnxruntime only runs layout 0, so layout-1 cases run as their layout-0 twin
   (X and the states transposed, the spec's definition of layout 1) with the
   outputs transposed back.
   float16 cases: onnxruntime has no float16 (or float64) kernels for these ops,
   so the golden is onnxruntime's float32 output on the float16 inputs (widened
   exactly), rounded once to float16 -- what "compute in float32, round once"
   gives, the convention of the engine's float16 ops.
2. Tiny PyTorch models exported with torch.onnx.export (TorchScript and dynamo)
   (Fixtures/recurrent/models/<name>.onnx + <name>/*.npy): a CRNN-style
   text-line classifier (conv, then a 2-layer bidirectional LSTM over the
   columns, batch_first) and a sequence classifier on a bidirectional GRU's
   final state (Y_h), plus a ReLU RNN.  Goldens: onnxruntime's logits, and
   PyTorch autograd's gradient of sum_n logits[n, c_n] with respect to the
   input, computed on a float64 copy of the model; for the CRNN also
   pytorch-grad-cam's GradCAM heatmap at its conv features (module
   "features"), which backpropagates through both LSTM layers.

Fixtures/recurrent/manifest.json records the cases and tool versions (no
timestamp, so an unchanged regeneration leaves the files as they were).  The
directory is regenerated from scratch.

Run with tools/.venv/bin/python tools/export_recurrent_goldens.py
"""
from __future__ import annotations

import copy
import importlib.metadata
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tvcompat import torchvision  # noqa: E402, F401  (must precede other torchvision users; fl.tool_versions reads it)

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from pytorch_grad_cam import GradCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

import fixturelib as fl  # noqa: E402

OUT_DIR = fl.REPO_DIR / "Fixtures" / "recurrent"
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
INPUTS = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]


# --------------------------------------------------------------------------- single-node cases


def case(name, op, *, direction="forward", layout=0, steps=4, batch=3, input_size=2, hidden=3, lengths=None,
         bias=True, initial_h=False, initial_c=False, peepholes=False, attrs=None, opset=22, outputs=None,
         initializers=(), dtype="float32", seed=0):
    return dict(name=name, op=op, direction=direction, layout=layout, steps=steps, batch=batch,
                input_size=input_size, hidden=hidden, lengths=lengths, bias=bias, initial_h=initial_h,
                initial_c=initial_c, peepholes=peepholes, attrs=attrs or {}, opset=opset, outputs=outputs,
                initializers=list(initializers), dtype=dtype, seed=seed)


CASES = [
    case("lstm_bidirectional_layout1_lengths_states_peepholes", "LSTM", direction="bidirectional", layout=1,
         lengths=[4, 2, 1], initial_h=True, initial_c=True, peepholes=True, seed=1),
    case("lstm_reverse_input_forget_clip_length0", "LSTM", direction="reverse", lengths=[3, 4, 0],
         initial_h=True, initial_c=True, peepholes=True, attrs=dict(input_forget=1, clip=0.8), seed=2),
    case("lstm_activations_alpha_beta", "LSTM", direction="bidirectional", opset=14, initial_h=True,
         attrs=dict(activations=["HardSigmoid", "Elu", "Softsign", "Sigmoid", "Tanh", "Softplus"],
                    activation_alpha=[0.25, 0.9], activation_beta=[0.45]), seed=3),
    case("lstm_opset7_lengths", "LSTM", opset=7, lengths=[1, 4, 3], initial_c=True, seed=4),
    case("lstm_only_y_h", "LSTM", direction="bidirectional", outputs=["", "Y_h"], seed=5),
    case("lstm_packed_weights", "LSTM", direction="bidirectional", steps=6, batch=4, input_size=5, hidden=4,
         lengths=[6, 3, 5, 1], initializers=["W", "R", "B"], seed=6),
    case("gru_bidirectional_layout1_lengths", "GRU", direction="bidirectional", layout=1, lengths=[4, 1, 3],
         initial_h=True, seed=7),
    case("gru_linear_before_reset_reverse_clip_length0", "GRU", direction="reverse", lengths=[2, 4, 0],
         initial_h=True, attrs=dict(linear_before_reset=1, clip=0.6), seed=8),
    case("gru_activations_alpha_beta", "GRU", direction="bidirectional",
         attrs=dict(activations=["Sigmoid", "ScaledTanh", "HardSigmoid", "Affine"],
                    activation_alpha=[1.2, 0.3, 0.5], activation_beta=[0.7, 0.4, 0.1]), seed=9),
    case("gru_only_y", "GRU", layout=1, outputs=["Y"], attrs=dict(linear_before_reset=1), seed=10),
    case("gru_packed_weights", "GRU", steps=5, batch=4, input_size=6, hidden=5, initializers=["W", "R", "B"],
         attrs=dict(linear_before_reset=1), seed=11),
    case("rnn_relu_sigmoid", "RNN", direction="bidirectional", initial_h=True,
         attrs=dict(activations=["Relu", "Sigmoid"]), seed=12),
    case("rnn_leakyrelu_thresholdedrelu", "RNN", direction="bidirectional",
         attrs=dict(activations=["LeakyRelu", "ThresholdedRelu"], activation_alpha=[0.2, 0.4]), seed=13),
    case("rnn_elu_softplus_lengths", "RNN", direction="bidirectional", lengths=[2, 4, 1],
         attrs=dict(activations=["Elu", "Softplus"], activation_alpha=[0.6]), seed=14),
    case("rnn_softsign_affine_layout1", "RNN", direction="bidirectional", layout=1,
         attrs=dict(activations=["Softsign", "Affine"], activation_alpha=[0.8], activation_beta=[-0.3]), seed=15),
    # Tanh takes no alpha, so LeakyRelu takes the list's first entry (onnxruntime's reading).
    case("rnn_tanh_leakyrelu_alpha_consumed_in_order", "RNN", direction="bidirectional",
         attrs=dict(activations=["Tanh", "LeakyRelu"], activation_alpha=[0.3]), seed=16),
    case("rnn_hardsigmoid_scaledtanh_clip", "RNN", direction="bidirectional", initial_h=True,
         attrs=dict(activations=["HardSigmoid", "ScaledTanh"], activation_alpha=[0.3, 1.5],
                    activation_beta=[0.6, 0.5], clip=1.1), seed=17),
    case("lstm_float16_bidirectional_lengths", "LSTM", direction="bidirectional", lengths=[4, 3, 2],
         initial_h=True, initial_c=True, peepholes=True, dtype="float16", seed=18),
    case("gru_float16_reverse", "GRU", direction="reverse", initial_h=True, dtype="float16", seed=19),
]


def case_inputs(c, rng):
    """The node's inputs by name (None where omitted), float32 unless float16."""
    d = 2 if c["direction"] == "bidirectional" else 1
    g, h, s, b, i = GATES[c["op"]], c["hidden"], c["steps"], c["batch"], c["input_size"]
    state = [b, d, h] if c["layout"] else [d, b, h]
    values = {
        "X": rng.standard_normal([b, s, i] if c["layout"] else [s, b, i]),
        "W": rng.uniform(-0.8, 0.8, [d, g * h, i]),
        "R": rng.uniform(-0.8, 0.8, [d, g * h, h]),
        "B": rng.uniform(-0.5, 0.5, [d, 2 * g * h]) if c["bias"] else None,
        "sequence_lens": np.array(c["lengths"], dtype=np.int32) if c["lengths"] is not None else None,
        "initial_h": rng.standard_normal(state) * 0.5 if c["initial_h"] else None,
        "initial_c": rng.standard_normal(state) * 0.5 if c["initial_c"] else None,
        "P": rng.uniform(-0.5, 0.5, [d, 3 * h]) if c["peepholes"] else None,
    }
    np_type = np.float16 if c["dtype"] == "float16" else np.float32
    return {k: (v if v is None or v.dtype == np.int32 else v.astype(np_type)) for k, v in values.items()}


def case_model(c, values):
    """The case's node over `values` (None where an input is omitted; weights named in
    `initializers` become initializers), outputs as the case lists them."""
    names = INPUTS[: 8 if c["op"] == "LSTM" else 6]
    attrs = dict(hidden_size=c["hidden"], direction=c["direction"], **c["attrs"])
    if c["layout"]:
        attrs["layout"] = c["layout"]
    all_outputs = ["Y", "Y_h", "Y_c"][: 3 if c["op"] == "LSTM" else 2]
    return fl.node_model(c["op"], c["opset"], [(n, values.get(n)) for n in names], attrs, c["outputs"] or all_outputs,
                         name=c["name"], initializers=c["initializers"], ir_version=8)


def write_case(c, stage: Path) -> dict:
    """Writes the case under `stage` (packed into ops.tar.gz by main) and returns its manifest entry."""
    rng = np.random.default_rng(1000 + c["seed"])
    values = case_inputs(c, rng)
    half = c["dtype"] == "float16"
    model = case_model(c, values)
    onnx.checker.check_model(model)
    # onnxruntime runs the float32 twin (float16 values widen exactly).
    wide = {k: (v.astype(np.float32) if v is not None and v.dtype == np.float16 else v) for k, v in values.items()}
    if c["layout"]:
        # onnxruntime only runs layout 0: the twin with X and the states transposed (the spec's
        # definition of layout 1), outputs transposed back.
        wide = {k: (v.transpose(1, 0, 2) if v is not None and k in ("X", "initial_h", "initial_c") else v)
                for k, v in wide.items()}
    ort_model = case_model(dict(c, layout=0), wide)
    session = fl.ort_session(ort_model.SerializeToString())
    feeds = {i.name: wide[i.name] for i in session.get_inputs()}
    results = session.run(None, feeds)
    if c["layout"]:
        results = [r.transpose(2, 0, 1, 3) if r.ndim == 4 else r.transpose(1, 0, 2) for r in results]
    if half:
        results = [r.astype(np.float16) for r in results]
    fl.write_node_case(stage / c["name"], model, [values[vi.name] for vi in model.graph.input],
                       [(vi.name, r) for vi, r in zip(model.graph.output, results)])
    entry = {k: v for k, v in c.items() if k != "seed"}
    entry["golden"] = ("onnxruntime float32 on the widened inputs, rounded to float16" if half else "onnxruntime")
    return entry


# --------------------------------------------------------------------------- PyTorch models


class CRNN(nn.Module):
    """A CRNN-style text-line classifier: conv features, columns as a sequence, a 2-layer
    bidirectional LSTM, the mean over the sequence, a linear head."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d((2, 1)))
        self.rnn = nn.LSTM(input_size=4 * 4, hidden_size=5, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(10, 4)

    def forward(self, x):  # [N, 1, 8, 10]
        f = self.features(x)  # [N, 4, 4, 10]
        seq = f.permute(0, 3, 1, 2).flatten(2)  # [N, 10, 16]: one step per column
        y, _ = self.rnn(seq)
        return self.head(y.mean(dim=1))


class GRUClassifier(nn.Module):
    """A sequence classifier on a bidirectional GRU's final states (ONNX Y_h)."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(input_size=3, hidden_size=6, bidirectional=True)
        self.head = nn.Linear(12, 5)

    def forward(self, x):  # [T, N, 3]
        _, h = self.rnn(x)
        return self.head(torch.cat([h[0], h[1]], dim=1))


class ReluRNN(nn.Module):
    """A 2-layer ReLU RNN, batch first, classifying from its last step."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(input_size=4, hidden_size=6, num_layers=2, nonlinearity="relu", batch_first=True)
        self.head = nn.Linear(6, 3)

    def forward(self, x):  # [N, T, 4]
        y, _ = self.rnn(x)
        return self.head(y[:, -1])


MODELS = [
    # name, build, input shape, exporter, opset, target classes
    ("crnn_lstm_ts14", CRNN, [2, 1, 8, 10], "torchscript", 14, [1, 3]),
    ("crnn_lstm_dyn18", CRNN, [2, 1, 8, 10], "dynamo", 18, [1, 3]),
    ("gru_classifier_ts17", GRUClassifier, [7, 2, 3], "torchscript", 17, [4, 0]),
    ("gru_classifier_dyn22", GRUClassifier, [7, 2, 3], "dynamo", 22, [4, 0]),
    ("relu_rnn_ts17", ReluRNN, [2, 6, 4], "torchscript", 17, [2, 1]),
]


def export(model, x, exporter: str, opset: int) -> onnx.ModelProto:
    with fl.captured_output():
        if exporter == "torchscript":
            path = OUT_DIR / "tmp.onnx"
            torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset, input_names=["input"],
                              output_names=["logits"], do_constant_folding=True)
            proto = onnx.load(str(path))
            path.unlink()
        else:
            proto = torch.onnx.export(model, (x,), dynamo=True, opset_version=opset, input_names=["input"],
                                      output_names=["logits"], external_data=False, optimize=True).model_proto
    got = fl.opset_imports(proto).get("")
    if got != opset:
        raise RuntimeError(f"exporter wrote opset {got}, asked for {opset}")
    return proto


def write_model(name, build, shape, exporter, opset, classes) -> dict:
    torch.manual_seed(sum(map(ord, name.split("_")[0])))
    model = build().eval()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(7))
    proto = export(model, x, exporter, opset)
    (OUT_DIR / "models").mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(OUT_DIR / "models" / f"{name}.onnx"))
    logits = fl.ort_session(OUT_DIR / "models" / f"{name}.onnx").run(None, {"input": x.numpy()})[0]
    double = copy.deepcopy(model).double()
    xd = x.double().requires_grad_(True)
    out = double(xd)
    out[torch.arange(len(classes)), torch.tensor(classes)].sum().backward()
    folder = OUT_DIR / "models" / name
    fl.save_npy(folder / "input.npy", x.numpy())
    fl.save_npy(folder / "logits.npy", logits)
    fl.save_npy(folder / "input_gradient.npy", xd.grad.numpy())
    with torch.no_grad():
        torch_logits = model(x).numpy()
    gradcam = {}
    if isinstance(model, CRNN):
        # pytorch-grad-cam's GradCAM at the conv features, backpropagated through both LSTM layers.
        cam = GradCAM(model=model, target_layers=[model.features])
        heatmap = cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
        fl.save_npy(folder / "gradcam_features.npy", heatmap)
        gradcam = {"method": "pytorch_grad_cam.GradCAM", "layer": "features", "heatmap": f"models/{name}/gradcam_features.npy"}
    return {
        "name": name, "file": f"models/{name}.onnx", "exporter": exporter, "opset": opset,
        "source": build.__doc__.split("\n\n")[0].strip(), "input_shape": shape, "classes": classes,
        "ops": fl.op_histogram(proto), "logits": f"models/{name}/logits.npy", "input": f"models/{name}/input.npy",
        "input_gradient": f"models/{name}/input_gradient.npy",
        "max_abs_ort_minus_torch_logits": float(np.abs(logits - torch_logits).max()),
        "gradcam": gradcam,
    }


def main() -> int:
    fl.quiet_warnings()
    fl.fresh_dir(OUT_DIR)
    with tempfile.TemporaryDirectory() as stage:
        cases = [write_case(c, Path(stage)) for c in CASES]
        fl.write_archive(Path(stage), OUT_DIR / "ops.tar.gz")
    models = [write_model(*m) for m in MODELS]
    manifest = {
        "generator": "tools/export_recurrent_goldens.py",
        "tools": {**fl.tool_versions(), "grad_cam": importlib.metadata.version("grad-cam")},
        "onnxruntime_settings": fl.ORT_SETTINGS,
        "gradient_target": "sum_n logits[n, classes[n]], PyTorch autograd on a float64 copy of the model",
        "cases": cases,
        "models": models,
    }
    total = fl.write_manifest(OUT_DIR, manifest)
    print(f"{len(cases)} cases, {len(models)} models, {total / 1e3:.1f} KB in {OUT_DIR}")
    for m in models:
        print(f"  {m['name']}: {m['ops']}  ort-vs-torch {m['max_abs_ort_minus_torch_logits']:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
