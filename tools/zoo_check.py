#!/usr/bin/env python3
"""Breadth check: does shortcut-detect load, run and explain what people export?

For every entry of ZOO (the smallest variant of a torchvision or timm classifier
family; seeded random weights, pretrained=False, nothing is downloaded) this
script

  1. exports the model twice, in a fresh worker process each time it is needed
     (so an exporter crash or leak stays there):
       ts17    torch.onnx.export(..., dynamo=False, opset_version=17)
       dyn18   torch.onnx.export(..., dynamo=True, opset_version=18)
     both with a dynamic batch axis (the example input has batch 2, so the
     dynamo exporter does not specialise it to 1); if the exporter refuses
     the dynamic batch, it is retried with a static batch of 1 and the note
     says so.  It saves seeded standard-normal inputs at batch 1 (and batch 2
     for the entries marked batch2), onnxruntime's outputs (CPU, graph
     optimisations off), and PyTorch's outputs in float32 and float64;
  2. for each export and batch: `shortcut-detect inspect` (the suggested
     GradCAM layer, unsupported ops), `shortcut-detect run` (forward), and
     `shortcut-detect gradcam --input X --layer <suggested> --output H --raw R`.

Exports, inputs and reference outputs are cached in tools/.cache/zoo/<model>/
(never committed) and reused unless --force.  Export failures (the exporter
itself refusing, or onnxruntime rejecting what it wrote) are reported as such,
with the innermost cause of the exception, and do not count against us.

Forward check, rel(a, b) = max|a - b| / max|b| over the logits:
  * match when rel(ours, ORT) <= 1e-4 (the project's full-size criterion,
    tools/fullsize_check.py);
  * where float32 itself is noisy, i.e. rel(ORT, float64 PyTorch) > 1e-4
    (deep random-weight nets can be: issue 11 saw ~3e-4 for Inception-v4; with
    fixturelib.randomize's weights the whole zoo stays near 1e-6, and the
    Markdown says how many rows needed this), also match when rel(ours,
    float64) <= 2 x rel(ORT, float64): we are no further from the exact answer
    than twice ORT's own float32 error.  Both numbers are in the table.
GradCAM check: the heatmap ([N, H, W]) and the raw layer map ([N, h, w]) are
finite, the layer map has at least 2 x 2 cells, and the heatmap is not
constant.  When the heatmap is constant only because the class-weighted map is
<= 0 everywhere (the ReLU zeroes it; random weights do that sometimes), a
non-constant raw map counts as ok and the table says "ok (CAM <= 0)".

Output: everything (per-row records, tool versions, the CPU model from lscpu,
the binary and the commit it was built from) in tools/.cache/zoo/results.json;
from it, tools/zoo_results.md (--markdown to write elsewhere, also printed):
the run's header, the criteria, the summary (passed/attempted, refusals and
their causes, the ops that block models), one table row per export and batch,
and why each row that is not plainly ok is so.  --render-only writes the
Markdown again from a stored results.json without exporting or running anything.

Build the binary first (the lead points --binary at main's build):
  swift build -c release --product shortcut-detect --scratch-path .build-release

Examples:
  tools/.venv/bin/python tools/zoo_check.py                         # everything
  tools/.venv/bin/python tools/zoo_check.py --families resnet swin --exporters ts17
  tools/.venv/bin/python tools/zoo_check.py --export-only --jobs 2  # fill the cache
  tools/.venv/bin/python tools/zoo_check.py --list                  # the zoo, with input sizes
  tools/.venv/bin/python tools/zoo_check.py --render-only           # tools/zoo_results.md from results.json
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import copy
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TOOLS_DIR = Path(__file__).resolve().parent
REPO_DIR = TOOLS_DIR.parent
CACHE = TOOLS_DIR / ".cache" / "zoo"
DEFAULT_BINARY = REPO_DIR / ".build-release" / "release" / "shortcut-detect"
DEFAULT_MARKDOWN = TOOLS_DIR / "zoo_results.md"
SEED = 1234
FWD_TOL = 1e-4  # rel(ours, ORT): tools/fullsize_check.py's PASS_RATIO
NOISE_FACTOR = 2.0  # where ORT itself is off float64 by > FWD_TOL: allowed multiple of ORT's error
EXPORTERS = {"ts17": ("torchscript", 17), "dyn18": ("dynamo", 18)}
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes in the dynamo exporter's messages


@dataclass(frozen=True)
class Entry:
    """One model: the smallest variant of a family, at the input size given (see `note`)."""

    family: str
    source: str  # "torchvision" or "timm"
    name: str
    size: int = 128
    kwargs: dict = field(default_factory=dict)
    note: str = ""
    batch2: bool = False  # also run at batch 2

    @property
    def key(self) -> str:
        return f"{'tv' if self.source == 'torchvision' else 'timm'}_{self.name}"

    def source_call(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        if self.source == "torchvision":
            return f"torchvision.models.{self.name}(weights=None{', ' + args if args else ''})"
        return f"timm.create_model({self.name!r}, pretrained=False{', ' + args if args else ''})"


def tv(family, name, size=128, note="", batch2=False, **kwargs):
    return Entry(family, "torchvision", name, size, kwargs, note, batch2)


def tm(family, name, size=128, note="", batch2=False, **kwargs):
    return Entry(family, "timm", name, size, kwargs, note, batch2)


# Sizes: 128 px wherever the architecture takes any size (a final map of 4 x 4 at
# stride 32), `img_size=` for transformers whose position embeddings are built for
# the size asked (random weights, so nothing is interpolated), and the native size
# where the architecture fixes it (the note says why).
P224 = "224: fixed by the architecture"
ZOO = [
    # ---- torchvision
    tv("resnet", "resnet18", batch2=True),
    tv("resnext", "resnext50_32x4d"),
    tv("wide_resnet", "wide_resnet50_2"),
    tv("vgg", "vgg11", 224, "224: AdaptiveAvgPool2d(7) exports only when the map divides 7"),
    tv("alexnet", "alexnet", 224, "224: AdaptiveAvgPool2d(6) exports only when the map divides 6"),
    tv("squeezenet", "squeezenet1_1"),
    tv("densenet", "densenet121"),
    tv("googlenet", "googlenet", aux_logits=False, init_weights=True),
    tv("inception_v3", "inception_v3", aux_logits=False, init_weights=True),
    tv("mobilenet_v2", "mobilenet_v2"),
    tv("mobilenet_v3", "mobilenet_v3_small", batch2=True),
    tv("mnasnet", "mnasnet0_5"),
    tv("shufflenet_v2", "shufflenet_v2_x0_5"),
    tv("efficientnet", "efficientnet_b0"),
    tv("efficientnet_v2", "efficientnet_v2_s"),
    tv("regnet", "regnet_y_400mf"),
    tv("convnext", "convnext_tiny", batch2=True),
    tv("vit", "vit_b_16", image_size=128, batch2=True),
    tv("swin", "swin_t", 224, "224: the native size (windows of 7 tile 56/28/14/7)", batch2=True),
    tv("swin_v2", "swin_v2_t", 224, "224: the native size (windows of 8, padded)"),
    tv("maxvit", "maxvit_t", 224, "224: maxvit_t fixes input_size"),
    # ---- timm
    tm("resnet", "resnet10t"),
    tm("resnetv2", "resnetv2_18"),
    tm("efficientnet", "efficientnet_b0"),
    tm("mobilenetv3", "mobilenetv3_small_050"),
    tm("ghostnet", "ghostnet_050"),
    tm("hrnet", "hrnet_w18_small"),
    tm("edgenext", "edgenext_xx_small"),
    tm("xcit", "xcit_nano_12_p16_224", img_size=128),
    tm("convnextv2", "convnextv2_atto"),
    tm("cspnet", "cspresnet50"),
    tm("poolformer", "poolformer_s12"),
    tm("crossvit", "crossvit_tiny_240", 240, "240: two patch sizes fix the input (240/224)"),
    tm("convit", "convit_tiny", img_size=128),
    tm("davit", "davit_tiny", 224, "224: the native size (windows of 7)"),
    tm("hgnet", "hgnetv2_b0"),
    tm("efficientvit_mit", "efficientvit_b0"),
    tm("efficientvit_msra", "efficientvit_m0", 224, "224: attention biases fixed by the resolution"),
    tm("lcnet", "lcnet_050"),
    tm("levit", "levit_128s", 224, "224: attention biases fixed by the resolution"),
    tm("deit", "deit_tiny_patch16_224", img_size=128),
    tm("beit", "beit_base_patch16_224", img_size=128),
    tm("vit", "vit_tiny_patch16_224", img_size=128),
    tm("eva", "eva02_tiny_patch14_224", 112, "112: a multiple of its 14-pixel patches", img_size=112,
       num_classes=1000),
    tm("pvt_v2", "pvt_v2_b0"),
    tm("coat", "coat_lite_tiny", img_size=128),
    tm("twins", "twins_svt_small", 224, "224: the native size (windows of 7)"),
    tm("tnt", "tnt_s_patch16_224", img_size=128),
    tm("cait", "cait_xxs24_224", img_size=128),
    tm("mlp_mixer", "mixer_s16_224", img_size=128),
    tm("resmlp", "resmlp_12_224", img_size=128),
    tm("gmlp", "gmlp_ti16_224", img_size=128),
    tm("repvgg", "repvgg_a0"),
    tm("dla", "dla46_c"),
    tm("dpn", "dpn48b"),
    tm("nf_resnet", "nf_resnet26"),
    tm("dm_nfnet", "dm_nfnet_f0"),
    tm("rexnet", "rexnet_100"),
    tm("tinynet", "tinynet_e"),
    tm("fbnet", "fbnetc_100"),
    tm("nasnet", "nasnetalarge"),
    tm("pnasnet", "pnasnet5large"),
    tm("inception_v4", "inception_v4"),
    tm("res2net", "res2net50_14w_8s"),
    tm("resnest", "resnest14d"),
    tm("selecsls", "selecsls42b"),
    tm("sknet", "skresnet18"),
    tm("tresnet", "tresnet_m"),
    tm("vovnet", "ese_vovnet19b_dw"),
    tm("xception", "legacy_xception"),
    tm("mobilevit", "mobilevit_xxs"),
    tm("mobileone", "mobileone_s0"),
    tm("fastvit", "fastvit_t8"),
    tm("focalnet", "focalnet_tiny_srf"),
    tm("gcvit", "gcvit_xxtiny", 224, "224: window and global-query sizes follow the resolution"),
    tm("mvitv2", "mvitv2_tiny", 224, "224: relative positions fixed by the resolution"),
    tm("nest", "nest_tiny_jx", 224, "224: block aggregation needs 224"),
    tm("pit", "pit_ti_224", img_size=128),
    tm("sequencer", "sequencer2d_s", note="bidirectional LSTMs over rows and columns"),
    tm("volo", "volo_d1_224", img_size=128),
    # ---- beyond the families the brief lists (run last)
    tm("efficientnet", "tf_efficientnet_b0", note="TF 'same' padding (dynamic Pad)"),
    tm("mobilenetv1", "mobilenetv1_100"),
    tm("mobilenetv4", "mobilenetv4_conv_small"),
    tm("ghostnet", "ghostnetv2_100", note="v2: DFC attention (pool + nearest upsample)"),
    tm("cspnet", "cspdarknet53"),
    tm("metaformer", "caformer_s18"),
    tm("mobilevitv2", "mobilevitv2_050"),
    tm("efficientformer", "efficientformer_l1", 224, "224: the last stage's attention biases fix 7x7"),
    tm("efficientformerv2", "efficientformerv2_s0", 224, "224: attention biases fixed by the resolution"),
    tm("repvit", "repvit_m0_9"),
    tm("inception_next", "inception_next_tiny"),
    tm("tiny_vit", "tiny_vit_5m_224", 224, "224: window attention biases fixed by the resolution", num_classes=1000),
    tm("hiera", "hiera_tiny_224", 224, "224: mask units fixed by the resolution"),
    tm("starnet", "starnet_s050"),
    tm("nextvit", "nextvit_small"),
    tm("mambaout", "mambaout_femto"),
    tm("rdnet", "rdnet_tiny"),
    tm("fasternet", "fasternet_t0"),
    tm("shvit", "shvit_s1"),
    tm("swiftformer", "swiftformer_xs"),
    tm("byoanet", "botnet26t_256", 256, "256: self-attention relative positions fixed by the resolution"),
    tm("coatnet", "coatnet_nano_rw_224", 224, "224: relative-position windows fixed by the resolution"),
    tm("senet", "legacy_seresnet18"),
    tm("byobnet", "gernet_s"),
    tm("hardcorenas", "hardcorenas_a"),
]


# --------------------------------------------------------------------------- helpers


def rel(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-30))


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def git_out(where: Path, *args) -> str | None:
    proc = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def binary_provenance(binary: Path) -> dict:
    """The commit of the checkout the binary was built in, and whether its sources match that commit.

    SwiftPM records no commit in the binary, so this is what can be checked: the checkout's HEAD, uncommitted
    changes under Sources/ or to Package.swift, and whether the binary is older than the last commit that
    touched them (then it may not have been rebuilt since).
    """
    top = git_out(binary.parent, "rev-parse", "--show-toplevel")
    if not top:
        return {}
    last = git_out(Path(top), "log", "-1", "--format=%ct", "--", "Sources", "Package.swift")
    return {"path": str(binary), "checkout": top, "commit": git_out(Path(top), "rev-parse", "HEAD"),
            "sources_dirty": bool(git_out(Path(top), "status", "--porcelain", "--", "Sources", "Package.swift")),
            "older_than_sources": bool(last) and binary.stat().st_mtime < int(last)}


def first_line(text: str, limit: int = 150) -> str:
    lines = [ln.strip() for ln in ANSI.sub("", text).strip().splitlines() if ln.strip()]
    error = next((ln for ln in lines if ln.startswith("Error:")), lines[0] if lines else "")
    error = error.removeprefix("Error:").strip()
    return error if len(error) <= limit else error[: limit - 1] + "…"


def describe(error: BaseException, limit: int = 300) -> str:
    """An exception's type and first line, and the innermost cause it wraps (the dynamo exporter's
    ConversionError says only which step failed; the cause says why)."""
    text = f"{type(error).__name__}: {first_line(str(error) or type(error).__name__, limit)}"
    root = error
    while root.__cause__ is not None:
        root = root.__cause__
    if root is not error:
        text += f" (cause: {type(root).__name__}: {first_line(str(root) or type(root).__name__, limit)})"
    return text


def missing_ops(text: str, model_ops) -> list:
    """Op types named in parentheses in an unsupported-op message, that the model uses, first seen first."""
    found = []
    for group in re.findall(r"\(([^()]*)\)", text):
        for token in re.split(r"[,\s]+", group):
            token = token.split(".")[-1].strip("'\"")
            if token in model_ops and token not in found:
                found.append(token)
    return found


# --------------------------------------------------------------------------- export worker


def build(entry: Entry):
    import torch

    import fixturelib as fl
    from tvcompat import torchvision

    torch.manual_seed(SEED)
    if entry.source == "torchvision":
        model = getattr(torchvision.models, entry.name)(weights=None, **entry.kwargs)
    else:
        import timm

        model = timm.create_model(entry.name, pretrained=False, **entry.kwargs)
    model.eval()
    fl.randomize(model, torch.Generator().manual_seed(SEED + 1))
    return model


def export_worker(entry: Entry, exporters: list) -> None:
    """Export `entry` with `exporters` into its cache folder; writes meta.json (merged with what is there)."""
    import onnx
    import torch

    import fixturelib as fl

    fl.quiet_warnings()
    folder = CACHE / entry.key
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta.update({"family": entry.family, "source": entry.source, "model": entry.name, "size": entry.size,
                 "call": entry.source_call(), "note": entry.note})
    meta.setdefault("exports", {})

    rng = np.random.default_rng(SEED)
    x2 = rng.standard_normal((2, 3, entry.size, entry.size)).astype(np.float32)
    inputs = {1: x2[:1], 2: x2}
    batches = [1, 2] if entry.batch2 else [1]
    for b in batches:
        fl.save_npy(folder / f"input_b{b}.npy", inputs[b])

    t0 = time.perf_counter()
    model = build(entry)
    meta["build_s"] = time.perf_counter() - t0
    meta["parameters"] = int(sum(p.numel() for p in model.parameters()))
    with torch.no_grad():
        for b in batches:
            y = model(torch.from_numpy(inputs[b]))
            fl.save_npy(folder / f"torch32_b{b}.npy", y.numpy())
        meta.pop("float64_error", None)
        try:
            m64 = copy.deepcopy(model).double()
            for b in batches:
                y64 = m64(torch.from_numpy(inputs[b]).double()).numpy()
                np.save(folder / f"torch64_b{b}.npy", y64)
            del m64
        except Exception as e:  # noqa: BLE001  (some models hard-code float32)
            meta["float64_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"

    for tag in exporters:
        kind, opset = EXPORTERS[tag]
        path = folder / f"{tag}.onnx"
        for stale in folder.glob(f"{tag}.onnx*"):
            stale.unlink()
        for stale in folder.glob(f"ort_{tag}_b*.npy"):
            stale.unlink()
        rec = {"exporter": kind, "opset": opset, "file": path.name}
        t0 = time.perf_counter()
        errors = []
        for dynamic in (True, False):
            example = torch.from_numpy(x2 if dynamic else inputs[1])
            try:
                with fl.captured_output():
                    if kind == "torchscript":
                        torch.onnx.export(
                            model, (example,), str(path), dynamo=False, opset_version=opset,
                            input_names=["input"], output_names=["logits"],
                            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None)
                    else:
                        torch.onnx.export(
                            model, (example,), str(path), dynamo=True, opset_version=opset,
                            input_names=["input"], output_names=["logits"],
                            dynamic_shapes=({0: torch.export.Dim("batch")},) if dynamic else None)
                rec["dynamic_batch"] = dynamic
                break
            except Exception as e:  # noqa: BLE001
                errors.append(f"{'dynamic' if dynamic else 'static'} batch: {describe(e)}")
                for stale in folder.glob(f"{tag}.onnx*"):
                    stale.unlink()
        rec["export_s"] = time.perf_counter() - t0
        if not path.exists():
            rec["export_error"] = " | ".join(errors)
            meta["exports"][tag] = rec
            continue
        if errors:
            rec["export_note"] = errors[0]
        proto = onnx.load(str(path), load_external_data=False)
        rec["opset_written"] = fl.opset_imports(proto).get("")
        rec["ops"] = fl.op_histogram(proto)
        rec["external_data"] = fl.uses_external_data(proto)
        rec["bytes"] = sum(p.stat().st_size for p in folder.glob(f"{tag}.onnx*"))
        try:
            sess = fl.ort_session(path, threads=1)
            for b in batches if rec["dynamic_batch"] else [1]:
                (y,) = sess.run(["logits"] if "logits" in [o.name for o in sess.get_outputs()] else None,
                                {sess.get_inputs()[0].name: inputs[b]})[:1]
                fl.save_npy(folder / f"ort_{tag}_b{b}.npy", y)
        except Exception as e:  # noqa: BLE001
            rec["ort_error"] = describe(e)
        meta["exports"][tag] = rec
    meta["tools"] = fl.tool_versions()
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")


# --------------------------------------------------------------------------- our side


def run_binary(binary: Path, args: list, timeout: int, env: dict):
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=timeout, env=env)
        return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - t0
    except subprocess.TimeoutExpired:
        return -1, f"Error: timeout after {timeout} s", time.perf_counter() - t0


def parse_inspect(text: str):
    """(suggested layer or None, the whole suggestion line or None, parameter count or None)."""
    suggested = line = params = None
    for raw in text.splitlines():
        if raw.startswith("parameters:"):
            try:
                params = int(raw.split(":", 1)[1].strip().split()[0])
            except ValueError:
                pass
        if raw.rstrip().endswith("<- suggested"):
            line = raw.strip()
            suggested = line.split(" -> ")[0].split(" = ")[0].strip()
    return suggested, line, params


def check_row(entry: Entry, tag: str, batch: int, binary: Path, timeout: int, env: dict) -> dict:
    folder = CACHE / entry.key
    meta = json.loads((folder / "meta.json").read_text())
    ex = meta["exports"][tag]
    row = {"family": entry.family, "source": entry.source, "model": entry.name, "size": entry.size,
           "exporter": tag, "opset": ex["opset"], "batch": batch, "note": entry.note,
           "export_note": ex.get("export_note"), "dynamic_batch": ex.get("dynamic_batch"),
           "float64_error": meta.get("float64_error")}
    if "export_error" in ex:
        row.update(status="export failed", error=ex["export_error"])
        return row
    if "ort_error" in ex:
        row.update(status="ORT failed", error=ex["ort_error"])
        return row
    model = folder / ex["file"]
    x_path = folder / f"input_b{batch}.npy"
    ort_path = folder / f"ort_{tag}_b{batch}.npy"
    if not ort_path.exists():
        row.update(status="skipped", error="static-batch export: no batch-2 reference")
        return row
    y_ort = np.load(ort_path)
    f64_path = folder / f"torch64_b{batch}.npy"
    y64 = np.load(f64_path) if f64_path.exists() else None
    seconds = 0.0
    work = folder / "ours"
    work.mkdir(exist_ok=True)
    stem = f"{tag}_b{batch}"

    code, text, dt = run_binary(binary, ["inspect", str(model)], timeout, env)
    seconds += dt
    suggested, line, params = parse_inspect(text) if code == 0 else (None, None, None)
    row.update(suggested=suggested, suggestion_line=line, parameters_reported=params,
               parameters_torch=meta.get("parameters"))
    if code != 0:
        row["inspect_error"] = first_line(text)

    out = work / f"{stem}_out.npy"
    out.unlink(missing_ok=True)
    code, text, dt = run_binary(binary, ["run", str(model), "--input", str(x_path), "--output", str(out)],
                                timeout, env)
    seconds += dt
    row["run_s"] = dt
    if code != 0 or not out.exists():
        row.update(status="load/run failed", error=first_line(text),
                   missing_ops=missing_ops(text, set(ex.get("ops", {}))))
        row["seconds"] = seconds
        return row
    y = np.load(out)
    if y.shape != y_ort.shape:
        row.update(status="forward mismatch", error=f"shape {list(y.shape)} != ORT {list(y_ort.shape)}",
                   seconds=seconds)
        return row
    row["finite"] = bool(np.isfinite(y).all())
    row["rel_ort"] = rel(y, y_ort)
    if y64 is not None and y64.shape == y.shape:
        row["rel_ort_f64"] = rel(y_ort, y64)
        row["rel_ours_f64"] = rel(y, y64)
    noisy = row.get("rel_ort_f64", 0.0) > FWD_TOL
    row["fwd_ok"] = row["finite"] and (row["rel_ort"] <= FWD_TOL or (
        noisy and row["rel_ours_f64"] <= NOISE_FACTOR * row["rel_ort_f64"]))

    if suggested is None:
        row["cam"] = "no suggestion" if line is None else "unparsed suggestion"
    else:
        heat, raw = work / f"{stem}_heat.npy", work / f"{stem}_raw.npy"
        heat.unlink(missing_ok=True)
        raw.unlink(missing_ok=True)
        code, text, dt = run_binary(binary, ["gradcam", str(model), "--input", str(x_path), "--layer", suggested,
                                             "--output", str(heat), "--raw", str(raw)], timeout, env)
        seconds += dt
        row["gradcam_s"] = dt
        if code != 0 or not heat.exists() or not raw.exists():
            row["cam"] = "error"
            row["cam_error"] = first_line(text)
        else:
            h, r = np.load(heat), np.load(raw)
            row["cam_shape"] = list(r.shape)
            per_sample = []
            for i in range(h.shape[0]):
                hi, ri = h[i], r[i]
                if not (np.isfinite(hi).all() and np.isfinite(ri).all()):
                    per_sample.append("non-finite")
                elif ri.size < 4 or min(ri.shape[-2:]) < 2:
                    per_sample.append(f"map {'x'.join(map(str, ri.shape))}")
                elif float(hi.max() - hi.min()) > 1e-6:
                    per_sample.append("ok")
                elif float(ri.max()) <= 0 and float(ri.max() - ri.min()) > 1e-6 * max(float(np.abs(ri).max()), 1e-30):
                    per_sample.append("ok (CAM <= 0)")
                else:
                    per_sample.append("constant")
            bad = [s for s in per_sample if not s.startswith("ok")]
            row["cam"] = bad[0] if bad else ("ok (CAM <= 0)" if "ok (CAM <= 0)" in per_sample else "ok")
    row["cam_ok"] = row.get("cam", "").startswith("ok")
    row["status"] = "pass" if row["fwd_ok"] and row["cam_ok"] else "fail"
    row["seconds"] = seconds
    return row


# --------------------------------------------------------------------------- report

REFUSED = ("export failed", "ORT failed")  # the exporter or onnxruntime: not counted against us
NOT_ATTEMPTED = REFUSED + ("skipped",)
FAILED = ("load/run failed", "forward mismatch", "fail")
HEADER = ["family", "model", "source", "input px", "exporter", "opset", "batch", "load",
          "fwd max rel err vs ORT", "vs float64 (ORT vs float64)", "suggested layer", "GradCAM", "s"]


def fmt(x):
    return "-" if x is None else f"{x:.1e}"


def clean(text) -> str:
    """Text safe in one Markdown table cell or list item: no colour codes, pipes or line breaks."""
    return ANSI.sub("", str(text)).replace("|", "/").replace("\n", " ").strip()


def who(r: dict) -> str:
    """A row's name in prose: torchvision and timm share some model names (efficientnet_b0)."""
    return ("torchvision " if r["source"] == "torchvision" else "") + f"{r['model']} ({r['exporter']}" + (f", batch {r['batch']})" if r["batch"] != 1 else ")")


