"""Import torchvision on a CPU-only torch.

The torchvision wheel that PyPI serves for Linux x86_64 is linked against the
CUDA build of torch (its ``_C.so`` needs libcudart / libtorch_cuda).  With the
CPU torch wheel that extension cannot be loaded; torchvision copes with that
for most things (``extension._has_ops()`` becomes False), but at import time
``torchvision._meta_registrations`` still registers fake kernels for
``torchvision::nms`` and ``torchvision::qnms``, which fails because those ops
were never defined.

We only use torchvision's pure-Python model classes, never its custom C++ ops,
so when (and only when) the extension is unusable we declare schemas for the
two ops before torchvision is imported.  Calling them would still fail loudly
("no kernel"), which is what we want.

Usage: ``from tvcompat import torchvision`` (or import this module first).
"""
from __future__ import annotations

import importlib.util
import os

import torch

EXTENSION_LOADED: bool | None = None
_keep = []  # keep the Library object alive


def _extension_loads() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    pkg_dir = list(spec.submodule_search_locations)[0]
    candidates = [f for f in os.listdir(pkg_dir) if f.startswith("_C.") and f.endswith((".so", ".pyd"))]
    if not candidates:
        return False
    try:
        torch.ops.load_library(os.path.join(pkg_dir, candidates[0]))
        return True
    except (OSError, RuntimeError):
        return False


def _declare_missing_ops() -> None:
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for name in ("nms", "qnms"):
        if not hasattr(torch.ops.torchvision, name):
            lib.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _keep.append(lib)


EXTENSION_LOADED = _extension_loads()
if not EXTENSION_LOADED:
    _declare_missing_ops()

import torchvision  # noqa: E402  (must come after the shim)

__all__ = ["torchvision", "EXTENSION_LOADED"]
