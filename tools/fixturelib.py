"""Helpers shared by the fixture scripts (tool versions, ORT runs, graph stats)."""
from __future__ import annotations

import collections
import datetime as _dt
import platform
import re
import warnings
from pathlib import Path

import numpy as np

TOOLS_DIR = Path(__file__).resolve().parent
REPO_DIR = TOOLS_DIR.parent


def quiet_warnings() -> None:
    """The exporters are chatty (deprecations, tracer warnings); keep the logs readable."""
    warnings.filterwarnings("ignore")
    import logging

    for name in ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript", "torch.fx"):
        logging.getLogger(name).setLevel(logging.ERROR)


def tool_versions() -> dict:
    import onnx
    import onnxruntime
    import onnxscript
    import timm
    import torch

    from tvcompat import EXTENSION_LOADED, torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torchvision_cpp_extension_loaded": bool(EXTENSION_LOADED),
        "timm": timm.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxscript": onnxscript.__version__,
        "numpy": np.__version__,
    }


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def save_npy(path: Path, array) -> None:
    """float32, little-endian, C order, numpy's default .npy format (version 1.0)."""
    arr = np.ascontiguousarray(np.asarray(array, dtype="<f4"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.lib.format.write_array(fh, arr, version=(1, 0), allow_pickle=False)


def ort_session(model, threads: int = 1):
    """CPU session with every graph optimisation disabled.

    ``model`` is a path (external data is then resolved beside it) or bytes.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    src = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])


def op_histogram(model) -> dict:
    """{op: count} over the main graph and all subgraphs / local functions.

    Ops outside the default ONNX domain are keyed "domain::Op".
    """
    counts: collections.Counter = collections.Counter()

    def walk(graph):
        for node in graph.node:
            key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
            counts[key] += 1
            for attr in node.attribute:
                if attr.g is not None and attr.HasField("g"):
                    walk(attr.g)
                for g in attr.graphs:
                    walk(g)

    walk(model.graph)
    for fn in model.functions:
        for node in fn.node:
            key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
            counts[key] += 1
    return dict(sorted(counts.items()))


def opset_imports(model) -> dict:
    return {(o.domain or ""): int(o.version) for o in model.opset_import}


def uses_external_data(model) -> bool:
    from onnx.external_data_helper import uses_external_data as _uses

    import onnx

    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL or _uses(t):
            return True
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.HasField("t") and attr.t.data_location == onnx.TensorProto.EXTERNAL:
                return True
    return False


class captured_output:
    """Redirect the process-level stdout/stderr (fd 1 and 2) to a temp file.

    The TorchScript exporter prints whole graphs from C++ when it fails and the
    dynamo exporter logs progress; both are noise unless something goes wrong.
    The captured text is kept in ``.text`` and replayed if the block raises.
    """

    def __enter__(self):
        import os
        import sys
        import tempfile

        sys.stdout.flush()
        sys.stderr.flush()
        self._tmp = tempfile.TemporaryFile(mode="w+b")
        self._saved = (os.dup(1), os.dup(2))
        os.dup2(self._tmp.fileno(), 1)
        os.dup2(self._tmp.fileno(), 2)
        self.text = ""
        return self

    def __exit__(self, exc_type, exc, tb):
        import os
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in self._saved:
            os.close(fd)
        self._tmp.seek(0)
        self.text = self._tmp.read().decode("utf-8", "replace")
        self._tmp.close()
        if exc_type is not None and os.environ.get("FIXTURES_VERBOSE"):
            sys.stderr.write(self.text[-20000:])
        return False


def randomize(model, gen) -> None:
    """Make BatchNorm non-trivial and replace constant-initialised parameters.

    BatchNorm: running_mean ~ N(0, 0.2^2), running_var ~ U(0.5, 1.5),
    weight ~ U(0.5, 1.5), bias ~ N(0, 0.2^2).  Any other parameter whose values
    are all equal (LayerNorm affine, zero-init heads and biases, class tokens):
    matrices/tensors -> N(0, 1/fan_in), vectors -> += U(-0.2, 0.2).
    """
    import torch
    import torch.nn as nn

    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                n = mod.num_features
                mod.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
                mod.running_var.copy_(torch.rand(n, generator=gen) * 1.0 + 0.5)
                if mod.affine:
                    mod.weight.copy_(torch.rand(n, generator=gen) * 1.0 + 0.5)
                    mod.bias.copy_(torch.randn(n, generator=gen) * 0.2)
        for _name, p in model.named_parameters():
            if p.numel() > 1 and float(p.max() - p.min()) == 0.0:
                if p.dim() >= 2:
                    p.copy_(torch.randn(p.shape, generator=gen) / float(p.shape[-1]) ** 0.5)
                else:
                    p.add_((torch.rand(p.shape, generator=gen) - 0.5) * 0.4)