def table_row(r: dict) -> str:
    status = r["status"]
    if status == "export failed":
        load = "refused by the exporter (below)"
    elif status == "ORT failed":
        load = "refused by onnxruntime (below)"
    elif status == "skipped":
        load = "skipped (below)"
    elif status == "load/run failed":
        ops = r.get("missing_ops") or []
        load = "**no**: missing " + ", ".join(ops) if ops else "**no**: " + r.get("error", "")
    elif status == "forward mismatch":
        load = "ok; " + r.get("error", "")
    else:
        load = "ok"
    f64 = "-" if "rel_ours_f64" not in r else f"{fmt(r['rel_ours_f64'])} (ORT {fmt(r['rel_ort_f64'])})"
    fwd = fmt(r.get("rel_ort")) + ("" if r.get("fwd_ok", True) else " **no**")
    cam = r.get("cam") or "-"
    if cam != "-" and not r.get("cam_ok"):
        cam = f"**{cam}**" + (f": {r['cam_error']}" if r.get("cam_error") else "")
    layer = r.get("suggested") or ("-" if r.get("suggestion_line") is None else "?")
    exporter = r["exporter"] + ("" if r.get("dynamic_batch", True) is not False else " (static)")
    cells = [r["family"], r["model"], r["source"], str(r["size"]), exporter, str(r["opset"]), str(r["batch"]),
             load, fwd, f64, f"`{layer}`" if layer not in ("-", "?") else layer, cam,
             "-" if "seconds" not in r else f"{r['seconds']:.1f}"]
    return "| " + " | ".join(clean(c) for c in cells) + " |"


