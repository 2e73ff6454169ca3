#!/usr/bin/env python3
"""Compare `shortcut-detect gradcam` with pytorch-grad-cam on full-size classifiers.

Models and ONNX files are those of tools/fullsize_check.py (seeded random
weights, nothing pretrained): resnet18, resnet50, vgg16 and vit_b_16, each
exported with the TorchScript exporter (opset 17) and the dynamo exporter
(opset 18; vit_b_16 also the highest opset in fullsize_check.HIGH_OPSETS,
i.e. 25, where attention becomes the ONNX Attention op).  For each model:

  * rebuild the PyTorch model with fullsize_check.build() (same seed and
    randomisation the ONNX files were exported from) and regenerate the seeded
    input; check it equals the cached <model>_input.npy;
  * check the PyTorch logits against onnxruntime's on every export
    (max abs diff <= 1e-4 * max |logit|, else that export is not compared);
  * targets: ClassifierOutputTarget(c_i) with c_i = argmax of sample i's
    PyTorch logits; our CLI gets the same classes as --class c0,c1;
  * per method, run pytorch-grad-cam once (the reference is the same for every
    export of a model) and our CLI once per export, and compare the [N, H, W]
    heatmaps: max |ours - theirs| and the share of pixels within 1e-3
    (pass: every pixel within 1e-3).  The raw per-layer maps (before ReLU and
    scaling; pytorch-grad-cam's get_cam_image output, ours from --raw) are
    compared too, relative to max |theirs|, for diagnosis.

Target layers (PyTorch module paths): resnet -> layer4, vgg16 -> features.29
(the last ReLU), vit_b_16 -> encoder.layers.encoder_layer_11.ln_1 with the usual
reshape transform t[:, 1:, :].reshape(N, 14, 14, C) -> NCHW (our CLI drops the
class token itself).

EigenCAM (and EigenGradCAM): the SVD projection's sign is arbitrary.  Raw maps
are compared up to sign (per sample); heatmaps only for the samples whose
pytorch-grad-cam projection already follows our convention (its entry of
largest magnitude is positive).  For the other samples the notes give the
difference against pytorch-grad-cam's own post-processing of the negated raw
map (informative, not part of pass).

ScoreCAM runs one forward per channel and sample.  Before running it, one
forward of a batch of 16 is timed and the total extrapolated; if that
estimate exceeds 1.5x --scorecam-limit (default 600 s) it is skipped, and a
run that is still going after --scorecam-limit seconds is aborted (the
projected total is reported).  Our CLI's ScoreCAM is then skipped too.

Timing (informative only): pytorch-grad-cam is the wall time of
cam(input_tensor=x, targets=targets) with torch.set_num_threads(2); ours is the
wall time of the whole shortcut-detect process (model loading included) with
OPENBLAS_NUM_THREADS=2.

Results go to tools/.cache/fullsize/cam/ (our heatmaps and raw maps) and
tools/.cache/fullsize/cam_results.json (--json); the Markdown table is printed
last, then any failure.  Exit status 1 if a comparison fails or a CLI run
errors, or an export's logits disagree with PyTorch.

Examples:
  tools/.venv/bin/python tools/fullsize_cam_check.py --skip-export
  tools/.venv/bin/python tools/fullsize_cam_check.py --models resnet18 --methods gradcam eigencam --skip-export
  tools/.venv/bin/python tools/fullsize_cam_check.py --binary .build-release/release/shortcut-detect
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # ScoreCAM's progress bars

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tvcompat import torchvision  # noqa: E402,F401  (must precede pytorch_grad_cam)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from pytorch_grad_cam import (  # noqa: E402
    EigenCAM,
    EigenGradCAM,
    GradCAM,
    GradCAMElementWise,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

import fixturelib as fl  # noqa: E402
import fullsize_check as fc  # noqa: E402  (build(), variants_for(), run_ort(), CACHE, SEED)
from export_cam_goldens import reproduce_from_raw, svd_sign_hint  # noqa: E402  (pytorch-grad-cam's post-processing)

DEFAULT_BINARY = ".build-release/release/shortcut-detect"
THREADS = 2
TOL = 1e-3
LOGIT_RTOL = 1e-4
OUT_DIR = fc.CACHE / "cam"

# CLI method name -> pytorch-grad-cam class
METHODS = {
    "gradcam": GradCAM,
    "hirescam": HiResCAM,
    "gradcam++": GradCAMPlusPlus,
    "layercam": LayerCAM,
    "xgradcam": XGradCAM,
    "eigencam": EigenCAM,
    "gradcam-elementwise": GradCAMElementWise,
    "scorecam": ScoreCAM,
    "eigengradcam": EigenGradCAM,
}
DEFAULT_METHODS = [m for m in METHODS if m != "eigengradcam"]
SVD_METHODS = {"eigencam", "eigengradcam"}

VIT_LAYER = "encoder.layers.encoder_layer_11.ln_1"
LAYERS = {
    "resnet18": "layer4",
    "resnet50": "layer4",
    "vgg16": "features.29",
    "vit_b_16": VIT_LAYER,
}


# --------------------------------------------------------------------------- pytorch-grad-cam side


def vit_reshape(model):
    n = model.image_size // model.patch_size

    def reshape_transform(tensor):
        result = tensor[:, 1:, :].reshape(tensor.size(0), n, n, tensor.size(2))
        return result.transpose(2, 3).transpose(1, 2)

    return reshape_transform


class _Timeout(Exception):
    pass


def _alarm(_signum, _frame):
    raise _Timeout()


def scorecam_estimate(model, x, channels: int) -> float:
    """Seconds pytorch-grad-cam's ScoreCAM needs, from one timed batch-16 forward (after a warm-up)."""
    batch = x[:1].repeat(16, 1, 1, 1)
    with torch.no_grad():
        model(batch)
        t0 = time.perf_counter()
        model(batch)
        dt = time.perf_counter() - t0
    return dt * x.shape[0] * channels / 16


