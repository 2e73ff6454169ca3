#!/usr/bin/env python3
"""Benchmark shortcut-detect against onnxruntime and pytorch-grad-cam on full-size models.

One run, one machine, the same thread counts for everyone.  Models: torchvision
resnet18, resnet50, vgg16 and vit_b_16 with the seeded random weights of
tools/fullsize_check.py (nothing pretrained is downloaded), exported with the
TorchScript exporter at opset 17 (tools/.cache/fullsize/<name>_ts17.onnx,
exported on demand when missing).  Inputs are seeded standard-normal float32
[B, 3, 224, 224] batches in tools/.cache/bench/input_b<B>.npy (the batch-1
input is the first image of every larger one).

For every model x thread count (--threads, default 1 2) x batch (--batches,
default 1 8) it measures:

  forward   ours: `shortcut-detect bench MODEL --input IN.npy --runs N --threads T`
            at every kernel level of --kernels (default: each level this CPU
            runs, widest first: avx512, avx2, portable), forced with
            SHORTCUT_DETECT_KERNELS; the first level is "ours" in the table
            and the targets, the others get their own column
            onnxruntime: InferenceSession(CPUExecutionProvider, default graph
            optimisation level ORT_ENABLE_ALL, intra_op_num_threads=T,
            inter_op_num_threads=1), session.run on the same input
            PyTorch held to AVX2 (only when avx2 is among the levels): the
            seeded torchvision model's forward under torch.inference_mode()
            with ONEDNN_MAX_CPU_ISA=AVX2, MKL_ENABLE_INSTRUCTIONS=AVX2 and
            ATEN_CPU_CAPABILITY=avx2, the yardstick of our avx2 level
  gradcam   ours: the same with `--layer L --method gradcam` at the first level (forward, backward
            to the layer, heatmap; each sample's predicted class)
            pytorch-grad-cam: GradCAM(model, target_layers)(input_tensor=x,
            targets=[ClassifierOutputTarget(argmax of sample i) ...]) with
            torch.set_num_threads(T); the target classes are computed once,
            outside the timing (the call does its own forward anyway)
  load      ours: load_ms printed by `bench` (model decode + Executor
            construction), median over --load-samples fresh processes (those
            of the forward jobs count);
            onnxruntime: InferenceSession creation, median over
            --load-samples creations in one process (the first, which also
            pays one-time library set-up, is kept in the JSON)

Layers: resnet -> layer4 (ours) / model.layer4[-1]; vgg16 -> features.29 /
model.features[29]; vit_b_16 -> encoder.layers.encoder_layer_11.ln_1 /
model.encoder.layers[-1].ln_1 with the reshape transform
t[:, 1:, :].reshape(N, 14, 14, C).permute(0, 3, 1, 2) (our CLI lays the tokens
on their grid itself).

Timing: each job is one fresh process (our binary, or this script re-run as
`tools/bench.py --worker ...` with only the libraries that side needs); one
warm-up run, then N timed runs; the median and the minimum are reported.  N is
--runs (default 10) but fewer when a run is long: a job aims at --budget
seconds (default 60) and never drops below 3 runs (unless --runs is below 3).
Our binary cannot adapt by itself, so its N comes from the other side's time
for the same cell.  OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS
are set to T in every job's environment.

Peak resident memory (MiB) is that job's process alone:
  * the Python workers read their own VmHWM from /proc/self/status at the end
    (exec gives a process a fresh address space, and VmHWM is per address space);
  * our binary reports getrusage's ru_maxrss.  On Linux a child's ru_maxrss
    also covers the address space it had before exec, i.e. its parent's, so it
    is taken only when it exceeds this (small, stdlib-only) parent's own
    VmHWM; otherwise the VmHWM of the child sampled every 5 ms from
    /proc/<pid>/status is used.
The pytorch-grad-cam worker's figure includes the torch/torchvision import
(its baseline after imports is kept in the JSON as baseline_rss_mib).

Share of peak: forward FLOPs per image are counted from the ONNX graph (2 x
multiply-accumulates of every Conv, Gemm and MatMul, shapes from onnx shape
inference at batch 1; cached in tools/.cache/bench/flops.json); peak =
min(T, CPUs) x GHz x FLOP/cycle/core.  GHz is cpufreq's cpuinfo_max_freq when
the kernel exposes it, else the mean `cpu MHz` of /proc/cpuinfo (--ghz
overrides).  FLOP/cycle/core (--flops-per-cycle overrides) is derived from the
CPU flags, fp32 FMA throughput: avx512f or avx2+fma -> 32 (two 256-bit FMA
pipes: Zen 2-4 execute AVX-512 as 2 x 256 bits; Intel parts with two 512-bit
FMA units reach 64, pass --flops-per-cycle 64 there), avx -> 16, else 8.

Output: progress lines (the CPU model and its SIMD features first, then our
kernel level and OpenBLAS's core as our binary reports them), then ONE
Markdown table of medians and ratios (forward ours/ORT at each level,
GradCAM pytorch-grad-cam/ours speedup and ours/ORT forward, load ours/ORT,
peak RSS), then the targets of issues 4 and 15 (report only: missing one does
not change the exit status):
  * forward ours <= 1.0x onnxruntime: resnet18, resnet50, vit_b_16; b1, b8; 2 threads
  * GradCAM ours <= 1.2x onnxruntime's forward: the same cells
  * forward at the avx2 level <= 2x onnxruntime's forward: the same cells
  * forward at the avx2 level <= PyTorch's forward held to AVX2: the same cells
  * GradCAM >= 3x faster than pytorch-grad-cam: resnet18, resnet50, vit_b_16; b1, b8
  * load <= 0.5x onnxruntime session creation: vgg16, resnet50
  * GradCAM peak RSS <= 1/4 of pytorch-grad-cam's: resnet50, b8
Everything (each job's record, FLOPs, machine, tool versions) goes to
tools/.cache/bench/results.json (--json).  Exit status: 0, or 1 if a job
failed, 2 if the binary is missing or has no `bench` command.

Build our binary first:
  swift build -c release --product shortcut-detect --scratch-path .build-release

Examples:
  tools/.venv/bin/python tools/bench.py                      # the full matrix (up to about an hour on 2 cores)
  tools/.venv/bin/python tools/bench.py --models resnet18 --batches 1 --threads 1 --runs 3
  tools/.venv/bin/python tools/bench.py --only load --models vgg16 resnet50
  tools/.venv/bin/python tools/bench.py --only forward --threads 2 --binary .build/release/shortcut-detect
"""
from __future__ import annotations