def summarize(rows: list, zoo: list) -> dict:
    """The counts of the closing note, from the rows and the zoo entries checked (dicts with a "family")."""
    attempted = [r for r in rows if r["status"] not in NOT_ATTEMPTED]
    b1 = [r for r in attempted if r["batch"] == 1]
    b2 = [r for r in attempted if r["batch"] == 2]
    passed1 = [r for r in b1 if r["status"] == "pass"]
    passed = [r for r in attempted if r["status"] == "pass"]
    refused = [r for r in rows if r["status"] in REFUSED]
    blockers = collections.defaultdict(set)
    other = collections.defaultdict(set)
    for r in attempted:
        if r["status"] == "load/run failed":
            if r.get("missing_ops"):
                for op in r["missing_ops"]:
                    blockers[op].add(who(r))
            else:
                other["load/run: " + re.sub(r"'[^']*'", "'…'", clean(r.get("error", "")))[:120]].add(who(r))
        elif r["status"] == "forward mismatch":
            other["output shape differs"].add(who(r))
        else:
            if not r.get("fwd_ok"):
                other["forward differs from ORT"].add(who(r))
            if not r.get("cam_ok"):
                reason = r.get("cam", "")
                if r.get("cam_error"):
                    reason += ": " + re.sub(r"'[^']*'", "'…'", clean(r["cam_error"]))[:100]
                other["GradCAM at suggestion: " + reason].add(who(r))
    models_of = lambda s: sorted({w.split(" (")[0] for w in s})  # noqa: E731
    return {"attempted_b1": len(b1), "passed_b1": len(passed1), "percent_b1": 100.0 * len(passed1) / max(len(b1), 1),
            "attempted_b2": len(b2), "passed_b2": sum(r["status"] == "pass" for r in b2),
            "models": len(zoo), "families": len({e["family"] for e in zoo}),
            "models_passing": len({(r["source"], r["model"]) for r in passed}),
            "families_passing": len({r["family"] for r in passed}),
            "refused": len(refused), "skipped": sum(r["status"] == "skipped" for r in rows),
            "refusals": [{"model": r["model"], "exporter": r["exporter"], "status": r["status"],
                          "reason": r.get("error", "")} for r in refused],
            "missing_ops": {op: models_of(w) for op, w in blockers.items()},
            "other_failures": {k: sorted(v) for k, v in other.items()}}


