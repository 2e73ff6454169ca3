"""The single-node cases tools/export_op_cases.py writes, registered by the family modules
(reductions and indexing, activations and math) through `case`."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Case:
    name: str
    op: str
    opset: int
    what: str
    #: (name, array) per node input; a None array is an omitted optional input.
    inputs: list
    attrs: dict = field(default_factory=dict)
    outputs: int = 1
    #: (PyTorch function of the first `wrt` inputs, its description): the gradient golden is
    #: PyTorch autograd's d<upstream, y0>/d input for each of them.
    gradient: tuple | None = None
    wrt: int = 1
    #: The upstream gradient of output 0, or None to draw it from `rng` when the case is written.
    upstream: np.ndarray | None = None
    rng: np.random.Generator | None = None
    #: Why the ONNX reference evaluator, not onnxruntime, is the oracle (None: onnxruntime where it runs).
    numpy_reference: str | None = None
    #: Why PyTorch's forward value may differ from the reference's (the gradient golden still holds).
    torch_forward_differs: str | None = None
    #: (PyTorch function of the inputs, description, why): PyTorch is the oracle for the outputs,
    #: where neither onnxruntime nor the ONNX reference evaluator computes the case right.
    torch_reference: tuple | None = None


CASES: list[Case] = []


def case(name, op, opset, what, inputs, attrs=None, **options) -> Case:
    """Registers a case (see `Case` for the options)."""
    if any(c.name == name for c in CASES):
        raise ValueError(f"case {name} is registered twice")
    CASES.append(Case(name, op, opset, what, inputs, attrs or {}, **options))
    return CASES[-1]