# The driver imports only the standard library, so that it stays small: our
# binary's ru_maxrss is only usable when it exceeds the driver's VmHWM (see
# above).  The heavy libraries are imported by the worker that needs them.
import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parent
REPO_DIR = TOOLS_DIR.parent
BENCH_DIR = TOOLS_DIR / ".cache" / "bench"
FULLSIZE_DIR = TOOLS_DIR / ".cache" / "fullsize"  # fullsize_check.CACHE
DEFAULT_BINARY = ".build-release/release/shortcut-detect"
BUILD_HINT = "swift build -c release --product shortcut-detect --scratch-path .build-release"

MODELS = ["resnet18", "resnet50", "vgg16", "vit_b_16"]
# Our CLI's --layer for each model (PyTorch module paths).
OUR_LAYERS = {
    "resnet18": "layer4",
    "resnet50": "layer4",
    "vgg16": "features.29",
    "vit_b_16": "encoder.layers.encoder_layer_11.ln_1",
}
KINDS = ["forward", "gradcam", "load"]
LEVELS = ["avx512", "avx2", "portable"]  # our kernel levels, widest first

# Targets of issues 4 and 15 (report only).
FORWARD_TARGET = 1.0        # ours / ORT at most
CAM_FORWARD_TARGET = 1.2    # our GradCAM / ORT forward at most
AVX2_TARGET = 2.0           # ours at the avx2 level / ORT forward (its widest ISA) at most
TORCH_AVX2_TARGET = 1.0     # ours at the avx2 level / PyTorch held to AVX2 at most
# What holds PyTorch's libraries (oneDNN, MKL, ATen's own kernels) to AVX2.
TORCH_AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
FORWARD_TARGET_THREADS = 2
CAM_TARGET = 3.0            # pytorch-grad-cam / ours at least
LOAD_TARGET = 0.5           # ours / ORT at most
RSS_TARGET = 0.25           # ours / pytorch-grad-cam at most (GradCAM)
TARGET_MODELS = ["resnet18", "resnet50", "vit_b_16"]
LOAD_TARGET_MODELS = ["vgg16", "resnet50"]
RSS_TARGET_CELL = ("resnet50", 8)


# --------------------------------------------------------------------------- small helpers