def refusal_reason(error: str) -> str:
    """An exporter's refusal in one line: the dynamic-batch and static-batch attempts said once when alike."""
    error = re.sub(r"\s*Next steps:", "", str(error))  # the dynamo exporter's advice to its own developers
    parts = [p.split(": ", 1) for p in error.split(" | ") if p]
    reasons = {clean(p[-1]) for p in parts}
    if len(parts) > 1 and len(reasons) == 1 and all(p[0].endswith("batch") for p in parts):
        return f"{reasons.pop()} (dynamic and static batch alike)"
    return "; ".join(clean(": ".join(p)) for p in parts)


def render(results: dict) -> str:
    """tools/zoo_results.md from the results the run wrote to JSON (`--render-only` renders a stored run)."""
    rows, zoo, crit = results["rows"], results["zoo"], results["criteria"]
    s = summarize(rows, zoo)
    fwd_tol, noise = crit["fwd_tol"], crit["noise_factor"]
    tools = results.get("tools", {})
    versions = ", ".join(f"{k} {v}" for k, v in tools.items() if not isinstance(v, bool))
    binary = results.get("binary_provenance", {})
    out = []
    add = out.append
    add("# Breadth check: torchvision and timm classifiers through shortcut-detect")
    add("")
    add(f"Written by `tools/zoo_check.py` from its run of {results['generated']} (UTC); "
        "`tools/zoo_check.py --render-only` writes this file again from the run's `tools/.cache/zoo/results.json`.")
    add("")
    add(f"- **Machine**: {results['cpu']} (lscpu), {results.get('cores', '?')} cores; "
        f"{results.get('jobs', '?')} model(s) checked at a time, {results.get('threads', '?')} BLAS thread(s) each"
        + (f"; load average {results['loadavg'][0]:.1f} at the start and {results['loadavg'][1]:.1f} at the end"
           if results.get("loadavg") else "")
        + (" (more runnable jobs than cores: the seconds are wall-clock times under that load)"
           if max(results.get("loadavg") or [0]) > (results.get("cores") or 1) else "") + ".")
    add(f"- **Tools**: {versions}.")
    if binary.get("commit"):
        state = []
        if binary.get("sources_dirty"):
            state.append("with uncommitted changes to Sources/ or Package.swift")
        if binary.get("older_than_sources"):
            state.append("built before the last commit that touched Sources/ or Package.swift (rebuild to be sure)")
        add(f"- **Binary**: `{binary['path']}`, built from commit `{binary['commit']}`"
            + (" " + " and ".join(state) if state else " (sources clean, binary newer than the last source commit)")
            + f", modified {results['binary_mtime']}.")
    else:
        add(f"- **Binary**: `{results['binary']}`, modified {results['binary_mtime']} (its commit is not known).")
    rendered = results.get("rendered_by")
    add(f"- **Script**: commit `{results['script_commit']}`"
        + (" with uncommitted changes to tools/zoo_check.py" if results.get("script_dirty") else "")
        + (f" (this file rendered again by commit `{rendered}`)" if rendered and rendered != results["script_commit"]
           else "")
        + f"; scope: {results.get('scope', 'the whole zoo')}; "
        f"exports {results['export_seconds']:.0f} s (0 when all came from the cache), "
        f"our checks {results['check_seconds']:.0f} s.")
    add("")

    ok_rows = [r for r in rows if r.get("rel_ort") is not None]
    worst = max(ok_rows, key=lambda r: r["rel_ort"], default=None)
    via_f64 = sum(1 for r in ok_rows if r.get("fwd_ok") and r["rel_ort"] > fwd_tol)
    f64_rows = [r for r in rows if r.get("rel_ort_f64") is not None]
    noisiest = max(f64_rows, key=lambda r: r["rel_ort_f64"], default=None)
    add("## Criteria")
    add("")
    add("Every model is the smallest variant of its family with seeded random weights (nothing is downloaded), "
        "exported by `torch.onnx.export` twice: TorchScript at opset 17 (`ts17`) and dynamo at opset 18 (`dyn18`), "
        "with a dynamic batch axis (`(static)` marks an export that refused it and was redone at batch 1). "
        "The input is seeded standard-normal noise; onnxruntime runs on the CPU with graph optimisations off.")
    add("")
    add(f"- **Forward**: rel(a, b) = max|a - b| / max|b| over the logits. A row matches when rel(ours, ORT) <= "
        f"{fwd_tol:g}, the project's full-size criterion (`tools/fullsize_check.py`): float32 rounding in another "
        "summation order stays far below it"
        + (f" (the largest rel(ours, ORT) in this run is {fmt(worst['rel_ort'])}, {who(worst)})" if worst else "")
        + ", while a wrong op or attribute moves the logits by an amount of their own order. "
        f"Where float32 itself is noisy, i.e. rel(ORT, float64 PyTorch) > {fwd_tol:g} (deep random-weight nets), "
        f"a row also matches when rel(ours, float64) <= {noise:g} x rel(ORT, float64): we are no further from the "
        f"exact answer than {noise:g} times onnxruntime's own float32 error"
        + (f" (the largest rel(ORT, float64) in this run is {fmt(noisiest['rel_ort_f64'])}, {who(noisiest)})"
           if noisiest else "") + f". {via_f64} row(s) of this run match through this second test.")
    add("- **GradCAM** at the layer `inspect` suggests (a name `gradcam --layer` accepts: a module path where the "
        "exporter kept one, else the ONNX node's name): the heatmap [N, H, W] and the raw layer map [N, h, w] are "
        "finite, the layer map has at least 2 x 2 cells, and the heatmap is not constant (max - min > 1e-6; it is "
        "normalised to [0, 1]). When the heatmap is constant only because the class-weighted map is <= 0 "
        "everywhere (the ReLU zeroes it, which random weights do now and then), a raw map that varies counts as "
        "ok and the row says `ok (CAM <= 0)`.")
    add("- **Pass** = forward matches and GradCAM is ok. Exports that the exporter or onnxruntime refuses are "
        "listed and not counted: there is no model to load. The percentage is over batch 1; the models marked for "
        "it also run at batch 2 through the same dynamic-batch export.")
    add("")

    add("## Summary")
    add("")
    add(f"**{s['passed_b1']} of {s['attempted_b1']} batch-1 exports ({s['percent_b1']:.1f}%) ran with the forward "
        f"pass matching and a non-constant GradCAM at the suggested layer**; batch 2: {s['passed_b2']} of "
        f"{s['attempted_b2']}.")
    add("")
    add(f"- {s['models']} models in {s['families']} families; at least one export passes for {s['models_passing']} "
        f"models in {s['families_passing']} families.")
    by_reason = collections.defaultdict(list)
    for ref in s["refusals"]:
        by_reason[(ref["status"], ref["exporter"], refusal_reason(ref["reason"]))].append(ref["model"])
    add(f"- {s['refused']} export(s) refused, not counted" + (":" if by_reason else "."))
    for (status, exporter, reason), models in sorted(by_reason.items(), key=lambda kv: (kv[0][1], -len(kv[1]))):
        by = "the exporter" if status == "export failed" else "onnxruntime"
        add(f"  - {exporter}, by {by}, {', '.join(sorted(models))}: {reason}")
    if s["skipped"]:
        add(f"- {s['skipped']} row(s) skipped (below).")
    add("- Missing ops: " + ("none." if not s["missing_ops"] else ""))
    for op, models in sorted(s["missing_ops"].items(), key=lambda kv: (-len(kv[1]), kv[0])):
        add(f"  - {op} {len(models)}: {', '.join(models)}")
    add("- Other failures: " + ("none." if not s["other_failures"] else ""))
    for what, rows_of in sorted(s["other_failures"].items(), key=lambda kv: (-len(kv[1]), kv[0])):
        add(f"  - {what}: {', '.join(rows_of)}")
    add("")

    add("## Table")
    add("")
    add("Seconds: our three binary calls for the row (`inspect`, `run`, `gradcam`), process start included.")
    add("")
    add("| " + " | ".join(HEADER) + " |")
    add("|" + "|".join("---" for _ in HEADER) + "|")
    out.extend(table_row(r) for r in rows)
    add("")

    add("## Why each row that is not plainly ok is so")
    add("")
    why = []
    for r in rows:
        if r["status"] in REFUSED:
            by = "the exporter" if r["status"] == "export failed" else "onnxruntime"
            why.append(f"{who(r)}: refused by {by}: {refusal_reason(r.get('error', ''))}")
        elif r["status"] == "skipped":
            why.append(f"{who(r)}: skipped: {clean(r.get('error', ''))}")
        elif r["status"] in FAILED:
            cause = r.get("cam_error") or r.get("error") or r.get("cam") or ""
            what = "forward differs from ORT" if r["status"] == "fail" and not r.get("fwd_ok") else \
                "GradCAM" if r["status"] == "fail" else r["status"]
            why.append(f"{who(r)}: **{what}**: {clean(cause)}")
        if r.get("cam") == "ok (CAM <= 0)":
            why.append(f"{who(r)}: `ok (CAM <= 0)`: the class-weighted map at `{r['suggested']}` is <= 0 "
                       "everywhere, so the heatmap is 0; the raw layer map varies (criteria above).")
        if r.get("fwd_ok") and r.get("rel_ort", 0) > fwd_tol:
            why.append(f"{who(r)}: forward matches through the float64 criterion: rel(ours, ORT) "
                       f"{fmt(r['rel_ort'])}, but rel(ours, float64) {fmt(r['rel_ours_f64'])} <= {noise:g} x "
                       f"rel(ORT, float64) {fmt(r['rel_ort_f64'])}.")
        if r.get("dynamic_batch") is False:
            why.append(f"{who(r)}: static batch-1 export: {clean(r.get('export_note') or '')}")
        if r["status"] not in NOT_ATTEMPTED and r.get("rel_ort") is not None and "rel_ours_f64" not in r:
            why.append(f"{who(r)}: no float64 comparison: "
                       + clean(r.get("float64_error") or "PyTorch's float64 output is missing or has another shape"))
    if why:
        out.extend(f"- {w}" for w in why)
    else:
        add("Every row is plainly ok.")
    add("")

    notes = [e for e in zoo if e.get("note")]
    if notes:
        add("## Notes on the zoo (input sizes other than 128 px, and why some entries are there)")
        add("")
        for e in notes:
            add(f"- `{e['call']}`, {e['size']} px: {clean(re.sub(r'^[0-9]+: ', '', e['note']))}")
        add("")
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def needs_export(entry: Entry, exporters: list, force: bool) -> list:
    if force:
        return exporters
    meta_path = CACHE / entry.key / "meta.json"
    if not meta_path.exists():
        return exporters
    meta = json.loads(meta_path.read_text())
    want = []
    for tag in exporters:
        rec = meta.get("exports", {}).get(tag)
        if rec is None:
            want.append(tag)
        elif "export_error" not in rec and not (CACHE / entry.key / rec["file"]).exists():
            want.append(tag)
    return want


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="+", metavar="NAME",
                    help="only these families or model names (a name matching none exactly: as a substring)")
    ap.add_argument("--exporters", nargs="+", choices=list(EXPORTERS), default=list(EXPORTERS))
    ap.add_argument("--jobs", type=int, default=1, help="models exported / checked at once (default 1)")
    ap.add_argument("--threads", type=int,
                    help="threads for our binary (OPENBLAS_NUM_THREADS; default cores / jobs)")
    ap.add_argument("--binary", metavar="PATH", default=str(DEFAULT_BINARY),
                    help="shortcut-detect executable (default <repo>/.build-release/release/shortcut-detect)")
    ap.add_argument("--force", action="store_true", help="export again even when the cache has the export")
    ap.add_argument("--export-only", action="store_true", help="fill the cache, do not run our binary")
    ap.add_argument("--skip-export", action="store_true",
                    help="check only what the cache holds (models not exported yet are left out)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per export worker and per binary call")
    ap.add_argument("--list", action="store_true", help="print the zoo and exit")
    ap.add_argument("--json", default=str(CACHE / "results.json"), help="where the results go (all of them)")
    ap.add_argument("--markdown", default=str(DEFAULT_MARKDOWN), metavar="PATH",
                    help="where the table with its criteria and summary goes (default tools/zoo_results.md)")
    ap.add_argument("--render-only", action="store_true",
                    help="write --markdown from the stored --json run; export and run nothing")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()

    entries = ZOO
    if args.families:  # exact family or model names; a name that matches none exactly matches as a substring
        def matches(e, f):
            exact = any(f in (x.family, x.name) for x in ZOO)
            return f in (e.family, e.name) if exact else (f in e.family or f in e.name)
        entries = [e for e in ZOO if any(matches(e, f) for f in args.families)]
    if args.worker:
        sys.path.insert(0, str(TOOLS_DIR))
        (entry,) = [e for e in ZOO if e.key == args.worker]
        export_worker(entry, args.exporters)
        return 0
    if args.render_only:
        results = json.loads(Path(args.json).read_text())
        results["rendered_by"] = git_out(REPO_DIR, "rev-parse", "HEAD")
        Path(args.markdown).write_text(render(results) + "\n")
        print(f"wrote {args.markdown} from {args.json} (run of {results['generated']})", file=sys.stderr)
        return 0
    if args.list:
        for e in entries:
            print(f"{e.family:18} {e.source_call():80} {e.size:4} px  {e.note}")
        print(f"{len(entries)} models, {len({e.family for e in entries})} families")
        return 0

    CACHE.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]

    def export(entry):
        want = needs_export(entry, args.exporters, args.force)
        if not want:
            return entry, None
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", entry.key,
                                   "--exporters", *want], capture_output=True, text=True, timeout=args.timeout)
            msg = None if proc.returncode == 0 else first_line(proc.stderr or proc.stdout, 300)
        except subprocess.TimeoutExpired:
            msg = f"export worker timed out after {args.timeout} s"
        if msg:  # the worker died before writing meta.json: record that for every exporter asked
            meta_path = CACHE / entry.key / "meta.json"
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            meta.setdefault("exports", {})
            for tag in want:
                kind, opset = EXPORTERS[tag]
                meta["exports"].setdefault(tag, {"exporter": kind, "opset": opset, "file": f"{tag}.onnx",
                                                 "export_error": f"worker: {msg}"})
            meta_path.parent.mkdir(parents=True, exist_ok=True)
            meta_path.write_text(json.dumps(meta, indent=1) + "\n")
        print(f"  exported {entry.key} ({', '.join(want)}) in {time.perf_counter() - t0:.0f} s"
              + (f": {msg}" if msg else ""), file=sys.stderr, flush=True)
        return entry, msg

    if args.skip_export:
        entries = [e for e in entries if (CACHE / e.key / "meta.json").exists()]
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
            list(pool.map(export, entries))
    t_exported = time.perf_counter()
    if args.export_only:
        print(f"exports ready in {t_exported - t_start:.0f} s", file=sys.stderr)
        return 0

    binary = Path(args.binary).expanduser().resolve()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        print(f"no executable at {binary}: build it with `swift build -c release --product shortcut-detect "
              "--scratch-path .build-release` or pass --binary", file=sys.stderr)
        return 2
    env = dict(os.environ)
    threads = args.threads or max(1, (os.cpu_count() or 1) // max(args.jobs, 1))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        env[var] = str(threads)

    def exported(e, tag):
        meta_path = CACHE / e.key / "meta.json"
        return meta_path.exists() and tag in json.loads(meta_path.read_text()).get("exports", {})

    jobs = [(e, tag, b) for e in entries for tag in args.exporters for b in ([1, 2] if e.batch2 else [1])
            if exported(e, tag)]

    def check(job):
        entry, tag, batch = job
        try:
            row = check_row(entry, tag, batch, binary, args.timeout, env)
        except Exception as e:  # noqa: BLE001  (a broken cache entry must not stop the sweep)
            row = {"family": entry.family, "source": entry.source, "model": entry.name, "size": entry.size,
                   "exporter": tag, "opset": EXPORTERS[tag][1], "batch": batch, "status": "skipped",
                   "error": f"{type(e).__name__}: {e}"}
        print(f"  {entry.name} {tag} b{batch}: {row['status']}"
              + (f" ({row.get('error') or row.get('cam')})" if row["status"] != "pass" else ""),
              file=sys.stderr, flush=True)
        return row

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        rows = list(pool.map(check, jobs))
    t_done = time.perf_counter()

    sys.path.insert(0, str(TOOLS_DIR))
    import tvcompat  # noqa: E402, F401  (before timm, which fixturelib.tool_versions imports)
    import fixturelib as fl  # noqa: E402  (imports torch: only now, for the versions)

    zoo = [{"family": e.family, "call": e.source_call(), "size": e.size, "note": e.note} for e in entries]
    scope = "the whole zoo" if not args.families else "families/models " + ", ".join(args.families)
    if args.exporters != list(EXPORTERS):
        scope += "; exporters " + ", ".join(args.exporters)
    results = {
        "generated": fl.now_iso(), "tools": fl.tool_versions(), "cpu": cpu_model(), "cores": os.cpu_count(),
        "binary": str(binary), "binary_mtime": time.ctime(binary.stat().st_mtime),
        "binary_provenance": binary_provenance(binary),
        "script_commit": git_out(REPO_DIR, "rev-parse", "HEAD"),
        "script_dirty": bool(git_out(REPO_DIR, "status", "--porcelain", "--", "tools/zoo_check.py")),
        "scope": scope, "jobs": args.jobs,
        "threads": threads, "loadavg": [load_start, os.getloadavg()[0]],
        "export_seconds": t_exported - t_start, "check_seconds": t_done - t_exported,
        "criteria": {"fwd_tol": FWD_TOL, "noise_factor": NOISE_FACTOR},
        "summary": summarize(rows, zoo), "zoo": zoo, "rows": rows}
    Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    markdown = render(results)
    Path(args.markdown).write_text(markdown + "\n")
    print(markdown)
    print(f"\nwrote {args.markdown} and {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
