#!/usr/bin/env python3
"""Compare shortcut-detect with onnxruntime on full-size classifiers (random weights).

For each model (seeded random weights, nothing pretrained is downloaded):
  * export with the TorchScript exporter (opset 17) and the dynamo exporter
    (opset 18; for the attention models also the highest opset in HIGH_OPSETS
    that the exporter writes and onnxruntime runs: that is where
    scaled-dot-product attention becomes the ONNX Attention op);
  * save a seeded input (batch 2, 3x224x224) and onnxruntime's logits
    (CPU, graph optimisations disabled);
  * run  <binary> run MODEL.onnx --input IN.npy --output OUT.npy and compare
    (<binary> is --binary; default <repo>/.build/release/shortcut-detect).
    The table also gives the peak resident memory of that process: its
    VmHWM in /proc/<pid>/status (Linux), sampled every 10 ms while it runs.
    (ru_maxrss from wait4 would be wrong here: a child forked from this
    multi-GB Python process inherits the parent's RSS high-water mark.)

Everything lands in tools/.cache/fullsize/ (gitignored).  The dynamo exporter
is used with its default external_data=True, so its models are
<name>.onnx + <name>.onnx.data; the TorchScript exporter writes one file.

Examples:
  tools/.venv/bin/python tools/fullsize_check.py                   # everything
  tools/.venv/bin/python tools/fullsize_check.py --models resnet18 --export-only
  tools/.venv/bin/python tools/fullsize_check.py --skip-export     # re-run the comparison only
  tools/.venv/bin/python tools/fullsize_check.py --binary .build-release/release/shortcut-detect
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tvcompat import torchvision  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402

import fixturelib as fl  # noqa: E402
from bench import vm_hwm  # noqa: E402  (standard library only at import)

CACHE = fl.TOOLS_DIR / ".cache" / "fullsize"
DEFAULT_BINARY = ".build/release/shortcut-detect"
BINARY = fl.REPO_DIR / DEFAULT_BINARY  # set from --binary in main()
HIGH_OPSETS = (25, 24, 23)
PASS_RATIO = 1e-4
SEED = 1234


def _tv(name):
    return lambda: getattr(torchvision.models, name)(weights=None)


MODELS = {
    # name: (builder, source, attention model?)
    "resnet18": (_tv("resnet18"), "torchvision.models.resnet18(weights=None)", False),
    "resnet50": (_tv("resnet50"), "torchvision.models.resnet50(weights=None)", False),
    "vgg16": (_tv("vgg16"), "torchvision.models.vgg16(weights=None)", False),
    "vgg11_bn": (_tv("vgg11_bn"), "torchvision.models.vgg11_bn(weights=None)", False),
    "vit_b_16": (_tv("vit_b_16"), "torchvision.models.vit_b_16(weights=None)", True),
    "deit_tiny_patch16_224": (
        lambda: timm.create_model("deit_tiny_patch16_224", pretrained=False),
        "timm.create_model('deit_tiny_patch16_224', pretrained=False)",
        True,
    ),
    "mobilenet_v2": (_tv("mobilenet_v2"), "torchvision.models.mobilenet_v2(weights=None)", False),
    "densenet121": (_tv("densenet121"), "torchvision.models.densenet121(weights=None)", False),
}


def build(name: str):
    builder = MODELS[name][0]
    torch.manual_seed(SEED)
    model = builder().eval()
    fl.randomize(model, torch.Generator().manual_seed(SEED + 1))
    return model


def export_ts(model, x, path: Path, opset: int) -> None:
    with fl.captured_output():
        torch.onnx.export(
            model, (x,), str(path), dynamo=False, opset_version=opset,
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )


def export_dynamo(model, x, path: Path, opset: int) -> None:
    for stale in (path, Path(str(path) + ".data")):
        stale.unlink(missing_ok=True)
    with fl.captured_output():
        torch.onnx.export(
            model, (x,), str(path), dynamo=True, opset_version=opset,
            input_names=["input"], output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
    got = fl.opset_imports(onnx.load(str(path), load_external_data=False)).get("")
    if got != opset:
        raise RuntimeError(f"dynamo exporter wrote opset {got} when asked for {opset}")


def files_of(path: Path) -> list:
    """The .onnx file plus every external-data file it references."""
    model = onnx.load(str(path), load_external_data=False)
    extra = set()
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            for kv in t.external_data:
                if kv.key == "location":
                    extra.add(kv.value)
    return [path.name] + sorted(extra)


def run_ort(path: Path, x_np: np.ndarray):
    t0 = time.perf_counter()
    sess = fl.ort_session(path, threads=0)  # 0 = onnxruntime's default thread count
    t1 = time.perf_counter()
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x_np})
    t2 = time.perf_counter()
    return y, t1 - t0, t2 - t1


def run_ours(path: Path, in_npy: Path, out_npy: Path, timeout: int):
    """(output or None, wall seconds, peak RSS bytes or None, error or None)."""
    out_npy.unlink(missing_ok=True)
    cmd = [str(BINARY), "run", str(path), "--input", str(in_npy), "--output", str(out_npy)]
    rss = None
    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            hwm = vm_hwm(proc.pid)  # the high-water mark only grows: the last sample is the peak so far
            if hwm is not None:
                rss = max(rss or 0, hwm)
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                proc.wait()
                raise subprocess.TimeoutExpired(cmd, timeout)
            time.sleep(0.01)
        dt = time.perf_counter() - t0
        log.seek(0)
        text = log.read().decode(errors="replace")
    if proc.returncode != 0 or not out_npy.exists():
        tail = text.strip().splitlines()[-3:]
        return None, dt, rss, f"exit {proc.returncode}: {' | '.join(tail)}"
    return np.load(out_npy), dt, rss, None


def variants_for(name: str, model, x, skip_export: bool) -> list:
    """[(exporter, opset, path, note)] — exporting unless --skip-export."""
    attention = MODELS[name][2]
    out = []
    ts = CACHE / f"{name}_ts17.onnx"
    if not skip_export:
        print(f"  export {ts.name}", flush=True)
        export_ts(model, x, ts, 17)
    out.append(("torchscript", 17, ts, ""))
    d18 = CACHE / f"{name}_dyn18.onnx"
    if not skip_export:
        print(f"  export {d18.name}", flush=True)
        export_dynamo(model, x, d18, 18)
    out.append(("dynamo", 18, d18, ""))
    if attention:
        if skip_export:
            for op in HIGH_OPSETS:
                p = CACHE / f"{name}_dyn{op}.onnx"
                if p.exists():
                    out.append(("dynamo", op, p, ""))
                    break
        else:
            notes = []
            for op in HIGH_OPSETS:
                p = CACHE / f"{name}_dyn{op}.onnx"
                try:
                    print(f"  export {p.name}", flush=True)
                    export_dynamo(model, x, p, op)
                    fl.ort_session(p)
                except Exception as e:  # noqa: BLE001
                    notes.append(f"opset {op}: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
                    continue
                out.append(("dynamo", op, p, "; ".join(notes)))
                break
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--skip-export", action="store_true", help="reuse the .onnx/.npy files already in the cache")
    ap.add_argument("--export-only", action="store_true", help="export and run onnxruntime, do not run our binary")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds allowed per shortcut-detect run")
    ap.add_argument("--binary", metavar="PATH",
                    help=f"shortcut-detect executable to test (default <repo>/{DEFAULT_BINARY})")
    args = ap.parse_args()
    global BINARY
    if args.binary:
        BINARY = Path(args.binary).expanduser().resolve()
    fl.quiet_warnings()
    CACHE.mkdir(parents=True, exist_ok=True)

    have_binary = BINARY.is_file() and os.access(BINARY, os.X_OK)
    if not args.export_only and not have_binary:
        print(f"NOTE: {BINARY} does not exist (build it with `swift build -c release` or pass --binary); "
              "only the onnxruntime side is reported.\n")

    rows, records = [], []
    for name in args.models:
        print(f"{name}:", flush=True)
        in_npy = CACHE / f"{name}_input.npy"
        model = None
        if args.skip_export:
            if not in_npy.exists():
                print(f"  no cached input {in_npy.name}; run without --skip-export first")
                continue
            x_np = np.load(in_npy)
        else:
            model = build(name)
            x_np = np.random.default_rng(SEED).standard_normal((2, 3, 224, 224)).astype(np.float32)
            fl.save_npy(in_npy, x_np)
        x = torch.from_numpy(x_np)

        for exporter, opset, path, note in variants_for(name, model, x, args.skip_export):
            if not path.exists():
                print(f"  missing {path.name}")
                continue
            stem = path.stem
            ort_npy = CACHE / f"{stem}_ort.npy"
            y_ort, ort_load, ort_run = run_ort(path, x_np)
            fl.save_npy(ort_npy, y_ort)
            rec = {
                "model": name, "source": MODELS[name][1], "exporter": exporter, "opset": opset,
                "files": files_of(path), "bytes": sum((CACHE / f).stat().st_size for f in files_of(path)),
                "external_data": fl.uses_external_data(onnx.load(str(path), load_external_data=False)),
                "ops": fl.op_histogram(onnx.load(str(path), load_external_data=False)),
                "max_abs_logit": float(np.abs(y_ort).max()), "ort_load_s": ort_load, "ort_run_s": ort_run,
                "note": note,
            }
            if model is not None:
                with torch.no_grad():
                    y_torch = model(x).numpy()
                rec["torch_vs_ort_max_abs_diff"] = float(np.abs(y_torch - y_ort).max())
            ours_s, ours_rss, diff, status = None, None, None, "no binary"
            if have_binary and not args.export_only:
                try:
                    y_ours, ours_s, ours_rss, err = run_ours(path, in_npy, CACHE / f"{stem}_ours.npy", args.timeout)
                except subprocess.TimeoutExpired:
                    y_ours, err = None, f"timeout after {args.timeout}s"
                if err:
                    status = f"error: {err}"
                elif y_ours.shape != y_ort.shape:
                    status = f"shape {list(y_ours.shape)} != {list(y_ort.shape)}"
                else:
                    diff = float(np.abs(y_ours.astype(np.float64) - y_ort).max())
                    status = "pass" if diff / max(rec["max_abs_logit"], 1e-30) <= PASS_RATIO else "FAIL"
            elif args.export_only:
                status = "not run"
            rec.update({"ours_s": ours_s, "ours_peak_rss_bytes": ours_rss, "max_abs_diff": diff, "status": status})
            records.append(rec)
            ratio = None if diff is None else diff / max(rec["max_abs_logit"], 1e-30)
            rows.append([
                name, exporter, str(opset) + (" (ext. data)" if rec["external_data"] else ""),
                "-" if diff is None else f"{diff:.3g}", f"{rec['max_abs_logit']:.4g}",
                "-" if ratio is None else f"{ratio:.2e}", status,
                "-" if ours_s is None else f"{ours_s:.2f}",
                "-" if ours_rss is None else f"{ours_rss / 2**20:.0f}",
                f"{rec['bytes'] / 2**20:.0f}",
                f"{ort_load + ort_run:.2f} ({ort_run:.2f})",
            ])
            print(f"  {stem}: ORT max|logit| {rec['max_abs_logit']:.4g}, run {ort_run:.2f}s, "
                  f"{rec['bytes'] / 1e6:.1f} MB in {len(rec['files'])} file(s); {status}", flush=True)

    header = ["model", "exporter", "opset", "max abs(ours - ort)", "max abs(ort logit)", "ratio",
              f"pass (ratio <= {PASS_RATIO:g})", "ours s (process)", "ours peak RSS MiB (sampled)", "model MiB",
              "ORT s load+run (run)"]
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    (CACHE / "results.json").write_text(json.dumps(
        {"tools": fl.tool_versions(), "generated": fl.now_iso(), "binary": str(BINARY),
         "binary_present": have_binary, "results": records}, indent=1) + "\n")
    bad = [r for r in records if r["status"] not in ("pass", "no binary", "not run")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
