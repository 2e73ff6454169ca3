#!/usr/bin/env python3
"""Collect the ONNX backend node tests ShortcutDetect runs.

Writes Fixtures/onnx-node/tests.tar.gz: <test name>/model.onnx and
test_data_set_N/{input,output}_K.pb (the upstream layout) for every test, in one
deterministic gzipped tar (sorted entries, zero times and owners), since a
thousand small folders cost ten times their bytes on disk and compress ~8x
together (the tests share inputs). ONNXNodeTests extracts it once per run.

Which tests:
  * With the allowlist Tests/GraphEngineTests/onnx-node-tests.txt (the file
    ONNXNodeTests reads; --allowlist to use another), exactly its
    `run  <test>  [note]` lines are copied; `skip <test> <reason>` lines are not.
    A `run` test the source does not have is reported (WARNING, exit status 0).
    "Candidates" -- node tests whose model uses only ops from SUPPORTED_OPS
    (default domain, including subgraphs / local functions) and whose graph
    inputs/outputs are plain tensors -- that the allowlist neither runs nor
    skips are listed for a human to triage (add a run or skip line); they are
    not copied.
  * Without the allowlist (or with --no-allowlist), every candidate up to
    --max-test-bytes is copied, as before the allowlist existed.
"_expanded" variants (the op's function body inlined) are candidates when all
their ops are supported too.

Source of the tests:
  * if the installed onnx package ships onnx/backend/test/data/node/ (older
    wheels did), those files are copied byte for byte;
  * otherwise (onnx 1.23 wheels and sdists don't ship it) they are generated
    from the test-case definitions the package does ship
    (onnx.backend.test.case.node, the same code upstream uses to produce
    data/node), serialised exactly like onnx's backend-test-tools does, with
    numpy's global RNG seeded to 0 first so the output is reproducible.

Also writes Fixtures/onnx-node/SOURCE.json (what was copied, and the
untriaged candidates).
"""
from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

import fixturelib as fl  # noqa: E402

OUT_DIR = fl.REPO_DIR / "Fixtures" / "onnx-node"
ALLOWLIST = fl.REPO_DIR / "Tests" / "GraphEngineTests" / "onnx-node-tests.txt"
SUPPORTED_OPS = frozenset(
    """Conv Gemm MatMul Add Sub Mul Div Pow Sqrt Erf Exp Mod Neg Relu Sigmoid Tanh Clip Gelu Softmax
    MaxPool AveragePool GlobalAveragePool ReduceMean BatchNormalization LayerNormalization Attention
    Flatten Reshape Transpose Concat Split Slice Gather Squeeze Unsqueeze Expand Shape ConstantOfShape
    Constant Identity Dropout Cast Where Equal GlobalMaxPool LogSoftmax
    HardSigmoid HardSwish LeakyRelu PRelu Elu Selu Celu Softplus Softsign Mish ThresholdedRelu Shrink
    Abs Log Reciprocal Floor Ceil Round Sign Sin Cos Min Max Mean Sum Greater Less GreaterOrEqual
    LessOrEqual And Or Xor Not IsNaN IsInf
    ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceLogSumExp ReduceSumSquare ReduceSum ArgMax
    ArgMin TopK CumSum
    Pad Range Tile ScatterND ScatterElements GatherElements GatherND OneHot Trilu NonZero DepthToSpace
    SpaceToDepth Size Einsum Upsample Resize
    ConvTranspose Col2Im InstanceNormalization GroupNormalization LRN LpNormalization MeanVarianceNormalization
    LSTM GRU RNN QuantizeLinear DequantizeLinear""".split()
)
BIG_TEST_BYTES = 100_000
SIZE_WARN_BYTES = 3_000_000
DEFAULT_MAX_TEST_BYTES = 100_000  # keeps Fixtures/ small; the 3-D pooling tests are 130-750 KB each


def model_ops(model: onnx.ModelProto) -> tuple[set, set]:
    """(op types, non-default domains) over the graph, subgraphs and local functions."""
    ops, domains = set(), set()

    def walk_nodes(nodes):
        for node in nodes:
            ops.add(node.op_type)
            if node.domain not in ("", "ai.onnx"):
                domains.add(node.domain)
            for attr in node.attribute:
                if attr.HasField("g"):
                    walk_nodes(attr.g.node)
                for g in attr.graphs:
                    walk_nodes(g.node)

    walk_nodes(model.graph.node)
    for fn in model.functions:
        walk_nodes(fn.node)
    return ops, domains


