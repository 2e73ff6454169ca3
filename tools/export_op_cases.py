#!/usr/bin/env python3
"""Single-node goldens for the ops of issue 11 beyond the upstream ONNX backend node tests.

The node tests (tools/copy_node_tests.py) cover each op at one or two opsets and mostly float32.
These cases cover what they leave out, one family per module of tools/op_cases/:
  indexing.py     reductions, ArgMax/ArgMin/TopK, CumSum, Range, Size, Tile, DepthToSpace,
                  SpaceToDepth, Trilu, the gathers and scatters, OneHot, NonZero
  activations.py  the activations, math and logic ops, the variadic ops and LogSoftmax
  coverage.py     opset versions and element types tools/op_coverage.py found untested
Each case is one node in the upstream layout, packed with the others into
Fixtures/op-cases/cases.tar.gz (a deterministic archive: many small files cost far more on disk
than their bytes; Tests/TestSupport's Fixtures.unpacked opens it):

  <case>/model.onnx                    one node; every input is a graph input
  <case>/test_data_set_0/input_K.pb    the inputs (ONNX TensorProto, as the node tests)
  <case>/test_data_set_0/output_K.pb   reference outputs: onnxruntime's (CPU, graph optimisations
                                       off), or, where onnxruntime has no kernel for the type or
                                       opset, the ONNX reference implementation's
                                       (onnx.reference.ReferenceEvaluator); the manifest says which
  <case>/gradient/upstream.pb          gradient cases: the upstream gradient of output 0
  <case>/gradient/input_K.pb           gradient cases: PyTorch autograd's d<upstream, y0>/d input K
                                       (float64), for the first `gradient_inputs` inputs

Fixtures/op-cases/manifest.json lists the tool versions and, per case, its op, opset, what it
covers, its inputs' element types, the reference that produced its outputs and, for gradient
cases, the PyTorch function differentiated; and under "refused" the cases neither onnxruntime nor
the reference evaluator runs (no golden exists for them). Outputs are deterministic (seeded inputs, no
timestamps): running twice gives identical files.

Run with tools/.venv/bin/python tools/export_op_cases.py
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402

import fixturelib as fl  # noqa: E402
import op_cases  # noqa: E402
import op_cases.activations  # noqa: E402, F401  (registers its cases)
import op_cases.coverage  # noqa: E402, F401
import op_cases.indexing  # noqa: E402, F401

OUT_DIR = fl.REPO_DIR / "Fixtures" / "op-cases"
ARCHIVE = "cases.tar.gz"


class Refused(Exception):
    """Neither onnxruntime nor the ONNX reference evaluator runs the case: no golden to write."""


def dtype_name(array: np.ndarray) -> str:
    return "bool" if array.dtype == np.bool_ else str(array.dtype)


def write_case(c: op_cases.Case, folder: Path) -> dict:
    present = [(n, a) for n, a in c.inputs if a is not None]
    model = fl.node_model(c.op, c.opset, c.inputs, c.attrs, c.outputs, name=c.name, producer="tools/export_op_cases.py")
    feeds = dict(present)
    torch_y = None
    if c.gradient is not None:
        tensors = [torch.tensor(a, requires_grad=True) for _, a in present[: c.wrt]]
        torch_y = c.gradient[0](*tensors)
    try:
        if c.torch_reference is not None:
            function, description, why = c.torch_reference
            outputs = [function(*(torch.tensor(a) for _, a in present)).numpy()]
            reference = f"torch {torch.__version__} {description} ({why})"
        else:
            outputs, reference = fl.reference_outputs(model, feeds, c.numpy_reference)
    except Exception as error:  # noqa: BLE001 - neither runtime runs it (an opset newer than both)
        if torch_y is None:
            raise Refused(str(error).strip().splitlines()[-1][:200]) from error
        outputs = [torch_y.detach().numpy()]
        reference = f"torch {torch.__version__} (no runtime runs it: {str(error).strip().splitlines()[0][:120]})"
    fl.write_node_case(folder, model, [a for _, a in present], [(f"y{k}", y) for k, y in enumerate(outputs)])
    entry = {"name": c.name, "op": c.op, "opset": c.opset, "what": c.what, "dtypes": [dtype_name(a) for _, a in present],
             "reference": reference}
    if c.gradient is not None:
        expected = np.asarray(outputs[0], dtype=np.float64)
        if c.torch_forward_differs is None and not np.allclose(
                torch_y.detach().numpy(), expected, rtol=1e-12, atol=0, equal_nan=True):
            raise RuntimeError(f"{c.name}: {c.gradient[1]} disagrees with the reference forward output")
        upstream = c.upstream if c.upstream is not None else c.rng.uniform(-1, 1, size=tuple(torch_y.shape))
        grads = torch.autograd.grad(torch_y, tensors, grad_outputs=torch.tensor(upstream), allow_unused=True)
        fl.write_tensor(folder / "gradient" / "upstream.pb", upstream, "upstream")
        for k, (g, (_, a)) in enumerate(zip(grads, present)):
            fl.write_tensor(folder / "gradient" / f"input_{k}.pb", np.zeros_like(a) if g is None else g.numpy(), "gradient")
        entry["gradient"] = f"torch {torch.__version__} autograd of {c.gradient[1]}"
        entry["gradient_inputs"] = c.wrt
    return entry


def main() -> int:
    fl.quiet_warnings()
    fl.fresh_dir(OUT_DIR)
    entries, refused = [], []
    with tempfile.TemporaryDirectory() as stage:
        for c in op_cases.CASES:
            try:
                entries.append(write_case(c, Path(stage) / c.name))
            except Refused as reason:
                shutil.rmtree(Path(stage) / c.name, ignore_errors=True)
                refused.append({"name": c.name, "op": c.op, "opset": c.opset, "why": str(reason)})
        fl.write_archive(Path(stage), OUT_DIR / ARCHIVE)
        unpacked = fl.dir_bytes(Path(stage))
    manifest = {
        "generator": "tools/export_op_cases.py",
        "tools": fl.package_versions("onnx", "onnxruntime", "torch", "numpy"),
        "archive": ARCHIVE,
        "cases": entries,
        "refused": refused,
    }
    (OUT_DIR / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    fallbacks = [e["name"] for e in entries if not e["reference"].startswith("onnxruntime")]
    print(f"wrote {len(entries)} cases ({unpacked / 1e3:.0f} KB, {(OUT_DIR / ARCHIVE).stat().st_size / 1e3:.0f} KB packed) "
          f"to {OUT_DIR}; {len(fallbacks)} not from onnxruntime: {', '.join(fallbacks)}")
    for r in refused:
        print(f"  refused {r['name']}: neither onnxruntime nor the reference runs it: {r['why']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
