#!/usr/bin/env python3
"""How much of the spec the committed tests exercise, for the ops of issue 11.

For each op the issue lists (and LogSoftmax, GlobalMaxPool, and Col2Im, which timm's VOLO exports
through the dynamo exporter), reads onnx.defs for every schema version in effect at some opset
from 7 to 25 and its type constraints, then reports which of those versions and which of our
element types a committed test exercises, and which backward rules have a finite-difference check.

What counts as a test:
  * the upstream node tests ONNXNodeTests runs: the `run` lines of
    Tests/GraphEngineTests/onnx-node-tests.txt, each at the opset its model imports (from
    Fixtures/onnx-node/SOURCE.json), with the element types its nodes see (read from the models
    in Fixtures/onnx-node/tests.tar.gz, types inferred by onnx);
  * the per-op goldens: Fixtures/op-cases/cases.tar.gz (OpCaseTests), Fixtures/recurrent/ops.tar.gz
    (RecurrentTests), Fixtures/quantization/ops.tar.gz (QuantizationTests), Fixtures/spatial/*.json
    (ResizeGoldenTests, SpatialGoldenTests).
A node at opset N exercises the op's schema version in effect at N (the newest since_version
<= N); its element types are those bound to each type parameter of that version's inputs.

Backward: `GradientCheck(op: "X"` in the test sources, or, in a test file whose GradientCheck
takes its op from a parameter, the op's name as a string literal there (a parameterized check
over a list of ops).

Prints one Markdown table and the gaps, and writes the same to tools/op_coverage.md.
Run with tools/.venv/bin/python tools/op_coverage.py
"""
from __future__ import annotations

import json
import re
import sys
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import onnx  # noqa: E402
from onnx import defs, helper  # noqa: E402

import fixturelib as fl  # noqa: E402

REPO = fl.REPO_DIR
LOW, HIGH = 7, 25

OPS = [
    # activations
    "HardSigmoid", "HardSwish", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Softplus", "Softsign", "Mish",
    "ThresholdedRelu", "Shrink",
    # math and logic
    "Abs", "Log", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Min", "Max", "Mean", "Sum", "Greater",
    "Less", "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor", "Not", "IsNaN", "IsInf",
    # reductions
    "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax",
    "ArgMin", "TopK", "CumSum",
    # shape and indexing
    "Pad", "Range", "Tile", "ScatterND", "ScatterElements", "GatherElements", "GatherND", "OneHot", "Trilu", "NonZero",
    "DepthToSpace", "SpaceToDepth", "Size", "Einsum", "Upsample", "Resize",
    # convolution and normalization
    "ConvTranspose", "InstanceNormalization", "GroupNormalization", "LRN", "LpNormalization",
    "MeanVarianceNormalization", "BatchNormalization",
    # recurrent, quantization
    "LSTM", "GRU", "RNN", "QuantizeLinear", "DequantizeLinear",
    # also asked for
    "LogSoftmax", "GlobalMaxPool", "Col2Im",
]

# BatchNormalization is in the issue for training_mode=1 only (an attribute since opset 14).
TRAINING_BN = "BatchNormalization"

# Ops whose outputs carry no gradient (booleans, indices, counts).
NO_GRADIENT = {"Greater", "Less", "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor", "Not", "IsNaN", "IsInf",
               "ArgMax", "ArgMin", "NonZero", "Size", "Range", "OneHot"}
# QuantizeLinear's rounding has a zero derivative almost everywhere: its backward is the
# straight-through estimator by design, checked against PyTorch's FakeQuantize instead.
STRAIGHT_THROUGH = {"QuantizeLinear"}

# Gaps left on purpose: (op, input, dtype) and why no test feeds it.
LEFT = {
    ("ReduceLogSumExp", "data", "int64"): "integer ReduceLogSumExp is ill-defined (the spec drops integer types at opset 28): "
    "onnxruntime rounds each exponential down before summing, the reference evaluator refuses, the engine truncates the "
    "exact log-sum-exp; no oracle to agree with",
    ("ReduceLogSumExp", "data", "int32"): "as for int64",
    ("OneHot", "values", "bool"): "neither onnxruntime nor the reference evaluator runs bool values (no golden)",
    ("Resize", "X", "bool"): "neither onnxruntime nor the reference evaluator resizes bool (no golden)",
    ("MeanVarianceNormalization", "X", "float64"): "onnxruntime has float32 kernels only, and the reference evaluator's "
    "function body adds its float32 epsilon to other types and fails (no golden)",
    ("MeanVarianceNormalization", "X", "float16"): "as for float64",
    ("QuantizeLinear", "y_scale", "int32"): "the engine quantizes with float32 or float16 scales; an int32 scale (opset 23+) "
    "is refused with a typed error",
}

# Our element types, as onnx names them.
OURS = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16", "tensor(int64)": "int64",
        "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(bool)": "bool"}
ELEM = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64", onnx.TensorProto.FLOAT16: "float16",
        onnx.TensorProto.INT64: "int64", onnx.TensorProto.INT32: "int32", onnx.TensorProto.INT8: "int8",
        onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.BOOL: "bool"}