def value_kind(vi: onnx.ValueInfoProto) -> str:
    return vi.type.WhichOneof("value") or "none"


def value_desc(vi: onnx.ValueInfoProto) -> dict:
    tt = vi.type.tensor_type
    shape = None
    if tt.HasField("shape"):
        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim]
    return {"name": vi.name, "dtype": onnx.TensorProto.DataType.Name(tt.elem_type), "shape": shape}


def accept(model: onnx.ModelProto) -> tuple[bool, str]:
    ops, domains = model_ops(model)
    if domains:
        return False, f"non-default domain {sorted(domains)}"
    extra = ops - SUPPORTED_OPS
    if extra:
        return False, f"unsupported ops {sorted(extra)}"
    for vi in list(model.graph.input) + list(model.graph.output):
        if value_kind(vi) != "tensor_type":
            return False, f"{vi.name} is {value_kind(vi)}"
    return True, ""


def packaged_node_dir() -> Path | None:
    d = Path(onnx.__file__).resolve().parent / "backend" / "test" / "data" / "node"
    return d if d.is_dir() and any(d.glob("test_*/model.onnx")) else None


def _to_proto(value, vi: onnx.ValueInfoProto) -> onnx.TensorProto:
    if isinstance(value, onnx.TensorProto):
        return value
    return numpy_helper.from_array(np.asarray(value), vi.name)


def case_bytes(src) -> int:
    """Bytes the test would occupy once copied (a packaged test dir or a generated case)."""
    if isinstance(src, Path):
        return fl.dir_bytes(src)
    size = len(src.model.SerializeToString())
    for inputs, outputs in src.data_sets:
        size += sum(len(_to_proto(v, src.model.graph.input[j]).SerializeToString()) for j, v in enumerate(inputs))
        size += sum(len(_to_proto(v, src.model.graph.output[j]).SerializeToString()) for j, v in enumerate(outputs))
    return size


def write_generated_case(case, dest: Path) -> None:
    dest.mkdir(parents=True)
    (dest / "model.onnx").write_bytes(case.model.SerializeToString())
    for i, (inputs, outputs) in enumerate(case.data_sets):
        ds = dest / f"test_data_set_{i}"
        ds.mkdir()
        for j, value in enumerate(inputs):
            (ds / f"input_{j}.pb").write_bytes(_to_proto(value, case.model.graph.input[j]).SerializeToString())
        for j, value in enumerate(outputs):
            (ds / f"output_{j}.pb").write_bytes(_to_proto(value, case.model.graph.output[j]).SerializeToString())


ARCHIVE = "tests.tar.gz"