def vm_hwm(pid="self"):
    """Peak RSS (bytes) of a live process from /proc/<pid>/status, or None."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def mib(nbytes):
    return None if nbytes is None else nbytes / 2**20


def run_count(requested: int, estimate_s, budget_s: float) -> int:
    """Timed runs for a job whose single run takes about estimate_s seconds.

    --runs, but no more than fit in the budget, and never fewer than 3 (or
    --runs itself when that is smaller).
    """
    if not estimate_s or estimate_s <= 0:
        return requested
    return min(requested, max(3, int(budget_s // estimate_s)))


def summarize(times_s: list) -> dict:
    return {"median_ms": statistics.median(times_s) * 1e3, "min_ms": min(times_s) * 1e3, "runs": len(times_s)}


def input_path(batch: int) -> Path:
    return BENCH_DIR / f"input_b{batch}.npy"


def model_path(name: str) -> Path:
    return FULLSIZE_DIR / f"{name}_ts17.onnx"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


# --------------------------------------------------------------------------- workers (fresh processes)
#
# Each prints one JSON line (its last line of stdout).  Heavy imports happen here.


def _self_rss() -> dict:
    return {"peak_rss_mib": mib(vm_hwm())}


def _timed_runs(job, requested: int, budget: float) -> dict:
    """Warm up once, then time run_count(...) runs of job()."""
    t0 = time.perf_counter()
    job()
    warm = time.perf_counter() - t0
    times = []
    for _ in range(run_count(requested, warm, budget)):
        t0 = time.perf_counter()
        job()
        times.append(time.perf_counter() - t0)
    return dict(summarize(times), warmup_ms=warm * 1e3)


def _ort_session(path: str, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # graph_optimization_level stays at its default, ORT_ENABLE_ALL: what users get.
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def worker_ort_forward(a) -> dict:
    import numpy as np

    x = np.load(a.input)
    t0 = time.perf_counter()
    sess = _ort_session(a.model, a.threads)
    load = time.perf_counter() - t0
    feed = {sess.get_inputs()[0].name: x}
    out = _timed_runs(lambda: sess.run(None, feed), a.runs, a.budget)
    classes = [int(c) for c in np.argmax(sess.run(None, feed)[0], axis=1)]
    return dict(out, load_ms=load * 1e3, classes=classes, **_self_rss())


def worker_ort_load(a) -> dict:
    import gc

    import onnxruntime  # noqa: F401  (imported before the clock starts)

    times = []
    for _ in range(max(a.runs, 1)):
        t0 = time.perf_counter()
        sess = _ort_session(a.model, a.threads)
        times.append(time.perf_counter() - t0)
        del sess
        gc.collect()
    return dict(summarize(times), first_ms=times[0] * 1e3, all_ms=[t * 1e3 for t in times], **_self_rss())


def worker_torch_forward(a) -> dict:
    """The seeded torchvision model's forward (the environment decides PyTorch's instruction set)."""
    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    fc = _import_torch_side()
    model = fc.build(a.torch_model).eval()
    x = torch.from_numpy(np.load(a.input))

    def forward():
        with torch.inference_mode():
            return model(x)

    out = _timed_runs(forward, a.runs, a.budget)
    return dict(out, cpu_capability=torch.backends.cpu.get_cpu_capability(), **_self_rss())


def _import_torch_side():
    """torchvision (through tvcompat, before pytorch_grad_cam), torch, fullsize_check."""
    sys.path.insert(0, str(TOOLS_DIR))
    from tvcompat import torchvision  # noqa: F401

    import fullsize_check as fc

    return fc


def worker_pgc(a) -> dict:
    """pytorch-grad-cam's GradCAM on the seeded model of fullsize_check."""
    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    fc = _import_torch_side()
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    import fixturelib as fl

    fl.quiet_warnings()
    baseline = mib(vm_hwm())
    model = fc.build(a.torch_model)
    x = torch.from_numpy(np.load(a.input))
    reshape = None
    if a.torch_model.startswith("resnet"):
        layer = model.layer4[-1]
    elif a.torch_model == "vgg16":
        layer = model.features[29]
    elif a.torch_model == "vit_b_16":
        layer = model.encoder.layers[-1].ln_1
        side = model.image_size // model.patch_size

        def reshape(t):  # drop the class token, tokens -> [N, C, 14, 14]
            return t[:, 1:, :].reshape(t.size(0), side, side, t.size(2)).permute(0, 3, 1, 2)
    else:
        raise SystemExit(f"no target layer for {a.torch_model}")
    with torch.no_grad():
        classes = [int(c) for c in model(x).argmax(dim=1)]
    targets = [ClassifierOutputTarget(c) for c in classes]
    cam = GradCAM(model=model, target_layers=[layer], reshape_transform=reshape)
    try:
        out = _timed_runs(lambda: cam(input_tensor=x, targets=targets), a.runs, a.budget)
    finally:
        cam.activations_and_grads.release()
    return dict(out, classes=classes, baseline_rss_mib=baseline, **_self_rss())


def _count_flops(path: Path) -> dict:
    """Forward FLOPs per image: 2 x MACs of Conv, Gemm and MatMul, shapes inferred at batch 1."""
    import numpy as np
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(path))
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = 1
    model = shape_inference.infer_shapes(model, data_prop=True)
    shapes = {}
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    shapes[node.output[0]] = list(numpy_helper.to_array(attr.t).shape)

    def known(*shs):
        return all(s is not None and all(isinstance(d, int) and d > 0 for d in s) for s in shs)

    counted = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    # Shape inference cannot always follow shapes computed at run time (the attention
    # head size of the TorchScript ViT export, say): fetch those tensors from one
    # onnxruntime run at batch 1 instead.
    missing = sorted({t for n in counted for t in (n.input[0], n.input[1], n.output[0]) if not known(shapes.get(t))})
    if missing:
        import onnxruntime as ort
        from onnx import helper

        outputs = {o.name for o in model.graph.output}
        for name in missing:
            if name not in outputs:
                model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 3
        sess = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        x = np.zeros([1] + [d if isinstance(d, int) else 1 for d in inp.shape[1:]], dtype=np.float32)
        for name, value in zip(missing, sess.run(missing, {inp.name: x})):
            shapes[name] = list(value.shape)

    macs = {"Conv": 0, "Gemm": 0, "MatMul": 0}
    unknown = []
    for node in counted:
        ins = [shapes.get(n) for n in node.input[:2]]
        out = shapes.get(node.output[0])
        if not known(ins[0], ins[1], out):
            unknown.append(node.name)
        elif node.op_type == "Conv":
            # every output element: (C_in / group) x kH x kW multiply-accumulates = prod(W.shape[1:])
            macs["Conv"] += int(np.prod(out)) * int(np.prod(ins[1][1:]))
        elif node.op_type == "Gemm":
            trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
            macs["Gemm"] += int(np.prod(out)) * int(ins[0][0] if trans_a else ins[0][1])
        else:  # MatMul: every output element is a dot product along A's last axis
            macs["MatMul"] += int(np.prod(out)) * int(ins[0][-1])
    total = sum(macs.values())
    return {"flops": 2 * total, "gmac": total / 1e9, "macs_by_op": macs, "unknown_shape_nodes": unknown}