ORDER = list(OURS.values())


def history(op: str) -> list:
    """Every schema version of the op, oldest first."""
    return sorted((s for s in defs.get_all_schemas_with_history() if s.name == op and s.domain == ""),
                  key=lambda s: s.since_version)


def schemas(op: str) -> list:
    """The op's schema versions in effect at some opset in LOW...HIGH, oldest first (deprecated
    ones left out)."""
    versions = history(op)
    kept = []
    for k, schema in enumerate(versions):
        until = versions[k + 1].since_version - 1 if k + 1 < len(versions) else HIGH
        if schema.since_version <= HIGH and until >= LOW and not schema.deprecated:
            kept.append(schema)
    if op == TRAINING_BN:
        kept = [s for s in kept if "training_mode" in s.attributes]
    return kept


def in_effect(opset: int, all_versions: list):
    """The schema version in effect at `opset`."""
    chosen = None
    for schema in all_versions:
        if schema.since_version <= opset:
            chosen = schema
    return chosen


def typed_inputs(schema) -> list:
    """(input index, formal input name, type parameter) for the first input bound to each type
    parameter of the schema; inputs of a fixed type (axes, shapes, float scales) are left out."""
    constraints = {c.type_param_str for c in schema.type_constraints}
    seen, result = set(), []
    for index, formal in enumerate(schema.inputs):
        if formal.type_str in constraints and formal.type_str not in seen:
            seen.add(formal.type_str)
            result.append((index, formal.name, formal.type_str))
    return result


def allowed(versions: list) -> dict:
    """{formal input name: our dtypes its type parameter allows}, over the versions."""
    result: dict = defaultdict(set)
    for schema in versions:
        constraints = {c.type_param_str: c.allowed_type_strs for c in schema.type_constraints}
        for _, name, param in typed_inputs(schema):
            result[name] |= {OURS[t] for t in constraints[param] if t in OURS}
    return {name: types for name, types in result.items() if types}


# --------------------------------------------------------------------------- what the tests exercise


class Exercised:
    """Per op: the schema versions hit, the dtypes bound per type parameter, and by which sources."""

    def __init__(self):
        self.versions = defaultdict(set)
        self.dtypes = defaultdict(lambda: defaultdict(set))
        self.sources = defaultdict(set)
        self.versions_of = {op: schemas(op) for op in OPS}
        self.history_of = {op: history(op) for op in OPS}

    def record(self, op: str, opset: int, input_types: list, source: str, attributes: dict | None = None):
        if op not in self.versions_of:
            return
        if op == TRAINING_BN and not (attributes or {}).get("training_mode"):
            return
        schema = in_effect(opset, self.history_of[op])
        if schema is None:
            return
        # A version past the range (the node tests import the newest opset) still runs the same
        # kernels on its element types, so its types count; its version does not.
        if any(schema.since_version == v.since_version for v in self.versions_of[op]):
            self.versions[op].add(schema.since_version)
        self.sources[op].add(source)
        for index, name, _ in typed_inputs(schema):
            if index < len(input_types) and input_types[index] is not None:
                self.dtypes[op][name].add(input_types[index])

    def model(self, model: onnx.ModelProto, source: str, opset: int | None = None):
        """Every node of `model` (main graph and subgraphs) with its inputs' inferred types."""
        opset = opset or next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        try:
            model = onnx.shape_inference.infer_shapes(model)
        except Exception:  # noqa: BLE001 - keep the declared types
            pass

        def walk(graph, known):
            known = dict(known)
            for v in list(graph.input) + list(graph.value_info) + list(graph.output):
                if v.type.tensor_type.elem_type:
                    known[v.name] = ELEM.get(v.type.tensor_type.elem_type)
            for t in graph.initializer:
                known[t.name] = ELEM.get(t.data_type)
            for node in graph.node:
                if node.op_type == "Constant":
                    for a in node.attribute:
                        if a.name == "value":
                            known[node.output[0]] = ELEM.get(a.t.data_type)
                attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.type == a.INT}
                if node.domain in ("", "ai.onnx"):
                    self.record(node.op_type, opset, [known.get(name) if name else None for name in node.input], source,
                                attributes)
                for a in node.attribute:
                    if a.type == a.GRAPH:
                        walk(a.g, known)
                    for g in a.graphs:
                        walk(g, known)

        walk(model.graph, {})


def node_tests(seen: Exercised) -> None:
    runs = set()
    for line in (REPO / "Tests" / "GraphEngineTests" / "onnx-node-tests.txt").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "run":
            runs.add(fields[1])
    source = json.loads((REPO / "Fixtures" / "onnx-node" / "SOURCE.json").read_text())
    opsets = {t["name"]: t["opset_imports"][""] for t in source["tests"]}
    with tempfile.TemporaryDirectory() as folder, tarfile.open(REPO / "Fixtures" / "onnx-node" / "tests.tar.gz") as tar:
        tar.extractall(folder, filter="data")
        for name in sorted(runs):
            seen.model(onnx.load(str(Path(folder) / name / "model.onnx")), "node tests", opsets[name])


