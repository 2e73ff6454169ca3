#!/usr/bin/env python3
"""Peak resident memory of `shortcut-detect audit` against the number of images (issue 13).

The audit keeps its per-sample data on disk and streams it (README, "Memory"), so its peak
resident set should not grow with the number of images: the target is that a 100,000-image
audit peaks within 1.2x of a 1,000-image one.

The images are the planted-shortcut fixture's 48 (Fixtures/audit/images, 64x64 PNGs), listed
again and again: a scratch folder holds symbolic links copy0000, copy0001, ... to that folder,
and the groups CSV lists copyNNNN/img_XXX.png with the fixture's group and label, so every row
is a distinct path (no row is a repeat, which the audit would skip) while no image is copied.
Each count is audited with the README's command (shortcut.onnx, --layer features.2, the
fixture's mask, --preprocess half, --counterfactual mean, --spray; the embedding detectors run
at the same layer by default) in a fresh process.

Peak RSS is the child's own: ru_maxrss from wait4 when it exceeds this (standard-library-only)
script's VmHWM (on Linux a child's ru_maxrss also covers the address space it had before exec,
its parent's), otherwise the child's VmHWM sampled from /proc every 5 ms. Wall time and
processor time (user + system, from the same rusage) are reported too.

Build the binary first (release):
  swift build -c release --product shortcut-detect

Examples:
  /work/main/tools/.venv/bin/python tools/audit_memory.py                       # 1,000 and 100,000 images
  /work/main/tools/.venv/bin/python tools/audit_memory.py --counts 200 1000 10000
Results also go to tools/.cache/audit_memory/results.json (--json).  Exit status 0 when the
target holds (largest count within 1.2x of the smallest), 1 when it does not, 2 on an error.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parent
REPO_DIR = TOOLS_DIR.parent
FIXTURE = REPO_DIR / "Fixtures" / "audit"
CACHE = TOOLS_DIR / ".cache" / "audit_memory"
TARGET = 1.2  # largest count's peak RSS / smallest count's, at most

sys.path.insert(0, str(TOOLS_DIR))
from bench import binary_version, vm_hwm  # noqa: E402  (standard library only at import)


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def make_dataset(root: Path, count: int) -> tuple[Path, Path]:
    """A folder of symbolic links to the fixture's images and a groups CSV of `count` distinct rows."""
    with open(FIXTURE / "groups.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    images = root / "images"
    images.mkdir(parents=True)
    copies = (count + len(rows) - 1) // len(rows)
    for n in range(copies):
        os.symlink(FIXTURE / "images", images / f"copy{n:04d}")
    groups = root / "groups.csv"
    with open(groups, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["file", "group", "label"])
        for i in range(count):
            row = rows[i % len(rows)]
            out.writerow([f"copy{i // len(rows):04d}/{row['file']}", row["group"], row["label"]])
    return images, groups


def audit(binary: Path, images: Path, groups: Path, out: Path, batch_size: int) -> dict:
    cmd = [str(binary), "audit", str(FIXTURE / "shortcut.onnx"), "--images", str(images), "--groups", str(groups),
           "--layer", "features.2", "--mask", str(FIXTURE / "mask.png"), "--preprocess", "half",
           "--counterfactual", "mean", "--spray", "--batch-size", str(batch_size), "--out", str(out)]
    sampled = [0]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done = threading.Event()

    def sample():
        while not done.is_set():
            value = vm_hwm(proc.pid)
            if value:
                sampled[0] = max(sampled[0], value)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # communicate() drains the pipes; wait4 then reaps the child and returns its own rusage.
    stdout_chunks, stderr_chunks = [], []
    readers = [threading.Thread(target=lambda s=s, acc=acc: acc.append(s.read()), daemon=True)
               for s, acc in ((proc.stdout, stdout_chunks), (proc.stderr, stderr_chunks))]
    for r in readers:
        r.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    for r in readers:
        r.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    maxrss = usage.ru_maxrss * 1024
    own = vm_hwm() or 0
    peak = maxrss if maxrss > own else sampled[0]
    stderr = b"".join(stderr_chunks).decode(errors="replace")
    stdout = b"".join(stdout_chunks).decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"audit failed ({proc.returncode}): {stderr.strip()[-2000:]}")
    return {
        "peak_rss_bytes": peak, "peak_rss_mib": peak / 2**20, "rss_source": "ru_maxrss" if maxrss > own else "sampled VmHWM",
        "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "user_s": usage.ru_utime, "system_s": usage.ru_stime,
        "last_line": stdout.strip().splitlines()[-1] if stdout.strip() else "",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", type=int, nargs="+", default=[1000, 100000], help="numbers of images (default: 1000 100000)")
    ap.add_argument("--binary", type=Path, default=REPO_DIR / ".build" / "release" / "shortcut-detect")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--scratch", type=Path, help="where the datasets and reports go (default: a temporary folder, removed)")
    ap.add_argument("--json", type=Path, default=CACHE / "results.json")
    a = ap.parse_args()
    if not a.binary.exists():
        print(f"{a.binary} is missing; build it: swift build -c release --product shortcut-detect", file=sys.stderr)
        return 2
    scratch = a.scratch or Path(tempfile.mkdtemp(prefix="audit-memory-"))
    machine = {"cpu_model": cpu_model(), "cpus": len(os.sched_getaffinity(0)), "platform": platform.platform()}
    print(f"CPU: {machine['cpu_model']} ({machine['cpus']} CPUs available); {binary_version(a.binary)} ({a.binary})", flush=True)
    results = []
    try:
        for count in a.counts:
            root = scratch / f"n{count}"
            if root.exists():
                shutil.rmtree(root)
            images, groups = make_dataset(root, count)
            record = {"images": count, **audit(a.binary, images, groups, root / "report", a.batch_size)}
            results.append(record)
            print(f"{count:>8} images: peak RSS {record['peak_rss_mib']:.1f} MiB ({record['rss_source']}), "
                  f"wall {record['wall_s']:.1f} s, processor {record['cpu_s']:.1f} s "
                  f"({1e3 * record['wall_s'] / count:.2f} ms/image wall)", flush=True)
            shutil.rmtree(root)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 2
    finally:
        if a.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)
    smallest = min(results, key=lambda r: r["images"])
    largest = max(results, key=lambda r: r["images"])
    ratio = largest["peak_rss_bytes"] / smallest["peak_rss_bytes"]
    held = ratio <= TARGET
    print(f"peak RSS {largest['images']} / {smallest['images']} images: {ratio:.3f} (target <= {TARGET}): {'holds' if held else 'MISSED'}")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(), "machine": machine,
        "binary": str(a.binary), "version": binary_version(a.binary), "python": platform.python_version(),
        "batch_size": a.batch_size, "results": results, "ratio": ratio, "target": TARGET, "held": held,
    }, indent=2) + "\n")
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