def worker_prepare(a) -> dict:
    """Export missing models, write the inputs, count FLOPs, collect tool versions."""
    import numpy as np
    import torch

    fc = _import_torch_side()
    import fixturelib as fl

    fl.quiet_warnings()
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    fc.CACHE.mkdir(parents=True, exist_ok=True)
    notes = []
    for name in a.models:
        path = model_path(name)
        if not path.exists():
            print(f"  export {path.name}", file=sys.stderr, flush=True)
            example = np.random.default_rng(fc.SEED).standard_normal((2, 3, 224, 224)).astype(np.float32)
            example = torch.from_numpy(example)  # batch 2: the batch axis is exported as dynamic
            fc.export_ts(fc.build(name), example, path, 17)
            notes.append(f"exported {path.name}")
    for b in a.batches:
        x = np.random.default_rng(fc.SEED).standard_normal((b, 3, 224, 224)).astype(np.float32)
        p = input_path(b)
        if not p.exists() or not np.array_equal(np.load(p), x):
            fl.save_npy(p, x)

    # FLOPs, cached per file (name, size, mtime)
    cache_file = BENCH_DIR / "flops.json"
    cache = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    flops = {}
    for name in a.models:
        path = model_path(name)
        st = path.stat()
        key = f"{path.name}:{st.st_size}:{int(st.st_mtime)}"
        if key not in cache:
            cache[key] = _count_flops(path)
        flops[name] = cache[key]
    cache_file.write_text(json.dumps(cache, indent=1) + "\n")
    return {"flops": flops, "tools": fl.tool_versions(), "fullsize_seed": fc.SEED, "notes": notes}


WORKERS = {
    "ort-forward": worker_ort_forward,
    "ort-load": worker_ort_load,
    "pgc": worker_pgc,
    "torch-forward": worker_torch_forward,
    "prepare": worker_prepare,
}


def worker_main(argv: list) -> int:
    ap = argparse.ArgumentParser(prog="bench.py --worker")
    ap.add_argument("--worker", choices=list(WORKERS), required=True)
    ap.add_argument("--model", help="ONNX file")
    ap.add_argument("--torch-model", help="fullsize_check model name")
    ap.add_argument("--input")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--models", nargs="*", default=[])
    ap.add_argument("--batches", nargs="*", type=int, default=[])
    a = ap.parse_args(argv)
    result = WORKERS[a.worker](a)
    sys.stdout.flush()
    print(json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------- driver side


def job_env(threads: int, kernels=None) -> dict:
    env = dict(os.environ)
    if kernels:
        env["SHORTCUT_DETECT_KERNELS"] = kernels
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("TQDM_DISABLE", "1")
    return env


def run_job(cmd: list, env: dict, timeout: float) -> dict:
    """Run one fresh process; its last stdout line is JSON.

    Returns {"result": dict or None, "error": str or None, "wall_s", "sampled_hwm_mib"}.
    """
    rec = {"cmd": cmd, "result": None, "error": None}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO_DIR)
        hwm = None
        while proc.poll() is None:
            sample = vm_hwm(proc.pid)  # only grows; the last sample is the peak so far
            if sample is not None:
                hwm = max(hwm or 0, sample)
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                proc.wait()
                rec["error"] = f"timeout after {timeout:.0f} s"
                break
            time.sleep(0.005)
        rec["wall_s"] = time.perf_counter() - t0
        rec["sampled_hwm_mib"] = mib(hwm)
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace").strip()
        errtext = err.read().decode(errors="replace").strip()
    if rec["error"] is None:
        lines = text.splitlines()
        try:
            if proc.returncode != 0:
                raise ValueError
            rec["result"] = json.loads(lines[-1])
        except (ValueError, IndexError):
            tail = (errtext or text).splitlines()[-4:]
            rec["error"] = f"exit {proc.returncode}: {' | '.join(tail)}"
    return rec


def python_worker(kind: str, threads: int, timeout: float, env=None, **kw) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--threads", str(threads)]
    for key, value in kw.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, (list, tuple)):
            cmd += [flag] + [str(v) for v in value]
        else:
            cmd += [flag, str(value)]
    return run_job(cmd, {**job_env(threads), **(env or {})}, timeout)


def wait_for(binary: Path, seconds: float = 300) -> None:
    """Give a rebuild in progress (the binary briefly missing) a few minutes to finish."""
    deadline = time.monotonic() + seconds
    while not binary.exists() and time.monotonic() < deadline:
        time.sleep(5)


def binary_version(binary: Path) -> str:
    try:
        return subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def binary_stamp(binary: Path):
    try:
        st = binary.stat()
        return [st.st_size, st.st_mtime]
    except OSError:
        return None


def ours_job(binary: Path, model: Path, inp: Path, threads: int, runs: int, timeout: float, layer=None,
             kernels=None) -> dict:
    wait_for(binary)
    cmd = [str(binary), "bench", str(model), "--input", str(inp), "--runs", str(runs), "--threads", str(threads)]
    if layer:
        cmd += ["--layer", layer, "--method", "gradcam"]
    parent_hwm = mib(vm_hwm())
    rec = run_job(cmd, job_env(threads, kernels), timeout)
    rec["binary_stamp"] = binary_stamp(binary)
    res = rec["result"]
    if res is not None and kernels and res.get("kernels") != kernels:
        rec["result"], rec["error"] = None, f"asked for the {kernels} kernels, the binary ran {res.get('kernels')}"
    elif res is not None:
        # ru_maxrss includes the pre-exec address space (this driver's) when that was larger.
        reported = res.get("peak_rss_mb")
        res["reported_rss_mib"] = reported
        res["driver_hwm_mib"] = parent_hwm
        if reported is not None and parent_hwm is not None and reported > parent_hwm:
            res["peak_rss_mib"], res["rss_source"] = reported, "ru_maxrss"
        else:
            res["peak_rss_mib"], res["rss_source"] = rec["sampled_hwm_mib"], "sampled VmHWM"
    return rec


