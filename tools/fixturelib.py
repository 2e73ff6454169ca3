"""Helpers shared by the fixture scripts: tool versions, onnxruntime and reference-evaluator runs,
single-node models in the upstream node-test layout, tensor files, deterministic archives, graph stats."""
from __future__ import annotations

import collections
import datetime as _dt
import gzip
import importlib.metadata
import io
import platform
import re
import shutil
import tarfile
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


def package_versions(*packages: str) -> dict:
    """Python's and the named distributions' versions (as pip spells their names), for a manifest."""
    return {"python": platform.python_version()} | {name: importlib.metadata.version(name) for name in packages}


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


# How ort_session runs a model, for the manifests.
ORT_SETTINGS = {"providers": ["CPUExecutionProvider"], "graph_optimization_level": "ORT_DISABLE_ALL",
                "intra_op_num_threads": 1}


def write_manifest(folder: Path, manifest: dict) -> int:
    """`folder`/manifest.json (indented, newline-terminated); returns the folder's size in bytes."""
    import json

    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return dir_bytes(folder)


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


# --------------------------------------------------------------------------- single-node cases


def fresh_dir(path: Path) -> Path:
    """`path` emptied (a fixture folder is regenerated from scratch)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def node_model(op: str, opset: int, inputs: list, attributes: dict | None = None, outputs=1, name: str = "case",
               initializers=(), ir_version: int | None = None, producer: str = ""):
    """A one-node model: `inputs` is a list of (name, array or None), None an omitted optional
    input (trailing ones are dropped); arrays named in `initializers` become initializers, the
    others graph inputs. `outputs` is a count (y0, y1, ...) or a list of names ("" skips an
    output). The outputs' types and shapes are onnx's shape inference where it gives them, else
    left open; the IR version is the lowest that carries the opset unless given."""
    import onnx
    from onnx import helper, numpy_helper

    node_inputs = [n if a is not None else "" for n, a in inputs]
    while node_inputs and node_inputs[-1] == "":
        node_inputs.pop()
    names = [f"y{k}" for k in range(outputs)] if isinstance(outputs, int) else list(outputs)
    node = helper.make_node(op, node_inputs, names, **(attributes or {}))
    graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                    for n, a in inputs if a is not None and n not in initializers]
    weights = [numpy_helper.from_array(a, n) for n, a in inputs if a is not None and n in initializers]
    graph = helper.make_graph([node], name, graph_inputs, [helper.make_empty_tensor_value_info(o) for o in names if o],
                              initializer=weights)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name=producer,
                              ir_version=ir_version or helper.find_min_ir_version_for(opsets))
    try:
        inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model, check_type=True).graph.value_info}
    except Exception:  # noqa: BLE001 - inference is a convenience; the runtimes judge the model
        inferred = {}
    for k, output in enumerate(model.graph.output):
        if output.name in inferred and inferred[output.name].type.tensor_type.elem_type:
            model.graph.output[k].CopyFrom(inferred[output.name])
    return model


def reference_outputs(model, feeds: dict, reason_for_reference: str | None = None) -> tuple[list, str]:
    """onnxruntime's outputs (CPU, graph optimisations off), or the ONNX reference evaluator's
    where onnxruntime has no kernel for the case (or `reason_for_reference` says why the reference
    is the better oracle); the second value names the tool that produced them, and why."""
    import onnx
    import onnxruntime
    from onnx.reference import ReferenceEvaluator

    if reason_for_reference:
        return ReferenceEvaluator(model).run(None, feeds), f"onnx.reference {onnx.__version__} ({reason_for_reference})"
    try:
        return ort_session(model.SerializeToString()).run(None, feeds), f"onnxruntime {onnxruntime.__version__}"
    except Exception as error:  # noqa: BLE001 - NOT_IMPLEMENTED kernels, opsets onnxruntime does not load
        reason = str(error).strip().splitlines()[0][:160]
    return ReferenceEvaluator(model).run(None, feeds), f"onnx.reference {onnx.__version__} (onnxruntime: {reason})"


def write_tensor(path: Path, array, name: str) -> None:
    """One ONNX TensorProto file, as the node tests store their data."""
    from onnx import numpy_helper

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(numpy_helper.from_array(np.asarray(array), name).SerializeToString())


def write_node_case(folder: Path, model, inputs: list, outputs: list) -> None:
    """`folder`/model.onnx and test_data_set_0/{input,output}_K.pb, the upstream node-test layout:
    `inputs` are the graph inputs' arrays in order, `outputs` the outputs' (name, array)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    for k, (graph_input, array) in enumerate(zip(model.graph.input, inputs)):
        write_tensor(folder / "test_data_set_0" / f"input_{k}.pb", array, graph_input.name)
    for k, (name, array) in enumerate(outputs):
        write_tensor(folder / "test_data_set_0" / f"output_{k}.pb", array, name)


def write_archive(folder: Path, archive: Path) -> None:
    """Every file under `folder` in one gzipped tar that is byte-identical for identical inputs."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(folder.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            info.mode = 0o755 if path.is_dir() else 0o644
            if path.is_file():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    with open(archive, "wb") as out, gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(buffer.getvalue())


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