def run_theirs(method: str, model, layer: str, reshape, x, classes, limit=None):
    """(heatmap, raw, seconds, note).  heatmap is None if skipped/aborted (note says why)."""
    cls = METHODS[method]
    target_layers = [dict(model.named_modules())[layer]]
    targets = [ClassifierOutputTarget(c) for c in classes]
    cam = cls(model=model, target_layers=target_layers, reshape_transform=reshape)
    raws = []
    original = cam.get_cam_image

    def recording(*args, **kw):
        out = original(*args, **kw)
        raws.append(out)
        return out

    cam.get_cam_image = recording
    images = [0]
    counter = model.register_forward_pre_hook(lambda _m, inp: images.__setitem__(0, images[0] + inp[0].shape[0]))
    old = None
    if limit is not None:
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(int(limit))
    t0 = time.perf_counter()
    try:
        heat = cam(input_tensor=x, targets=targets)
        dt = time.perf_counter() - t0
    except _Timeout:
        dt = time.perf_counter() - t0
        done = max(images[0] - x.shape[0], 1)  # minus the first batch-N forward
        total = x.shape[0] * int(cam.activations_and_grads.activations[0].shape[1])
        return None, None, dt, f"aborted after {dt:.0f} s ({done}/{total} masked forwards; ~{dt * total / done:.0f} s projected)"
    finally:
        if limit is not None:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
        counter.remove()
        cam.activations_and_grads.release()
    if len(raws) != 1:
        raise RuntimeError(f"{method}: expected one get_cam_image call, got {len(raws)}")
    raw = np.asarray(raws[0], dtype=np.float32)
    # the heatmap is exactly pytorch-grad-cam's post-processing of the raw map
    again = reproduce_from_raw([raw], (x.shape[-1], x.shape[-2]))
    if not np.array_equal(again, heat):
        raise RuntimeError(f"{method}: raw map does not reproduce the heatmap")
    return heat.astype(np.float32), raw, dt, ""


# --------------------------------------------------------------------------- our side