def check_binary(binary: Path):
    """None if binary runs `bench`, else the reason it cannot be used."""
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        return f"{binary} not found"
    try:
        proc = subprocess.run([str(binary), "bench", "--help"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{binary}: {e}"
    if proc.returncode != 0 or b"median_ms" not in proc.stdout + proc.stderr:
        return f"{binary} has no `bench` command (an older build?)"
    return None


def cpu_levels(machine: dict) -> list:
    """Our kernel levels this CPU runs, widest first (as the binary decides from the same flags)."""
    flags = set(machine.get("flags", []))
    runs = {"avx512": "avx512f" in flags, "avx2": {"avx2", "fma"} <= flags, "portable": True}
    return [level for level in LEVELS if runs[level]]


def level_side(level: str, levels: list) -> str:
    """The cell side of our forward at `level`: "ours" for the first level measured."""
    return "ours" if level == levels[0] else f"ours-{level}"


def machine_info(ghz_override, fpc_override) -> dict:
    info = {"platform": platform.platform(), "machine": platform.machine()}
    fields, mhz = {}, []
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if ":" not in line:
                    continue
                k, v = (s.strip() for s in line.split(":", 1))
                if k == "cpu MHz":
                    mhz.append(float(v))
                fields.setdefault(k, v)
    except OSError:
        pass
    flags = set(fields.get("flags", "").split())
    info.update({
        "cpu_model": fields.get("model name"), "vendor": fields.get("vendor_id"),
        "cpu_family": fields.get("cpu family"), "cpu_model_number": fields.get("model"),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "simd": sorted(f for f in flags if f in ("avx512f", "avx2", "fma", "avx", "sse4_2")),
        "flags": sorted(flags),
    })
    try:
        with open("/proc/meminfo") as fh:
            info["mem_total_mib"] = int(fh.readline().split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass

    ghz, ghz_source = None, None
    try:
        khz = int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text())
        ghz, ghz_source = khz / 1e6, "cpufreq cpuinfo_max_freq"
    except (OSError, ValueError):
        if mhz:
            ghz, ghz_source = statistics.mean(mhz) / 1e3, "/proc/cpuinfo cpu MHz"
    if ghz_override:
        ghz, ghz_source = ghz_override, "--ghz"

    if "avx512f" in flags or {"avx2", "fma"} <= flags:
        fpc, fpc_source = 32, "avx512f or avx2+fma: two 256-bit FMA pipes x 8 fp32 x 2"
    elif "avx" in flags:
        fpc, fpc_source = 16, "avx: 256-bit add + mul"
    else:
        fpc, fpc_source = 8, "fallback (128-bit SIMD)"
    if fpc_override:
        fpc, fpc_source = fpc_override, "--flops-per-cycle"
    info.update({"ghz": ghz, "ghz_source": ghz_source, "flops_per_cycle": fpc, "flops_per_cycle_source": fpc_source})
    return info


def peak_gflops(machine: dict, threads: int):
    if not machine.get("ghz"):
        return None
    return min(threads, machine["cpus"] or threads) * machine["ghz"] * machine["flops_per_cycle"]


# --------------------------------------------------------------------------- report


def fmt_ms(v):
    if v is None:
        return "-"
    return f"{v:.0f}" if v >= 1000 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def fmt_ratio(v):
    return "-" if v is None else f"{v:.2f}"


def fmt_mib(v):
    return "-" if v is None else f"{v:.0f}"


def fmt_pair(ours, theirs, fmt):
    """'ours (theirs)', or '-' when neither was measured."""
    if ours is None and theirs is None:
        return "-"
    return f"{fmt(ours)} ({fmt(theirs)})"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def peak_share(flops: dict, machine: dict, model: str, batch: int, threads: int, median_ms):
    """Forward FLOP rate over the peak of the cores used, or None."""
    f = (flops.get(model) or {}).get("flops")
    peak = peak_gflops(machine, threads)
    if median_ms is None or not f or not peak:
        return None
    return f * batch / (median_ms / 1e3) / 1e9 / peak


def all_shares(cells: dict, flops: dict, machine: dict) -> list:
    return [peak_share(flops, machine, k[0], k[1], k[2], v["median_ms"])
            for k, v in cells.items() if k[3] == "forward"]


def table(cells: dict, loads: dict, models, threads_list, batches, flops, machine, levels) -> list:
    header = ["model", "B", "T",
              f"fwd ours ({levels[0]}) ms", "fwd ORT ms", "fwd ours/ORT", "fwd % peak ours (ORT)",
              "fwd RSS MiB ours (ORT)"]
    header += [f"fwd {level} ms (/ORT)" for level in levels[1:]]
    if "avx2" in levels:
        header += ["fwd torch AVX2 ms"]
    header += ["CAM ours ms", "CAM pgc ms", "CAM speedup pgc/ours", "CAM ours/ORT fwd", "CAM RSS MiB ours (pgc)",
               "load ours ms", "load ORT ms", "load ours/ORT"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]

    def med(model, b, t, kind, side):
        r = cells.get((model, b, t, kind, side))
        return None if r is None else r.get("median_ms")

    def rss(model, b, t, kind, side):
        r = cells.get((model, b, t, kind, side))
        return None if r is None else r.get("peak_rss_mib")

    for model in models:
        for t in threads_list:
            for b in batches:
                fo, fr = med(model, b, t, "forward", "ours"), med(model, b, t, "forward", "ort")
                co, cp = med(model, b, t, "gradcam", "ours"), med(model, b, t, "gradcam", "pgc")
                share = [peak_share(flops, machine, model, b, t, v) for v in (fo, fr)]
                share_s = "-" if share[0] is None else f"{100 * share[0]:.0f}%"
                if share[1] is not None:
                    share_s += f" ({100 * share[1]:.0f}%)"
                lo, lr = loads.get((model, t, "ours")), loads.get((model, t, "ort"))
                lo, lr = (None if lo is None else lo["median_ms"]), (None if lr is None else lr["median_ms"])
                others = [med(model, b, t, "forward", level_side(level, levels)) for level in levels[1:]]
                lines.append("| " + " | ".join([
                    model, str(b), str(t),
                    fmt_ms(fo), fmt_ms(fr), fmt_ratio(ratio(fo, fr)), share_s,
                    fmt_pair(rss(model, b, t, "forward", "ours"), rss(model, b, t, "forward", "ort"), fmt_mib),
                ] + [f"{fmt_ms(v)} ({fmt_ratio(ratio(v, fr))})" for v in others]
                    + ([fmt_ms(med(model, b, t, "forward", "torch-avx2"))] if "avx2" in levels else []) + [
                    fmt_ms(co), fmt_ms(cp), fmt_ratio(ratio(cp, co)), fmt_ratio(ratio(co, fr)),
                    fmt_pair(rss(model, b, t, "gradcam", "ours"), rss(model, b, t, "gradcam", "pgc"), fmt_mib),
                    fmt_ms(lo), fmt_ms(lr), fmt_ratio(ratio(lo, lr)),
                ]) + " |")
    return lines


def targets(cells: dict, loads: dict, models, threads_list, batches, levels) -> list:
    """[{target, cells: [{cell, value, met}], met, total}] for the cells that were measured."""
    out = []

    def add(title, entries):
        entries = [e for e in entries if e["value"] is not None]
        out.append({"target": title, "cells": entries,
                    "met": sum(e["met"] for e in entries), "total": len(entries)})

    def val(key, field="median_ms"):
        r = cells.get(key)
        return None if r is None else r.get(field)

    cam_batches = [b for b in batches if b in (1, 8)]
    entries = []
    for m in [m for m in TARGET_MODELS if m in models]:
        for b in cam_batches:
            t = FORWARD_TARGET_THREADS
            r = ratio(val((m, b, t, "forward", "ours")), val((m, b, t, "forward", "ort")))
            entries.append({"cell": f"{m} b{b} t{t}", "value": r, "met": r is not None and r <= FORWARD_TARGET})
    add(f"forward ours/ORT <= {FORWARD_TARGET} (2 threads)", entries)

    entries = []
    for m in [m for m in TARGET_MODELS if m in models]:
        for b in cam_batches:
            t = FORWARD_TARGET_THREADS
            r = ratio(val((m, b, t, "gradcam", "ours")), val((m, b, t, "forward", "ort")))
            entries.append({"cell": f"{m} b{b} t{t}", "value": r, "met": r is not None and r <= CAM_FORWARD_TARGET})
    add(f"GradCAM ours / ORT forward <= {CAM_FORWARD_TARGET} (2 threads)", entries)

    entries = []
    if "avx2" in levels:
        for m in [m for m in TARGET_MODELS if m in models]:
            for b in cam_batches:
                t = FORWARD_TARGET_THREADS
                r = ratio(val((m, b, t, "forward", level_side("avx2", levels))), val((m, b, t, "forward", "ort")))
                entries.append({"cell": f"{m} b{b} t{t}", "value": r, "met": r is not None and r <= AVX2_TARGET})
    add(f"forward at the avx2 level / ORT forward <= {AVX2_TARGET:g} (2 threads)", entries)

    entries = []
    if "avx2" in levels:
        for m in [m for m in TARGET_MODELS if m in models]:
            for b in cam_batches:
                t = FORWARD_TARGET_THREADS
                r = ratio(val((m, b, t, "forward", level_side("avx2", levels))), val((m, b, t, "forward", "torch-avx2")))
                entries.append({"cell": f"{m} b{b} t{t}", "value": r, "met": r is not None and r <= TORCH_AVX2_TARGET})
    add(f"forward at the avx2 level / PyTorch held to AVX2 <= {TORCH_AVX2_TARGET:g} (2 threads)", entries)

    entries = []
    for m in [m for m in TARGET_MODELS if m in models]:
        for t in threads_list:
            for b in cam_batches:
                r = ratio(val((m, b, t, "gradcam", "pgc")), val((m, b, t, "gradcam", "ours")))
                entries.append({"cell": f"{m} b{b} t{t}", "value": r, "met": r is not None and r >= CAM_TARGET})
    add(f"GradCAM speedup pgc/ours >= {CAM_TARGET:g}", entries)

    entries = []
    for m in [m for m in LOAD_TARGET_MODELS if m in models]:
        for t in threads_list:
            lo, lr = loads.get((m, t, "ours")), loads.get((m, t, "ort"))
            r = None if lo is None or lr is None else ratio(lo["median_ms"], lr["median_ms"])
            entries.append({"cell": f"{m} t{t}", "value": r, "met": r is not None and r <= LOAD_TARGET})
    add(f"load ours/ORT <= {LOAD_TARGET:g}", entries)

    entries = []
    m, b = RSS_TARGET_CELL
    if m in models and b in batches:
        for t in threads_list:
            r = ratio(val((m, b, t, "gradcam", "ours"), "peak_rss_mib"),
                      val((m, b, t, "gradcam", "pgc"), "peak_rss_mib"))
            entries.append({"cell": f"{m} b{b} t{t}", "value": r, "met": r is not None and r <= RSS_TARGET})
    add(f"GradCAM peak RSS ours/pgc <= {RSS_TARGET:g}", entries)
    return out


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", choices=MODELS, default=MODELS)
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--runs", type=int, default=10, help="timed runs per job after one warm-up (default 10)")
    ap.add_argument("--budget", type=float, default=60.0,
                    help="seconds of timed runs a job aims at; long runs get fewer (never < 3) runs (default 60)")
    ap.add_argument("--load-samples", type=int, default=3, help="samples per load median (default 3)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure each forward/GradCAM pair this many times, alternating the two sides, and keep "
                         "each side's best median: on a shared or virtual machine other tenants slow single "
                         "runs by tens of percent (default 1)")
    ap.add_argument("--only", nargs="+", choices=KINDS, default=KINDS, help="measure only these (default all)")
    ap.add_argument("--kernels", nargs="+", choices=LEVELS,
                    help="our kernel levels to time the forward at, the first also for GradCAM and load "
                         "(default: every level this CPU runs, widest first)")
    ap.add_argument("--binary", metavar="PATH", default=DEFAULT_BINARY,
                    help=f"shortcut-detect executable (default <repo>/{DEFAULT_BINARY})")
    ap.add_argument("--json", metavar="PATH", default=str(BENCH_DIR / "results.json"),
                    help="where to write the results (default tools/.cache/bench/results.json)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds allowed per job (default 1800)")
    ap.add_argument("--ghz", type=float, help="core clock for the peak FLOP rate (default: detected)")
    ap.add_argument("--flops-per-cycle", type=int,
                    help="fp32 FLOP per cycle per core for the peak (default: from the CPU flags, see above)")
    args = ap.parse_args()

    binary = Path(args.binary).expanduser()
    if not binary.is_absolute():
        binary = REPO_DIR / binary
    problem = check_binary(binary)
    if problem:
        print(f"{problem}; build it with `{BUILD_HINT}` or pass --binary")
        return 2

    machine = machine_info(args.ghz, args.flops_per_cycle)
    if not machine["ghz"]:
        print("could not detect the CPU clock; pass --ghz (the peak-share column stays empty without it)")
    ghz = f"{machine['ghz']:.2f} GHz ({machine['ghz_source']})" if machine["ghz"] else "? GHz"
    peaks = ", ".join(f"{t} thread(s) {peak_gflops(machine, t) or 0:.0f} GFLOP/s" for t in args.threads)
    print(f"machine: {machine['cpu_model']} (family {machine['cpu_family']} model {machine['cpu_model_number']}), "
          f"{machine['cpus']} CPUs, {ghz}, {machine['flops_per_cycle']} fp32 FLOP/cycle/core "
          f"({machine['flops_per_cycle_source']}); peak {peaks}", flush=True)
    print(f"SIMD: {' '.join(machine['simd'])}", flush=True)
    levels = args.kernels or cpu_levels(machine)
    stamp = binary_stamp(binary)
    print(f"binary: {binary}; kernel levels: {' '.join(levels)}", flush=True)

    # Exports, inputs, FLOPs and tool versions, in one worker (keeps this process small).
    prep = python_worker("prepare", 1, args.timeout, models=args.models, batches=args.batches)
    if prep["error"]:
        print(f"prepare failed: {prep['error']}")
        return 1
    prep = prep["result"]
    flops = prep["flops"]
    for name in args.models:
        f = flops[name]
        extra = f"; shapes unknown at {len(f['unknown_shape_nodes'])} node(s)" if f["unknown_shape_nodes"] else ""
        print(f"{name}: {f['gmac']:.2f} GMAC per image ({model_path(name).name}){extra}", flush=True)

    cells, loads, jobs, errors = {}, {}, [], []
    # our load_ms samples per (model, threads), one per fresh forward process
    our_load_samples: dict = {}

    def record(key, rec, label):
        jobs.append({"cell": list(key), "label": label, **rec})
        if rec["error"]:
            errors.append(f"{key[0]} b{key[1]} t{key[2]} {label}: {rec['error']}")
            print(f"    {label}: ERROR {rec['error']}", flush=True)
            return None
        res = rec["result"]
        best = cells.get(key)
        if best is None or res["median_ms"] < best["median_ms"]:
            cells[key] = res
        extra = f", load {res['load_ms']:.0f} ms" if "load_ms" in res else ""
        print(f"    {label}: median {res['median_ms']:.1f} ms (min {res['min_ms']:.1f}, {res['runs']} runs), "
              f"peak RSS {fmt_mib(res.get('peak_rss_mib'))} MiB{extra}", flush=True)
        return res

    def estimate_s(*keys):
        """Seconds per run of the first measured cell among keys (for our binary's --runs)."""
        for k in keys:
            r = cells.get(k)
            if r:
                return r["median_ms"] / 1e3
        return None

    for name in args.models:
        onnx_file = model_path(name)
        for t in args.threads:
            for b in args.batches:
                inp = input_path(b)
                for rnd in range(max(args.rounds, 1)):
                    if "forward" in args.only or "gradcam" in args.only:
                        tag = f"  round {rnd + 1}/{args.rounds}" if args.rounds > 1 else ""
                        print(f"{name} b{b} t{t}{tag}  (load avg {os.getloadavg()[0]:.2f})", flush=True)
                    if "forward" in args.only:
                        record((name, b, t, "forward", "ort"), python_worker(
                            "ort-forward", t, args.timeout, model=onnx_file, input=inp, runs=args.runs,
                            budget=args.budget), "ORT forward")
                        runs = run_count(args.runs, estimate_s((name, b, t, "forward", "ort")), args.budget)
                        for level in levels:
                            res = record((name, b, t, "forward", level_side(level, levels)),
                                         ours_job(binary, onnx_file, inp, t, runs, args.timeout, kernels=level),
                                         f"ours forward ({level})")
                            if res and level == levels[0] and res.get("load_ms") is not None:
                                our_load_samples.setdefault((name, t), []).append(res["load_ms"])  # one load sample
                            if level == "avx2":
                                record((name, b, t, "forward", "torch-avx2"), python_worker(
                                    "torch-forward", t, args.timeout, env=TORCH_AVX2_ENV, torch_model=name, input=inp,
                                    runs=args.runs, budget=args.budget), "PyTorch forward (AVX2)")
                            if res and not machine.get("blas_core") and res.get("blas_core"):
                                machine["blas_core"] = res["blas_core"]
                                print(f"    OpenBLAS core: {res['blas_core']}", flush=True)
                    if "gradcam" in args.only:
                        layer = OUR_LAYERS[name]
                        record((name, b, t, "gradcam", "pgc"), python_worker(
                            "pgc", t, args.timeout, torch_model=name, input=inp, runs=args.runs,
                            budget=args.budget), "pytorch-grad-cam")
                        runs = run_count(args.runs, estimate_s((name, b, t, "gradcam", "pgc"),
                                                               (name, b, t, "forward", "ours")), args.budget)
                        record((name, b, t, "gradcam", "ours"),
                               ours_job(binary, onnx_file, inp, t, runs, args.timeout, layer=layer, kernels=levels[0]),
                               f"ours GradCAM ({levels[0]})")

            if "load" in args.only:
                print(f"{name} load t{t}", flush=True)
                samples = our_load_samples.setdefault((name, t), [])
                small = min(args.batches)  # the process also runs 2 forwards: keep them short
                while len(samples) < args.load_samples:
                    rec = ours_job(binary, onnx_file, input_path(small), t, 1, args.timeout, kernels=levels[0])
                    jobs.append({"cell": [name, small, t, "load", "ours"], "label": "ours load", **rec})
                    if rec["error"]:
                        errors.append(f"{name} t{t} ours load: {rec['error']}")
                        break
                    samples.append(rec["result"]["load_ms"])
                if samples:
                    loads[(name, t, "ours")] = {"median_ms": statistics.median(samples), "samples_ms": samples}
                rec = python_worker("ort-load", t, args.timeout, model=onnx_file, runs=args.load_samples)
                jobs.append({"cell": [name, None, t, "load", "ort"], "label": "ORT load", **rec})
                if rec["error"]:
                    errors.append(f"{name} t{t} ORT load: {rec['error']}")
                else:
                    loads[(name, t, "ort")] = rec["result"]
                lo, lr = loads.get((name, t, "ours")), loads.get((name, t, "ort"))
                print(f"    load: ours {fmt_ms(lo and lo['median_ms'])} ms, "
                      f"ORT {fmt_ms(lr and lr['median_ms'])} ms (first {fmt_ms(lr and lr['first_ms'])} ms)",
                      flush=True)

    # Do the two sides agree on the predicted classes? (same ONNX file / same seeded model)
    notes = list(prep.get("notes", []))
    if any(j.get("binary_stamp") not in (None, stamp) for j in jobs):
        notes.append(f"{binary} was rebuilt during the run: our rows may come from different builds")
    for (name, b, t, kind, side), res in cells.items():
        if (kind, side) == ("gradcam", "pgc"):
            ort = cells.get((name, b, t, "forward", "ort"))
            if ort and ort.get("classes") != res.get("classes"):
                notes.append(f"{name} b{b}: ORT classes {ort.get('classes')} != PyTorch {res.get('classes')}")

    print()
    for line in table(cells, loads, args.models, args.threads, args.batches, flops, machine, levels):
        print(line)
    print()
    print("B batch, T threads; times are medians over the timed runs (with --rounds, each side's best round); "
          "RSS is each job's own peak. "
          f"% peak: forward GFLOP/s over min(T, CPUs) x {ghz.split(' (')[0]} x "
          f"{machine['flops_per_cycle']} FLOP/cycle.")
    if any(s > 1 for s in all_shares(cells, flops, machine)):
        print("Shares above 100% mean the cores run faster than the clock assumed (boost): pass --ghz "
              "with the sustained clock for a tighter peak.")
    tg = targets(cells, loads, args.models, args.threads, args.batches, levels)
    print()
    print("Targets (report only):")
    for t in tg:
        if not t["total"]:
            print(f"  - {t['target']}: not measured")
            continue
        detail = ", ".join(f"{e['cell']} {e['value']:.2f} {'met' if e['met'] else 'MISSED'}" for e in t["cells"])
        print(f"  - {t['target']}: {t['met']}/{t['total']} met ({detail})")
    for n in notes:
        print(f"note: {n}")
    for e in errors:
        print(f"error: {e}")

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "generated": now_iso(), "tools": prep["tools"], "machine": machine, "binary": str(binary),
        "options": {k: v for k, v in vars(args).items() if k != "json"},
        "flops": flops, "peak_gflops": {str(t): peak_gflops(machine, t) for t in args.threads},
        "cells": [{"model": k[0], "batch": k[1], "threads": k[2], "kind": k[3], "side": k[4], **v}
                  for k, v in cells.items()],
        "loads": [{"model": k[0], "threads": k[1], "side": k[2], **v} for k, v in loads.items()],
        "targets": tg, "notes": notes, "errors": errors, "jobs": jobs,
    }, indent=1) + "\n")
    print(f"\nresults: {out}")
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sys.exit(worker_main(sys.argv[1:]))
    sys.exit(main())