def golden_folders(seen: Exercised) -> None:
    for archive, source in [("op-cases/cases.tar.gz", "op-cases"), ("recurrent/ops.tar.gz", "recurrent goldens"),
                            ("quantization/ops.tar.gz", "quantization goldens")]:
        with tempfile.TemporaryDirectory() as folder, tarfile.open(REPO / "Fixtures" / archive) as tar:
            tar.extractall(folder, filter="data")
            for model in sorted(Path(folder).glob("*/model.onnx")):
                seen.model(onnx.load(str(model)), source)
    for path in sorted((REPO / "Fixtures" / "spatial").glob("*.json")):
        for case in json.loads(path.read_text())["cases"]:
            types = [i.get("dtype") for i in case["inputs"]]
            attributes = {k: a["value"] for k, a in case["attributes"].items() if a["type"] == "int"}
            seen.record(case["op"], case["opset"], types, "spatial goldens", attributes)


def backward_checks() -> dict:
    """{op: test files} with a finite-difference check of its backward rule."""
    checked = defaultdict(set)
    for path in sorted((REPO / "Tests").rglob("*.swift")):
        text = path.read_text()
        if "GradientCheck(" not in text:
            continue
        for op in re.findall(r'GradientCheck\(\s*op:\s*"(\w+)"', text):
            checked[op].add(path.name)
        if re.search(r'GradientCheck\(\s*op:\s*[a-z]', text):
            for op in OPS:
                if f'"{op}"' in text:
                    checked[op].add(path.name)
    return checked


# --------------------------------------------------------------------------- report


def short(types) -> str:
    return " ".join(t for t in ORDER if t in types)


def report() -> str:
    seen = Exercised()
    node_tests(seen)
    golden_folders(seen)
    backward = backward_checks()
    rows, gaps, left = [], [], []
    totals = defaultdict(int)
    for op in OPS:
        versions = seen.versions_of[op]
        since = [s.since_version for s in versions]
        tested = sorted(seen.versions[op])
        permitted = allowed(versions)
        tested_types = seen.dtypes[op]
        missing_versions = [v for v in since if v not in tested]
        missing_types = {p: sorted(permitted[p] - tested_types.get(p, set()), key=ORDER.index) for p in permitted}
        missing_types = {p: t for p, t in missing_types.items() if t}
        if op in NO_GRADIENT:
            grad = "no gradient"
        elif backward.get(op):
            grad = "yes (" + ", ".join(sorted(f.removesuffix(".swift") for f in backward[op])) + ")"
        elif op in STRAIGHT_THROUGH:
            grad = "straight-through; vs FakeQuantize"
        else:
            grad = "**no**"
            gaps.append(f"- {op}: backward rule without a finite-difference check")
        name = f"{op} (training_mode=1)" if op == TRAINING_BN else op
        rows.append(
            f"| {name} | {' '.join(map(str, since))} | {' '.join(map(str, tested)) or '-'} | "
            + "; ".join(f"{p}: {short(permitted[p])}" for p in permitted) + " | "
            + ("; ".join(f"{p}: {short(tested_types.get(p, set()) & permitted[p]) or '-'}" for p in permitted) or "-")
            + f" | {grad} |")
        totals["versions"] += len(since)
        totals["versions tested"] += len(since) - len(missing_versions)
        totals["dtypes"] += sum(len(t) for t in permitted.values())
        totals["dtypes tested"] += sum(len(permitted[p] & tested_types.get(p, set())) for p in permitted)
        if missing_versions:
            gaps.append(f"- {name}: opset version(s) {', '.join(map(str, missing_versions))} untested")
        for p, types in missing_types.items():
            for dtype in types:
                why = LEFT.get((op, p, dtype))
                (left if why else gaps).append(f"- {name}: {p} = {dtype} untested" + (f": {why}" if why else ""))
    lines = [
        "# Spec coverage of the issue-11 ops",
        "",
        f"Generated by `tools/op_coverage.py` (onnx {onnx.__version__}) from the committed tests: the node tests "
        "ONNXNodeTests runs and the per-op goldens (op-cases, recurrent, quantization, spatial). Versions: the schema "
        f"versions in effect at opsets {LOW} to {HIGH} (since_version). Dtypes: per type parameter of the inputs, the "
        "types the spec allows that the engine has (float32 float64 float16 int64 int32 int8 uint8 bool), and those "
        "a test feeds (at any opset), per input (the first input bound to each type parameter). Backward: a finite-difference check (GradientCheck) in the test sources.",
        "",
        f"Totals: {totals['versions tested']} of {totals['versions']} schema versions tested; "
        f"{totals['dtypes tested']} of {totals['dtypes']} (type parameter, dtype) pairs tested.",
        "",
        "| op | versions in range | versions tested | dtypes allowed ∩ ours | dtypes tested | backward checked |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        "## Gaps",
        "",
        *(gaps or ["None."]),
        "",
        "## Left on purpose",
        "",
        *(left or ["None."]),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    text = report()
    (fl.TOOLS_DIR / "op_coverage.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