def read_allowlist(path: Path) -> tuple[dict, dict, list]:
    """({run test: note}, {skip test: reason}, problems), parsed like ONNXNodeTests does:
    whitespace-separated `run|skip <test> [rest of line]`; other lines are ignored
    (those that are neither blank nor comments are reported as problems)."""
    runs, skips, problems = {}, {}, []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split(None, 2)
        if len(fields) >= 2 and fields[0] in ("run", "skip"):
            kind, name, note = fields[0], fields[1], (fields[2].strip() if len(fields) > 2 else "")
            if name in runs or name in skips:
                problems.append(f"line {lineno}: {name} listed more than once")
            (runs if kind == "run" else skips)[name] = note
        elif fields and not fields[0].startswith("#"):
            problems.append(f"line {lineno}: not a run/skip line: {line.strip()[:80]}")
    return runs, skips, problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list-rejected", action="store_true", help="print why each rejected test with a "
                    "supported op was skipped")
    ap.add_argument("--max-test-bytes", type=int, default=DEFAULT_MAX_TEST_BYTES,
                    help="without an allowlist: leave out (and list in SOURCE.json) tests larger than this; "
                    "with one: only flag larger `run` tests and candidates; 0 = no limit (default %(default)s)")
    ap.add_argument("--allowlist", type=Path, default=ALLOWLIST,
                    help="run/skip list deciding what is copied (default %(default)s); used when it exists")
    ap.add_argument("--no-allowlist", action="store_true",
                    help="ignore the allowlist: copy every candidate up to --max-test-bytes")
    args = ap.parse_args()

    allow = None
    if not args.no_allowlist and args.allowlist.is_file():
        runs, skips, problems = read_allowlist(args.allowlist)
        allow = {"path": args.allowlist, "runs": runs, "skips": skips}
        for p in problems:
            print(f"WARNING: {args.allowlist.name} {p}")
    elif not args.no_allowlist:
        print(f"NOTE: no allowlist at {args.allowlist}; copying every candidate")

    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True)
    stage = Path(tempfile.mkdtemp(prefix="onnx-node-"))

    src_dir = packaged_node_dir()
    selected = []
    rejected = collections.Counter()
    near_misses = []  # tests of a supported op rejected for another reason
    too_big = []

    if src_dir is not None:
        mode = f"copied from the installed package's {src_dir.relative_to(Path(onnx.__file__).resolve().parent.parent)}"
        items = []
        for tdir in sorted(src_dir.glob("test_*")):
            if (tdir / "model.onnx").is_file():
                items.append((tdir.name, onnx.load(str(tdir / "model.onnx"), load_external_data=False), tdir))
    else:
        mode = ("generated from onnx.backend.test.case.node (collect_testcases) of the installed package, "
                "numpy.random.seed(0), serialised like onnx.backend.test.cmd_tools; the installed onnx "
                "package does not ship backend/test/data/node")
        np.random.seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from onnx.backend.test.case import node as node_cases

            cases = node_cases.collect_testcases(None)
        items = [(c.name, c.model, c) for c in sorted(cases, key=lambda c: c.name)]

    untriaged = []  # allowlist mode: candidates neither run nor skipped
    run_not_candidate = []  # allowlist mode: `run` tests the op/type filter rejects (copied anyway)
    run_too_big = []  # allowlist mode: `run` tests over --max-test-bytes (copied anyway)
    available = {name for name, _, _ in items}
    for name, model, src in items:
        ok, why = accept(model)
        ops, _ = model_ops(model)
        if not ok:
            rejected[why.split(" [")[0]] += 1
            if ops & SUPPORTED_OPS:
                near_misses.append((name, why))
        if allow is not None:
            if name in allow["skips"]:
                continue
            if name not in allow["runs"]:
                if ok:
                    untriaged.append({"name": name, "ops": sorted(ops), "bytes": case_bytes(src)})
                continue
            if not ok:
                run_not_candidate.append((name, why))
        elif not ok:
            continue
        dest = stage / name
        if isinstance(src, Path):
            shutil.copytree(src, dest)
        else:
            write_generated_case(src, dest)
        n_sets = len(list(dest.glob("test_data_set_*")))
        size = fl.dir_bytes(dest)
        if args.max_test_bytes and size > args.max_test_bytes:
            if allow is None:
                shutil.rmtree(dest)
                too_big.append({"name": name, "ops": sorted(ops), "bytes": size})
                continue
            run_too_big.append((name, size))
        selected.append({
            "name": name,
            "ops": sorted(ops),
            "opset_imports": fl.opset_imports(model),
            "inputs": [value_desc(v) for v in model.graph.input],
            "outputs": [value_desc(v) for v in model.graph.output],
            "data_sets": n_sets,
            "expanded": "_expanded" in name,
            "bytes": fl.dir_bytes(dest),
        })

    missing_runs = sorted(set(allow["runs"]) - available) if allow is not None else []
    unknown_skips = sorted(set(allow["skips"]) - available) if allow is not None else []
    if allow is not None:
        where = allow["path"].resolve()
        where = where.relative_to(fl.REPO_DIR) if where.is_relative_to(fl.REPO_DIR) else where
        selection = (f"exactly the `run` lines of {where} ({len(allow['runs'])} run, {len(allow['skips'])} skip); candidates (every node test whose "
                     "model, incl. subgraphs/functions, uses only supported_ops in the default domain and whose "
                     "graph inputs/outputs are all tensor types) that are neither run nor skipped are listed "
                     "under untriaged_candidates, not copied")
    else:
        selection = ("every node test whose model (incl. subgraphs/functions) uses only supported_ops in the "
                     "default domain and whose graph inputs/outputs are all tensor types")

    total = fl.dir_bytes(stage)
    source = {
        "generator": "tools/copy_node_tests.py",
        "generated": fl.now_iso(),
        "onnx_version": onnx.__version__,
        "numpy_version": np.__version__,
        "mode": mode,
        "supported_ops": sorted(SUPPORTED_OPS),
        "selection": selection,
        "count": len(selected),
        "total_bytes": total,
        "rejected_counts": dict(sorted(rejected.items())),
        "max_test_bytes": args.max_test_bytes,
        "excluded_for_size": too_big,
    }
    if allow is not None:
        source.update({
            "allowlist_missing_run_tests": missing_runs,
            "allowlist_skips_not_in_source": unknown_skips,
            "allowlist_runs_not_candidates": [{"name": n, "why": w} for n, w in run_not_candidate],
            "untriaged_candidates": untriaged,
        })
    source["tests"] = selected
    # One line per test keeps the file readable and a fifth of its indented size.
    tests = source.pop("tests")
    text = json.dumps(source, indent=1)[:-2] + ',\n "tests": [\n'
    text += ",\n".join("  " + json.dumps(t, separators=(",", ":")) for t in tests) + "\n ]\n}\n"
    (OUT_DIR / "SOURCE.json").write_text(text)
    fl.write_archive(stage, OUT_DIR / ARCHIVE)
    shutil.rmtree(stage)

    per_op = collections.Counter()
    for t in selected:
        for op in t["ops"]:
            per_op[op] += 1
    dtypes = collections.Counter(v["dtype"] for t in selected for v in t["inputs"] + t["outputs"])
    print(f"{mode}\nselected {len(selected)} of {len(items)} node tests "
          f"({sum(t['expanded'] for t in selected)} _expanded); total {total / 1e6:.2f} MB, {(OUT_DIR / ARCHIVE).stat().st_size / 1e6:.2f} MB packed in {OUT_DIR / ARCHIVE}")
    print("tests per op:", dict(sorted(per_op.items())))
    print("tensor dtypes:", dict(sorted(dtypes.items())))
    missing = sorted(SUPPORTED_OPS - set(per_op))
    if missing:
        print("supported ops with no selected test:", missing)
    big = sorted((t for t in selected if t["bytes"] > BIG_TEST_BYTES), key=lambda t: -t["bytes"])
    if total > SIZE_WARN_BYTES or big:
        print(f"WARNING: total over {SIZE_WARN_BYTES / 1e6:.0f} MB" if total > SIZE_WARN_BYTES else "",
              f"kept tests over {BIG_TEST_BYTES // 1000} KB:")
        for t in big:
            print(f"  {t['name']:60s} {t['bytes'] / 1e3:8.1f} KB")
    if too_big:
        print(f"left out {len(too_big)} tests over --max-test-bytes={args.max_test_bytes} "
              f"({sum(t['bytes'] for t in too_big) / 1e6:.2f} MB; listed in SOURCE.json):")
        for t in sorted(too_big, key=lambda t: -t["bytes"]):
            print(f"  {t['name']:60s} {t['bytes'] / 1e3:8.1f} KB")
    if args.list_rejected:
        for name, why in near_misses:
            print(f"  rejected {name}: {why}")
    if allow is not None:
        print(f"allowlist {allow['path']}: {len(allow['runs'])} run, {len(allow['skips'])} skip; "
              f"copied {len(selected)}")
        for name in missing_runs:
            print(f"WARNING: run test {name} is not among the node tests of onnx {onnx.__version__}; not copied")
        for name, why in run_not_candidate:
            print(f"WARNING: run test {name} fails the op/type filter ({why}); copied anyway")
        for name, size in run_too_big:
            print(f"NOTE: run test {name} is {size / 1e3:.1f} KB (over --max-test-bytes={args.max_test_bytes})")
        if unknown_skips:
            print(f"NOTE: {len(unknown_skips)} skip entries name tests the source does not have: "
                  f"{', '.join(unknown_skips)}")
        if untriaged:
            print(f"{len(untriaged)} candidate tests are neither run nor skip in {allow['path'].name} "
                  "(add a run or skip line for each):")
            for t in untriaged:
                big = f"  (over --max-test-bytes={args.max_test_bytes})" if (
                    args.max_test_bytes and t["bytes"] > args.max_test_bytes) else ""
                print(f"  {t['name']:60s} {t['bytes'] / 1e3:8.1f} KB  {' '.join(t['ops'])}{big}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
