#!/usr/bin/env python3
"""End to end on image files: `embed`, `gradcam --images` and `audit` against pytorch-grad-cam's loop (issue 15).

The kernels' speed is not what a user waits for: reading JPEGs, preprocessing, the passes and
writing results are.  This times whole commands on a folder of JPEGs:

  embed     shortcut-detect embed MODEL --images DIR --layer layer4 --batch-size B --out E.npy
            (one forward pass per batch: the floor the other two are measured against)
  gradcam   shortcut-detect gradcam MODEL --images DIR --layer layer4 --batch-size B --out DIR
            (GradCAM of each image's predicted class, an overlay PNG per image)
  audit     shortcut-detect audit MODEL --images DIR --groups G.csv --layer layer4 --mask-rect R
            --batch-size B --faithfulness 0 --out REPORT
            (GradCAM, the in-region share, the embedding detectors and the report; without the
            faithfulness metrics, whose extra passes are another question)
  pgc       pytorch-grad-cam's own loop, in a fresh Python process: per batch of B files
            PIL.Image.open(...).convert("RGB"), torchvision's Resize(256), CenterCrop(224),
            ToTensor(), Normalize(ImageNet), GradCAM(model, [model.layer4[-1]]) on the stacked
            batch (targets=None: each image's predicted class, found by its own forward pass),
            then each map's share inside the same region; torch.set_num_threads(T)

Model: torchvision resnet50 with the seeded random weights of tools/fullsize_check.py (nothing
pretrained is downloaded), exported with the TorchScript exporter at opset 17 to
tools/.cache/fullsize/resnet50_ts17.onnx when missing (as tools/bench.py does); pytorch-grad-cam
runs the same seeded model.  Images: --images seeded 256x256 JPEGs (smooth colour fields with
a few shapes, quality 90) in tools/.cache/bench_e2e/images-<N>/, made when missing.  The region
is the 56x56 top-left corner of the 224x224 input (--mask-rect 0,0,56,56 in model space).

Each command runs once, in a fresh process, with OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and
MKL_NUM_THREADS set to --threads; the images are read once beforehand so every run finds them
in the page cache.  Reported per command: wall time, processor time (user + system, from
wait4's rusage: on a shared machine wall time includes waiting for a core, processor time does
not), peak RSS (ru_maxrss when it exceeds this standard-library-only driver's VmHWM, else the
child's sampled VmHWM), and for ours the forward and reverse passes the executor ran
(SHORTCUT_DETECT_REPORT_PASSES): the audit and gradcam must run one forward and one reverse
pass per batch, embed one forward.  --compression adds a `gradcam` run per extra zlib level,
to show what the overlay PNGs' level costs (time and bytes).

Targets (issue 15, report only): audit and gradcam --images at most 1.3x embed's time; and
at least 3x faster than pytorch-grad-cam's loop.  The CPU model, the tools' versions and
everything measured go to tools/.cache/bench_e2e/results.json (--json).  Exit status: 0, or 1
when a run failed or a pass count is not one per batch, 2 when the binary is missing.

Build our binary first:  swift build -c release --product shortcut-detect
Example:  /work/main/tools/.venv/bin/python tools/bench_end_to_end.py --images 256 --threads 2
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parent
REPO_DIR = TOOLS_DIR.parent
sys.path.insert(0, str(TOOLS_DIR))

from bench import binary_version, machine_info, vm_hwm  # noqa: E402  (standard library only at import)

CACHE = TOOLS_DIR / ".cache" / "bench_e2e"
MODEL = TOOLS_DIR / ".cache" / "fullsize" / "resnet50_ts17.onnx"
LAYER = "layer4"
SIZE = 256          # the JPEGs' side
CROP = 224          # the model's input
REGION = (0, 0, 56, 56)  # x, y, width, height in the 224x224 input
TIME_TARGET = 1.3   # audit and gradcam / embed, at most
PGC_TARGET = 3.0    # pytorch-grad-cam / ours, at least


# --------------------------------------------------------------------------- workers (fresh Python processes)


def worker_prepare(a) -> dict:
    """Export the model when missing, make the JPEGs when missing, return the tools' versions."""
    import numpy as np
    import torch
    from PIL import Image, ImageDraw

    import fixturelib as fl
    import fullsize_check as fc

    fl.quiet_warnings()
    notes = []
    if not MODEL.exists():
        MODEL.parent.mkdir(parents=True, exist_ok=True)
        example = torch.from_numpy(np.random.default_rng(fc.SEED).standard_normal((2, 3, CROP, CROP)).astype(np.float32))
        fc.export_ts(fc.build("resnet50"), example, MODEL, 17)
        notes.append(f"exported {MODEL.name}")
    folder = Path(a.folder)
    if not folder.exists() or len(list(folder.glob("*.jpg"))) != a.count:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        rng = np.random.default_rng(20261130)
        yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
        for i in range(a.count):
            # A smooth colour field (what JPEG is made for), with a few shapes on it.
            coefficients = rng.uniform(-1, 1, size=(3, 3))
            field = np.stack([0.5 + 0.25 * (c[0] * xx + c[1] * yy + c[2] * np.sin(6 * xx * yy)) for c in coefficients], axis=-1)
            picture = Image.fromarray((np.clip(field, 0, 1) * 255).astype(np.uint8))
            draw = ImageDraw.Draw(picture)
            for _ in range(3):
                x0, y0 = rng.integers(0, SIZE - 64, size=2)
                w, h = rng.integers(16, 64, size=2)
                colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
                (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([int(x0), int(y0), int(x0 + w), int(y0 + h)], fill=colour)
            picture.save(folder / f"img_{i:04d}.jpg", quality=90)
        notes.append(f"made {a.count} JPEGs in {folder}")
    import PIL
    from importlib.metadata import version
    tools = fl.tool_versions() | {"grad-cam": version("grad-cam"), "pillow": PIL.__version__}
    return {"tools": tools, "notes": notes, "fullsize_seed": fc.SEED}


def worker_pgc(a) -> dict:
    """pytorch-grad-cam's loop over the folder (see the module's docstring)."""
    import numpy as np
    import torch
    from PIL import Image

    import fixturelib as fl
    import fullsize_check as fc  # imports torchvision through tvcompat, before pytorch-grad-cam does
    from tvcompat import torchvision

    from pytorch_grad_cam import GradCAM

    fl.quiet_warnings()
    torch.set_num_threads(a.threads)
    T = torchvision.transforms
    transform = T.Compose([T.Resize(SIZE), T.CenterCrop(CROP), T.ToTensor(),
                           T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    start = time.perf_counter()
    model = fc.build("resnet50")
    cam = GradCAM(model=model, target_layers=[model.layer4[-1]])
    x0, y0, w, h = REGION
    files = sorted(Path(a.folder).glob("*.jpg"))
    shares = []
    try:
        for first in range(0, len(files), a.batch_size):
            batch = torch.stack([transform(Image.open(f).convert("RGB")) for f in files[first:first + a.batch_size]])
            maps = cam(input_tensor=batch, targets=None)
            inside = maps[:, y0:y0 + h, x0:x0 + w].sum(axis=(1, 2))
            shares += list(inside / np.maximum(maps.sum(axis=(1, 2)), 1e-12))
    finally:
        cam.activations_and_grads.release()
    return {"images": len(files), "loop_s": time.perf_counter() - start, "mean_share": float(np.mean(shares))}


WORKERS = {"prepare": worker_prepare, "pgc": worker_pgc}


def worker_main(argv: list) -> int:
    ap = argparse.ArgumentParser(prog="bench_end_to_end.py --worker")
    ap.add_argument("--worker", choices=list(WORKERS), required=True)
    ap.add_argument("--folder", required=True)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    a = ap.parse_args(argv)
    print(json.dumps(WORKERS[a.worker](a)), flush=True)
    return 0


# --------------------------------------------------------------------------- driver (standard library only)


def run(cmd: list, env: dict, timeout: float) -> dict:
    """One fresh process: wall and processor time, peak RSS, output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO_DIR)
        sampled = [0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                sampled[0] = max(sampled[0], vm_hwm(proc.pid) or 0)
                time.sleep(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        timer.cancel()
        done.set()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    maxrss = usage.ru_maxrss * 1024
    peak = maxrss if maxrss > (vm_hwm() or 0) else sampled[0]
    record = {"cmd": cmd, "status": proc.returncode, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
              "user_s": usage.ru_utime, "system_s": usage.ru_stime, "peak_rss_mib": peak / 2**20}
    passes = re.search(r"passes: forward (\d+), reverse (\d+)", stderr)
    if passes:
        record["passes"] = {"forward": int(passes.group(1)), "reverse": int(passes.group(2))}
    if proc.returncode != 0:
        record["error"] = (stderr.strip() or stdout.strip())[-2000:]
    record["stdout_tail"] = stdout.strip().splitlines()[-1:] if stdout.strip() else []
    return record


def python_worker(kind: str, env: dict, timeout: float, **kw) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind]
    for key, value in kw.items():
        cmd += ["--" + key.replace("_", "-"), str(value)]
    record = run(cmd, env, timeout)
    if record["status"] == 0:
        record["result"] = json.loads(record.pop("stdout_tail")[-1])
    return record


def main() -> int:
    if "--worker" in sys.argv:
        return worker_main(sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=256, help="how many JPEGs (default 256)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--compression", type=int, nargs="*", default=[6],
                    help="extra zlib levels to time gradcam at (default: 6; ours writes at 1)")
    ap.add_argument("--binary", type=Path, default=REPO_DIR / ".build" / "release" / "shortcut-detect")
    ap.add_argument("--skip-pgc", action="store_true")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--json", type=Path, default=CACHE / "results.json")
    a = ap.parse_args()
    if not a.binary.exists():
        print(f"{a.binary} is missing; build it: swift build -c release --product shortcut-detect", file=sys.stderr)
        return 2
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(a.threads)
    env["SHORTCUT_DETECT_REPORT_PASSES"] = "1"
    machine = machine_info(None, None)
    machine.pop("flags", None)
    print(f"CPU: {machine['cpu_model']} ({machine['cpus']} CPUs available, SIMD {' '.join(machine['simd'])}); "
          f"load average {os.getloadavg()[0]:.1f}; {binary_version(a.binary)}", flush=True)

    folder = CACHE / f"images-{a.images}"
    prepared = python_worker("prepare", env, a.timeout, folder=folder, count=a.images)
    if prepared["status"] != 0:
        print(f"prepare failed: {prepared.get('error')}", file=sys.stderr)
        return 1
    tools = prepared["result"]["tools"]
    print("tools: " + ", ".join(f"{k} {v}" for k, v in sorted(tools.items())), flush=True)
    files = sorted(folder.glob("*.jpg"))
    for f in files:  # into the page cache, for every run alike
        f.read_bytes()
    scratch = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    groups = scratch / "groups.csv"
    groups.write_text("file,group\n" + "".join(f"{f.name},{'A' if i % 2 == 0 else 'B'}\n" for i, f in enumerate(files)))
    batches = (len(files) + a.batch_size - 1) // a.batch_size
    common = ["--images", str(folder), "--layer", LAYER, "--batch-size", str(a.batch_size)]
    jobs = [
        ("embed", [str(a.binary), "embed", str(MODEL), *common, "--out", str(scratch / "embeddings.npy")],
         {"forward": batches, "reverse": 0}),
        ("gradcam", [str(a.binary), "gradcam", str(MODEL), *common, "--out", str(scratch / "gradcam")],
         {"forward": batches, "reverse": batches}),
        ("audit", [str(a.binary), "audit", str(MODEL), *common, "--groups", str(groups), "--mask-rect", ",".join(map(str, REGION)),
                   "--mask-space", "model", "--faithfulness", "0", "--out", str(scratch / "report")],
         {"forward": batches, "reverse": batches}),
    ]
    for level in a.compression:
        jobs.append((f"gradcam --compression {level}", [str(a.binary), "gradcam", str(MODEL), *common, "--compression", str(level),
                                                        "--out", str(scratch / f"gradcam-{level}")], {"forward": batches, "reverse": batches}))
    records = {}
    failed = False
    try:
        for name, cmd, expected in jobs:
            record = run(cmd, env, a.timeout)
            record["expected_passes"] = expected
            record["one_pass_per_batch"] = record.get("passes") == expected
            out = Path(cmd[-1])
            if out.is_dir():
                pngs = list(out.glob("*.png"))
                record["png_files"], record["png_bytes"] = len(pngs), sum(p.stat().st_size for p in pngs)
            records[name] = record
            failed |= record["status"] != 0 or not record["one_pass_per_batch"]
            print(f"{name:>24}: wall {record['wall_s']:6.1f} s, processor {record['cpu_s']:6.1f} s, peak RSS "
                  f"{record['peak_rss_mib']:5.0f} MiB, passes {record.get('passes')} (expected {expected})"
                  + (f", {record['png_files']} PNGs {record['png_bytes'] / 2**20:.1f} MiB" if "png_files" in record else "")
                  + (f"  FAILED: {record['error']}" if record["status"] != 0 else ""), flush=True)
        if not a.skip_pgc:
            record = python_worker("pgc", env, a.timeout, folder=folder, threads=a.threads, batch_size=a.batch_size)
            records["pytorch-grad-cam"] = record
            failed |= record["status"] != 0
            print(f"{'pytorch-grad-cam':>24}: wall {record['wall_s']:6.1f} s, processor {record['cpu_s']:6.1f} s, peak RSS "
                  f"{record['peak_rss_mib']:5.0f} MiB (imports included)"
                  + (f"  FAILED: {record.get('error')}" if record["status"] != 0 else ""), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    def ratio(x, y, key):
        ok = all(name in records and records[name]["status"] == 0 for name in (x, y))
        return records[x][key] / records[y][key] if ok and records[y][key] else None

    targets = []
    for name in ("audit", "gradcam"):
        for key in ("wall_s", "cpu_s"):
            r = ratio(name, "embed", key)
            targets.append({"what": f"{name} / embed ({key})", "ratio": r, "target": f"<= {TIME_TARGET}",
                            "held": r is not None and r <= TIME_TARGET})
            r = ratio("pytorch-grad-cam", name, key)
            targets.append({"what": f"pytorch-grad-cam / {name} ({key})", "ratio": r, "target": f">= {PGC_TARGET}",
                            "held": r is not None and r >= PGC_TARGET})
    print(f"load average after: {os.getloadavg()[0]:.1f} (a shared machine: wall times include waiting for a core)")
    for t in targets:
        shown = "-" if t["ratio"] is None else f"{t['ratio']:.2f}"
        print(f"  {t['what']:<40} {shown:>6}  target {t['target']}: {'holds' if t['held'] else 'missed'}")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(), "machine": machine,
        "load_average": os.getloadavg(), "binary": str(a.binary), "version": binary_version(a.binary), "tools": tools,
        "images": len(files), "image_size": SIZE, "threads": a.threads, "batch_size": a.batch_size, "model": MODEL.name,
        "layer": LAYER, "region": REGION, "records": records, "targets": targets, "notes": prepared["result"]["notes"],
    }, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