def run_ours(binary: Path, model_path: Path, in_npy: Path, layer: str, classes, method: str,
             out_npy: Path, raw_npy: Path, timeout: int):
    """(heatmap or None, raw or None, wall seconds, error or None)."""
    for p in (out_npy, raw_npy):
        p.unlink(missing_ok=True)
    cmd = [str(binary), "gradcam", str(model_path), "--input", str(in_npy), "--layer", layer,
           "--class", ",".join(str(c) for c in classes), "--method", method,
           "--output", str(out_npy), "--raw", str(raw_npy)]
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(THREADS), OMP_NUM_THREADS=str(THREADS))
    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, None, time.perf_counter() - t0, f"timeout after {timeout} s"
        dt = time.perf_counter() - t0
        log.seek(0)
        text = log.read().decode(errors="replace")
    if proc.returncode != 0 or not out_npy.exists():
        tail = text.strip().splitlines()[-4:]
        return None, None, dt, f"exit {proc.returncode}: {' | '.join(tail)}"
    raw = np.load(raw_npy) if raw_npy.exists() else None
    return np.load(out_npy), raw, dt, None


# --------------------------------------------------------------------------- comparison


def compare(method: str, ours, ours_raw, theirs, theirs_raw, target_size) -> dict:
    rec: dict = {}
    if ours.shape != theirs.shape:
        rec["error"] = f"heatmap shape {list(ours.shape)} != {list(theirs.shape)}"
        return rec
    notes = []
    samples = list(range(ours.shape[0]))
    raw_scale = float(np.abs(theirs_raw).max()) or 1.0
    if ours_raw is None or ours_raw.shape != theirs_raw.shape:
        notes.append(f"raw shape {None if ours_raw is None else list(ours_raw.shape)} != {list(theirs_raw.shape)}")
    elif method in SVD_METHODS:
        agree = svd_sign_hint(theirs_raw)
        ours_conv = svd_sign_hint(ours_raw)
        if not all(ours_conv):
            notes.append(f"our raw breaks our sign convention on samples {[i for i, v in enumerate(ours_conv) if not v]}")
        per = []
        for i in samples:
            d_plus = float(np.abs(ours_raw[i] - theirs_raw[i]).max())
            d_minus = float(np.abs(ours_raw[i] + theirs_raw[i]).max())
            per.append(min(d_plus, d_minus))
        rec["raw_max_abs_diff"] = max(per)
        rec["raw_rel_diff"] = max(per) / raw_scale
        rec["sign_agrees"] = agree
        samples = [i for i in samples if agree[i]]
        flipped = [i for i in range(ours.shape[0]) if not agree[i]]
        if flipped:
            ref = reproduce_from_raw([-theirs_raw[flipped]], target_size)
            d = float(np.abs(ours[flipped] - ref).max())
            rec["flipped_samples_max_abs_diff"] = d
            notes.append(f"sample(s) {flipped}: pytorch-grad-cam's sign is opposite to ours, heatmap not "
                         f"compared (vs its post-processing of the negated raw map: max abs diff {d:.2g})")
    else:
        d = float(np.abs(ours_raw.astype(np.float64) - theirs_raw).max())
        rec["raw_max_abs_diff"] = d
        rec["raw_rel_diff"] = d / raw_scale
    if samples:
        diff = np.abs(ours[samples].astype(np.float64) - theirs[samples])
        rec["max_abs_diff"] = float(diff.max())
        rec["share_within_tol"] = float(np.mean(diff <= TOL))
        rec["pass"] = bool(diff.max() <= TOL)
        rec["compared_samples"] = samples
        if not rec["pass"]:
            bad = np.argwhere(diff > TOL)
            rec["pixels_over_tol"] = int(bad.shape[0])
            worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
            s, yy, xx = (int(v) for v in worst)
            rec["worst_pixel"] = {"sample": samples[s], "y": yy, "x": xx,
                                  "ours": float(ours[samples[s], yy, xx]),
                                  "theirs": float(theirs[samples[s], yy, xx])}
            notes.append(f"{bad.shape[0]} px > {TOL:g}; worst sample {samples[s]} at (y={yy}, x={xx}): "
                         f"ours {ours[samples[s], yy, xx]:.6g} theirs {theirs[samples[s], yy, xx]:.6g}")
    else:
        rec["pass"] = None
        notes.append("no sample with matching sign")
    rec["notes"] = notes
    return rec


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", choices=list(LAYERS), default=list(LAYERS))
    ap.add_argument("--methods", nargs="+", choices=list(METHODS), default=DEFAULT_METHODS)
    ap.add_argument("--skip-export", action="store_true", help="reuse the .onnx/.npy files in tools/.cache/fullsize")
    ap.add_argument("--input-seed", type=int, metavar="S",
                    help="compare on the batch drawn from seed S instead of the exports' own input "
                         "(<model>_input_seedS.npy; the exports are reused, so this implies --skip-export)")
    ap.add_argument("--binary", metavar="PATH", default=DEFAULT_BINARY,
                    help=f"shortcut-detect executable (default <repo>/{DEFAULT_BINARY})")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds allowed per shortcut-detect run")
    ap.add_argument("--json", metavar="PATH", default=str(fc.CACHE / "cam_results.json"),
                    help="where to write the per-row results (default tools/.cache/fullsize/cam_results.json)")
    ap.add_argument("--scorecam-limit", type=int, default=600,
                    help="seconds allowed for pytorch-grad-cam's ScoreCAM per model (see above)")
    args = ap.parse_args()
    binary = Path(args.binary).expanduser()
    if not binary.is_absolute():
        binary = (fl.REPO_DIR / binary).resolve()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        print(f"{binary} not found; build it with `swift build -c release --product shortcut-detect "
              f"--scratch-path .build-release` or pass --binary")
        return 2

    fl.quiet_warnings()
    torch.set_num_threads(THREADS)
    fc.CACHE.mkdir(parents=True, exist_ok=True)
    OUT_DIR.mkdir(parents=True, exist_ok=True)

    rows, records, problems = [], [], []
    for name in args.models:
        print(f"{name}:", flush=True)
        layer = LAYERS[name]
        in_npy = fc.CACHE / f"{name}_input.npy"
        x_np = np.random.default_rng(fc.SEED).standard_normal((2, 3, 224, 224)).astype(np.float32)
        if args.input_seed is not None:
            args.skip_export = True
            in_npy = fc.CACHE / f"{name}_input_seed{args.input_seed}.npy"
            x_np = np.random.default_rng(args.input_seed).standard_normal((2, 3, 224, 224)).astype(np.float32)
            fl.save_npy(in_npy, x_np)
        elif args.skip_export:
            if not in_npy.exists():
                print(f"  no cached input {in_npy.name}; run without --skip-export first")
                continue
            if not np.array_equal(np.load(in_npy), x_np):
                raise RuntimeError(f"{in_npy} differs from its seeded regeneration")
        else:
            fl.save_npy(in_npy, x_np)
        x = torch.from_numpy(x_np)

        model = fc.build(name)
        variants = fc.variants_for(name, model, x, args.skip_export)
        model = fc.build(name)  # a fresh copy for the CAMs (the exporters only read the model, but be safe)
        mods = dict(model.named_modules())
        if layer not in mods:
            raise RuntimeError(f"{name}: no module {layer}")
        if name == "vgg16" and not isinstance(mods[layer], nn.ReLU):
            raise RuntimeError(f"vgg16: {layer} is {type(mods[layer]).__name__}, expected the last ReLU")
        reshape = vit_reshape(model) if name.startswith("vit") else None

        with torch.no_grad():
            logits = model(x).numpy()
        classes = [int(c) for c in np.argmax(logits, axis=1)]
        top2 = np.sort(logits, axis=1)[:, -2:]
        margins = [float(v) for v in top2[:, 1] - top2[:, 0]]
        print(f"  classes {classes}, top-1 margins {[f'{m:.3g}' for m in margins]}", flush=True)

        usable = []
        for exporter, opset, path, _note in variants:
            if not path.exists():
                print(f"  missing {path.name}")
                problems.append(f"{name} {exporter} {opset}: missing {path.name}")
                continue
            y_ort, _, _ = fc.run_ort(path, x_np)
            d = float(np.abs(y_ort - logits).max())
            ok = d <= LOGIT_RTOL * float(np.abs(logits).max())
            ort_classes = [int(c) for c in np.argmax(y_ort, axis=1)]
            print(f"  {path.name}: torch vs ORT logits max abs diff {d:.3g} "
                  f"(max |logit| {np.abs(logits).max():.3g}); ORT classes {ort_classes}", flush=True)
            if not ok:
                problems.append(f"{name} {exporter} {opset}: torch vs ORT logits differ by {d:.3g}")
                continue
            usable.append((exporter, opset, path, d))

        for method in args.methods:
            limit, note = None, ""
            if method == "scorecam":
                channels = None
                with torch.no_grad():
                    store = {}
                    h = mods[layer].register_forward_hook(lambda _m, _i, o: store.__setitem__("o", o))
                    model(x[:1])
                    h.remove()
                    a = store["o"] if reshape is None else reshape(store["o"])
                    channels = int(a.shape[1])
                est = scorecam_estimate(model, x, channels)
                print(f"  scorecam: {x.shape[0]} x {channels} masked forwards, estimated {est:.0f} s", flush=True)
                if est > 1.5 * args.scorecam_limit:
                    heat, raw, t_theirs = None, None, None
                    note = f"pytorch-grad-cam skipped: estimated {est:.0f} s > {args.scorecam_limit} s"
                else:
                    limit = args.scorecam_limit
            if note == "":
                heat, raw, t_theirs, note = run_theirs(method, model, layer, reshape, x, classes, limit)
                print(f"  pytorch-grad-cam {method}: {t_theirs:.2f} s {note}", flush=True)
            for exporter, opset, path, logit_diff in usable:
                rec = {"model": name, "exporter": exporter, "opset": opset, "file": path.name, "method": method,
                       "layer": layer, "classes": classes, "top1_margins": margins,
                       "torch_vs_ort_logits_max_abs_diff": logit_diff, "theirs_s": t_theirs}
                if heat is None:
                    rec.update({"ours_s": None, "pass": None, "notes": [note]})
                else:
                    stem = f"{path.stem}_{method.replace('+', 'p')}"
                    ours, ours_raw, t_ours, err = run_ours(
                        binary, path, in_npy, layer, classes, method,
                        OUT_DIR / f"{stem}.npy", OUT_DIR / f"{stem}_raw.npy", args.timeout)
                    rec["ours_s"] = t_ours
                    if err:
                        rec.update({"error": err, "pass": False, "notes": [err]})
                    else:
                        rec.update(compare(method, ours, ours_raw, heat, raw, (x.shape[-1], x.shape[-2])))
                        if "error" in rec:
                            rec["pass"] = False
                            rec["notes"] = [rec["error"]]
                    if rec["pass"] is False:
                        problems.append(f"{name} {exporter} {opset} {method}: {'; '.join(rec.get('notes', []))}")
                records.append(rec)
                md = rec.get("max_abs_diff")
                share = rec.get("share_within_tol")
                rel = rec.get("raw_rel_diff")
                passed = {True: "pass", False: "FAIL", None: "-"}[rec["pass"]]
                if "error" in rec:
                    passed = "ERROR"
                rows.append([
                    name, exporter, str(opset), method,
                    "-" if md is None else f"{md:.2e}",
                    "-" if share is None else f"{100 * share:.3f}%",
                    passed,
                    "-" if rel is None else f"{rel:.1e}",
                    "-" if rec.get("ours_s") is None else f"{rec['ours_s']:.2f}",
                    "-" if t_theirs is None else f"{t_theirs:.2f}",
                    "; ".join(rec.get("notes", [])),
                ])
                print(f"    {path.stem:16s} {method:20s} max diff {rows[-1][4]:>9s} within 1e-3 {rows[-1][5]:>9s} "
                      f"{passed:5s} raw rel {rows[-1][7]:>8s}  ours {rows[-1][8]} s  theirs {rows[-1][9]} s"
                      + (f"  [{rows[-1][10]}]" if rows[-1][10] else ""), flush=True)
        del model

    header = ["model", "exporter", "opset", "method", "max abs diff", "pixels within 1e-3",
              f"pass (<= {TOL:g} every pixel)", "raw max abs diff / max|raw|", "ours s (process)",
              "pytorch-grad-cam s", "notes"]
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    Path(args.json).write_text(json.dumps(
        {"tools": fl.tool_versions(), "generated": fl.now_iso(), "binary": str(binary), "threads": THREADS,
         "input_seed": args.input_seed if args.input_seed is not None else fc.SEED,
         "tolerance": TOL, "results": records}, indent=1) + "\n")
    if problems:
        print("\nproblems:")
        for p in problems:
            print(f"  {p}")
    return 1 if any(r["pass"] is False for r in records) or any("logits" in p for p in problems) else 0


if __name__ == "__main__":
    sys.exit(main())
