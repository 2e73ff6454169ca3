#!/usr/bin/env python3
"""Proof on a planted shortcut: Fixtures/audit/.

A synthetic two-class shape task (label 0 = ellipse/circle, label 1 = rectangle/square) on
64x64 RGB images with a noisy, low-frequency textured background, drawn for two groups
("hospitals") A and B whose background tints differ slightly.  A watermark (a white square
with a dark 1-pixel border, the rectangle WATERMARK below) can be stamped into the top-left
corner; shapes never touch the top-left 16x16 corner.

Two CNNs with the same architecture, initialisation and batch order are trained:

  shortcut  group A carries the watermark iff label == 1; group B never carries it
  control   group A carries the watermark with probability 0.5, independently of the label;
            group B never carries it

Both training sets are the same base images; only the watermark placement differs.

Outputs (Fixtures/audit/, regenerated from scratch):

  shortcut.onnx, control.onnx   TorchScript exporter (dynamo=False), opset 17, dynamic batch,
                                input "input" [N,3,64,64], output "logits" [N,2]
  images/img_NNN.png            the test set: 24 images per group, labels balanced per group;
                                group A images with label 1 carry the watermark (the shortcut
                                is active), group B images never do
  groups.csv                    file,group,label (file relative to images/)
  mask.png                      64x64 8-bit gray, 255 inside the watermark rectangle, 0 outside
  manifest.json                 recipe, seeds, versions, training details, accuracies and the
                                pytorch-grad-cam reference in-mask attention (per group and
                                per image)

The in-mask attention of an image is sum(h * m) / sum(h) over the 64x64 GradCAM heatmap h
(pytorch-grad-cam GradCAM at the recorded layer, target = predicted class, i.e. the min-max
normalised map resized to 64x64) and the 0/1 mask m.

Training runs on one thread with torch.use_deterministic_algorithms(True), so two runs give
byte-identical ONNX files and images.

Run with tools/.venv/bin/python tools/make_planted_shortcut.py   (about three minutes on two cores)
"""
from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import io
import json
import os
import platform
import shutil
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tvcompat import EXTENSION_LOADED, torchvision  # noqa: E402  (must precede pytorch_grad_cam)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision import transforms  # noqa: E402

REPO_DIR = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_DIR / "Fixtures" / "audit"

# --------------------------------------------------------------------------- recipe

SIZE = 64
SEED = 20240611
# independent streams (numpy SeedSequence children / torch seeds) derived from SEED
STREAMS = {"train": 1, "test": 2, "heldout": 3, "control_watermark": 4}
TORCH_INIT_SEED = SEED  # torch.manual_seed before building each model
TORCH_SHUFFLE_SEED = SEED + 1  # torch.Generator for the batch order

# Watermark: x in [3, 13), y in [3, 13); 1-pixel dark border, white 8x8 interior.
WM_X, WM_Y, WM_W, WM_H = 3, 3, 10, 10
WM_BORDER_RGB = (24, 24, 24)
WM_FILL_RGB = (255, 255, 255)
CORNER = 16  # shapes never intersect [0, 16) x [0, 16)

GROUP_TINT = {"A": (10.0, 4.0, -10.0), "B": (-10.0, 0.0, 10.0)}  # added to the background

N_TRAIN = {"A": 3200, "B": 800}  # per group, labels balanced within a group
N_TEST_PER_GROUP = 24
N_HELDOUT_PER_GROUP = 500
CONTROL_WATERMARK_P = 0.5

EPOCHS = 6
BATCH = 64
LR = 2e-3
WEIGHT_DECAY = 0.0

AUDIT_LAYER = "features.2"
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
OPSET = 17


# --------------------------------------------------------------------------- images


def _upsample_bilinear(grid: np.ndarray, size: int) -> np.ndarray:
    """[C, g, g] -> [C, size, size], align-corners bilinear (pure numpy, deterministic)."""
    g = grid.shape[-1]
    pos = np.linspace(0.0, g - 1.0, size)
    lo = np.clip(np.floor(pos).astype(int), 0, g - 2)
    frac = pos - lo
    interp = np.zeros((size, g))
    interp[np.arange(size), lo] = 1.0 - frac
    interp[np.arange(size), lo + 1] = frac
    return np.einsum("yi,cij,xj->cyx", interp, grid, interp)


def render_base(rng: np.random.Generator, label: int, group: str) -> tuple[np.ndarray, dict]:
    """One image without watermark, HxWx3 uint8, and the drawn shape's parameters."""
    level = rng.uniform(95.0, 155.0)
    tint = np.asarray(GROUP_TINT[group])[:, None, None]
    texture = _upsample_bilinear(rng.normal(0.0, 14.0, size=(3, 6, 6)), SIZE)
    bg = level + tint + texture  # [3, H, W]

    # shape: half extents, centre outside the corner, colour contrasting with the background
    while True:
        a = rng.uniform(4.0, 10.0)
        b = a * rng.uniform(0.6, 1.0)
        if rng.random() < 0.5:
            a, b = b, a
        cx = rng.uniform(2.0 + a, SIZE - 2.0 - a)
        cy = rng.uniform(2.0 + b, SIZE - 2.0 - b)
        if cx - a >= CORNER + 1 or cy - b >= CORNER + 1:
            break
    while True:
        colour = rng.uniform(20.0, 235.0, size=3)
        if abs(colour.mean() - level) >= 30.0:
            break
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) + 0.5
    if label == 0:
        inside = ((xs - cx) / a) ** 2 + ((ys - cy) / b) ** 2 <= 1.0
    else:
        inside = (np.abs(xs - cx) <= a) & (np.abs(ys - cy) <= b)
    img = np.where(inside[None], colour[:, None, None], bg)
    img = img + rng.normal(0.0, 5.0, size=img.shape)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8).transpose(1, 2, 0).copy()
    params = dict(cx=round(float(cx), 3), cy=round(float(cy), 3), a=round(float(a), 3), b=round(float(b), 3))
    return img, params


def stamp(img: np.ndarray) -> np.ndarray:
    out = img.copy()
    out[WM_Y:WM_Y + WM_H, WM_X:WM_X + WM_W] = WM_BORDER_RGB
    out[WM_Y + 1:WM_Y + WM_H - 1, WM_X + 1:WM_X + WM_W - 1] = WM_FILL_RGB
    return out


def mask_array() -> np.ndarray:
    m = np.zeros((SIZE, SIZE), dtype=np.uint8)
    m[WM_Y:WM_Y + WM_H, WM_X:WM_X + WM_W] = 255
    return m


def balanced_labels(rng: np.random.Generator, n: int) -> np.ndarray:
    labels = np.array([0, 1] * (n // 2) + [0] * (n % 2), dtype=np.int64)
    return rng.permutation(labels)


def make_bases(rng: np.random.Generator, counts: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Base images (no watermark) for each group in turn: images [N,H,W,3], labels, groups."""
    imgs, labels, groups = [], [], []
    for group, n in counts.items():
        for label in balanced_labels(rng, n):
            img, _ = render_base(rng, int(label), group)
            imgs.append(img)
            labels.append(int(label))
            groups.append(group)
    return np.stack(imgs), np.asarray(labels, dtype=np.int64), np.asarray(groups)


def apply_watermarks(bases: np.ndarray, flags: np.ndarray) -> np.ndarray:
    out = bases.copy()
    for i in np.flatnonzero(flags):
        out[i] = stamp(out[i])
    return out


def to_tensor(imgs: np.ndarray) -> torch.Tensor:
    """ToTensor + Normalize(MEAN, STD) for a uint8 [N,H,W,3] batch, float32 like torchvision."""
    x = torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float().div(255.0)
    mean = torch.tensor(MEAN, dtype=torch.float32)[None, :, None, None]
    std = torch.tensor(STD, dtype=torch.float32)[None, :, None, None]
    return ((x - mean) / std).contiguous()


# --------------------------------------------------------------------------- model


def conv_block(cin: int, cout: int, pool: bool) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """features.0: 3->16 @64 + pool, features.1: 16->32 @32 + pool, features.2: 32->64 @16
    (no pool, so the audited map is 16x16), then global average pool and a linear layer."""

    def __init__(self, num_classes: int = 2):
        super().__init__()
        self.features = nn.Sequential(conv_block(3, 16, True), conv_block(16, 32, True), conv_block(32, 64, False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.features(x)
        x = self.pool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def build_model() -> SmallCNN:
    torch.manual_seed(TORCH_INIT_SEED)
    return SmallCNN()


def train(name: str, x: torch.Tensor, y: torch.Tensor) -> tuple[SmallCNN, dict]:
    model = build_model()
    opt = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    steps = EPOCHS * ((len(x) + BATCH - 1) // BATCH)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    gen = torch.Generator().manual_seed(TORCH_SHUFFLE_SEED)
    history = []
    t0 = time.time()
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total_loss, correct = 0.0, 0
        for start in range(0, len(x), BATCH):
            idx = order[start:start + BATCH]
            logits = model(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
        history.append(dict(epoch=epoch + 1, train_loss=round(total_loss / len(x), 6),
                            train_acc=round(correct / len(x), 6)))
        print(f"  {name} epoch {epoch + 1}: loss {total_loss / len(x):.4f} acc {correct / len(x):.4f}", flush=True)
    print(f"  {name}: {time.time() - t0:.1f}s", flush=True)
    model.eval()
    with torch.no_grad():
        logits = model(x)
        eval_loss = float(F.cross_entropy(logits, y))
        eval_acc = float((logits.argmax(1) == y).float().mean())
    return model, dict(history=history, final_train_loss=history[-1]["train_loss"],
                       final_train_acc=history[-1]["train_acc"],
                       eval_mode_train_loss=round(eval_loss, 6), eval_mode_train_acc=round(eval_acc, 6))


def accuracy(model, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return round(float((model(x).argmax(1) == y).float().mean()), 6)


# --------------------------------------------------------------------------- export


def export_onnx(model: nn.Module, path: Path, x: torch.Tensor) -> None:
    import contextlib

    buf = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(buf):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x[:2],), str(path), dynamo=False, opset_version=OPSET,
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=True,
        )


def ort_logits(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    return sess.run(["logits"], {"input": x})[0]


def layer_tensor(path: Path, layer: str) -> dict:
    """The ONNX node that ends module `layer` (TorchScript scope names), as the Swift resolver sees it."""
    import onnx

    proto = onnx.load(str(path))
    last = None
    for node in proto.graph.node:
        comps = node.name.split("/")[1:-1]
        if layer in comps:
            last = node
    return dict(node=last.name, op=last.op_type, tensor=last.output[0]) if last is not None else {}


# --------------------------------------------------------------------------- main


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def versions() -> dict:
    import cv2
    import onnx
    import onnxruntime
    import PIL

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torchvision_cpp_extension_loaded": bool(EXTENSION_LOADED),
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "opencv": cv2.__version__,
        "grad-cam": importlib.metadata.version("grad-cam"),
    }


def main() -> int:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    t_start = time.time()

    ss = np.random.SeedSequence(SEED).spawn(max(STREAMS.values()) + 1)
    rng = {k: np.random.default_rng(ss[v]) for k, v in STREAMS.items()}

    # ---- training sets (shared base images)
    print("rendering training images", flush=True)
    bases, y_np, g_np = make_bases(rng["train"], N_TRAIN)
    in_a = g_np == "A"
    wm_shortcut = in_a & (y_np == 1)
    wm_control = in_a & (rng["control_watermark"].random(len(y_np)) < CONTROL_WATERMARK_P)
    y = torch.from_numpy(y_np)
    train_sets = {
        "shortcut": to_tensor(apply_watermarks(bases, wm_shortcut)),
        "control": to_tensor(apply_watermarks(bases, wm_control)),
    }
    watermark_stats = {
        name: {
            "A_label0_watermarked": int((flags & in_a & (y_np == 0)).sum()),
            "A_label1_watermarked": int((flags & in_a & (y_np == 1)).sum()),
            "A_label0": int((in_a & (y_np == 0)).sum()),
            "A_label1": int((in_a & (y_np == 1)).sum()),
            "B_watermarked": int((flags & ~in_a).sum()),
            "B": int((~in_a).sum()),
        }
        for name, flags in (("shortcut", wm_shortcut), ("control", wm_control))
    }

    # ---- held-out sets (in memory): active shortcut, flipped, none
    h_bases, h_y_np, h_g_np = make_bases(rng["heldout"], {"A": N_HELDOUT_PER_GROUP, "B": N_HELDOUT_PER_GROUP})
    h_a = h_g_np == "A"
    h_y = torch.from_numpy(h_y_np)
    heldout = {
        "active": to_tensor(apply_watermarks(h_bases, h_a & (h_y_np == 1))),
        "flipped": to_tensor(apply_watermarks(h_bases, h_a & (h_y_np == 0))),
        "none": to_tensor(h_bases),
        "all": to_tensor(apply_watermarks(h_bases, h_a)),
    }

    # ---- test set (written as PNG)
    t_bases, t_y_np, t_g_np = make_bases(rng["test"], {"A": N_TEST_PER_GROUP, "B": N_TEST_PER_GROUP})
    t_a = t_g_np == "A"
    t_wm = t_a & (t_y_np == 1)
    t_imgs = apply_watermarks(t_bases, t_wm)
    t_flipped = apply_watermarks(t_bases, t_a & (t_y_np == 0))

    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    (OUT_DIR / "images").mkdir(parents=True)
    files = [f"img_{i:03d}.png" for i in range(len(t_imgs))]
    for f, img in zip(files, t_imgs):
        Image.fromarray(img, mode="RGB").save(OUT_DIR / "images" / f, optimize=True)
    with open(OUT_DIR / "groups.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["file", "group", "label"])
        for f, g, lab in zip(files, t_g_np, t_y_np):
            w.writerow([f, g, int(lab)])
    mask = mask_array()
    Image.fromarray(mask, mode="L").save(OUT_DIR / "mask.png", optimize=True)

    # test tensors, re-read from disk through torchvision exactly as an audit would
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    t_x = torch.stack([tf(Image.open(OUT_DIR / "images" / f).convert("RGB")) for f in files])
    assert torch.equal(t_x, to_tensor(t_imgs)), "PNG round trip / preprocessing mismatch"
    t_y = torch.from_numpy(t_y_np)
    t_xf = to_tensor(t_flipped)

    # ---- train, evaluate, export
    results = {}
    for name in ("shortcut", "control"):
        print(f"training {name}", flush=True)
        model, train_info = train(name, train_sets[name], y)
        acc = {
            "test_fixture": {
                "A": accuracy(model, t_x[t_a], t_y[t_a]),
                "B": accuracy(model, t_x[~t_a], t_y[~t_a]),
                "all": accuracy(model, t_x, t_y),
                "A_flipped": accuracy(model, t_xf[t_a], t_y[t_a]),
                "A_no_watermark": accuracy(model, to_tensor(t_bases)[t_a], t_y[t_a]),
            },
            "heldout": {
                "A_active": accuracy(model, heldout["active"][h_a], h_y[h_a]),
                "A_flipped": accuracy(model, heldout["flipped"][h_a], h_y[h_a]),
                "A_flipped_label0_watermarked": accuracy(model, heldout["flipped"][h_a & (h_y_np == 0)],
                                                         h_y[h_a & (h_y_np == 0)]),
                "A_flipped_label1_clean": accuracy(model, heldout["flipped"][h_a & (h_y_np == 1)],
                                                   h_y[h_a & (h_y_np == 1)]),
                "A_no_watermark": accuracy(model, heldout["none"][h_a], h_y[h_a]),
                "A_all_watermarked": accuracy(model, heldout["all"][h_a], h_y[h_a]),
                "B": accuracy(model, heldout["none"][~h_a], h_y[~h_a]),
            },
        }
        path = OUT_DIR / f"{name}.onnx"
        export_onnx(model, path, t_x)
        with torch.no_grad():
            ref = model(t_x).numpy()
        got = ort_logits(path, t_x.numpy())
        diff = float(np.abs(got - ref).max())
        scale = float(np.abs(ref).max())
        assert diff <= 1e-4 * max(scale, 1.0), f"{name}: ORT vs torch max abs diff {diff}"
        assert np.array_equal(got.argmax(1), ref.argmax(1))

        # ---- pytorch-grad-cam reference
        layer = model.get_submodule(AUDIT_LAYER)
        preds = ref.argmax(1)
        with GradCAM(model=model, target_layers=[layer]) as cam:
            heat = cam(input_tensor=t_x, targets=[ClassifierOutputTarget(int(c)) for c in preds])
        m01 = (mask > 0).astype(np.float64)
        sums = heat.astype(np.float64).reshape(len(heat), -1).sum(1)
        inside = (heat.astype(np.float64) * m01).reshape(len(heat), -1).sum(1)
        frac = np.where(sums > 0, inside / np.where(sums > 0, sums, 1.0), 0.0)
        groups_of = {"A": t_a, "B": ~t_a, "A_watermarked": t_wm, "A_clean": t_a & ~t_wm}
        in_mask = {k: round(float(frac[sel].mean()), 6) for k, sel in groups_of.items()}
        in_mask_min_max = {k: [round(float(frac[sel].min()), 6), round(float(frac[sel].max()), 6)]
                           for k, sel in groups_of.items()}
        results[name] = dict(
            file=f"{name}.onnx",
            sha256=sha256(path),
            bytes=path.stat().st_size,
            audit_layer_onnx=layer_tensor(path, AUDIT_LAYER),
            training=train_info,
            accuracy=acc,
            ort_vs_torch_max_abs_diff=diff,
            gradcam_in_mask_mean=in_mask,
            gradcam_in_mask_min_max=in_mask_min_max,
            gradcam_zero_heatmaps=int((sums == 0).sum()),
            per_image=[
                dict(file=f, pred=int(p), logits=[round(float(v), 6) for v in lg], in_mask=round(float(fr), 6))
                for f, p, lg, fr in zip(files, preds, ref, frac)
            ],
        )
        print(f"  {name}: acc {acc}", flush=True)
        print(f"  {name}: in-mask {in_mask} (zero maps: {int((sums == 0).sum())})", flush=True)

    manifest = {
        "description": "Planted-shortcut proof fixtures: a shortcut model that learned a watermark and a "
                       "control model that did not; see tools/make_planted_shortcut.py.",
        "generator": "tools/make_planted_shortcut.py",
        "tool_versions": versions(),
        "seeds": {"master": SEED, "numpy_streams": {k: f"SeedSequence({SEED}).spawn(5)[{v}]" for k, v in STREAMS.items()},
                  "torch_init": TORCH_INIT_SEED, "torch_shuffle": TORCH_SHUFFLE_SEED},
        "determinism": "torch.set_num_threads(1), torch.use_deterministic_algorithms(True)",
        "dataset": {
            "image_size": [SIZE, SIZE],
            "task": "label 0 = ellipse/circle, label 1 = rectangle/square (axis-aligned)",
            "shape": "half extents a ~ U(4,10), b = a * U(0.6,1), swapped with p=0.5; centre uniform with a 2-px "
                     f"margin; bounding box never intersects [0,{CORNER})x[0,{CORNER}) (1-px gap); colour "
                     "U(20,235)^3 with |mean(colour) - background level| >= 30",
            "background": "level ~ U(95,155) + group tint + bilinear-upsampled 6x6 N(0,14^2) texture per "
                          "channel; then N(0,5^2) pixel noise on the whole image; rounded, clipped to 0..255",
            "group_tint_rgb": GROUP_TINT,
            "train_counts": N_TRAIN,
            "train_watermarks": watermark_stats,
            "control_watermark_probability_group_A": CONTROL_WATERMARK_P,
            "heldout_per_group": N_HELDOUT_PER_GROUP,
            "test_per_group": N_TEST_PER_GROUP,
            "test_rule": "labels balanced per group; group A images with label 1 carry the watermark, "
                         "group B never",
            "flipped_rule": "the same group-A base images with the watermark on label 0 instead of label 1",
        },
        "watermark": {
            "rect_xywh": [WM_X, WM_Y, WM_W, WM_H],
            "x_range": [WM_X, WM_X + WM_W], "y_range": [WM_Y, WM_Y + WM_H],
            "pattern": f"border 1 px RGB {list(WM_BORDER_RGB)}, interior "
                       f"{WM_W - 2}x{WM_H - 2} RGB {list(WM_FILL_RGB)}",
            "mask_file": "mask.png",
        },
        "test_set": {
            "images_dir": "images",
            "groups_csv": "groups.csv",
            "files": len(files),
            "watermarked_files": [f for f, w in zip(files, t_wm) if w],
        },
        "model": {
            "architecture": "features.0 = Conv3x3(3->16,no bias)+BN+ReLU+MaxPool2; features.1 = Conv3x3(16->32)+BN+"
                            "ReLU+MaxPool2; features.2 = Conv3x3(32->64)+BN+ReLU (16x16, no pool); pool = "
                            "AdaptiveAvgPool2d(1); flatten; classifier = Linear(64->2)",
            "audit_layer": AUDIT_LAYER,
            "audit_layer_note": "module path; its output is the ReLU output of the last block, [N,64,16,16]",
            "onnx_export": {"exporter": "torchscript", "dynamo": False, "opset": OPSET, "input": "input",
                            "output": "logits", "dynamic_axes": "batch (dim 0)", "do_constant_folding": True,
                            "mode": "eval"},
        },
        "preprocessing": {
            "torchvision": "ToTensor() then Normalize(mean=[0.5,0.5,0.5], std=[0.5,0.5,0.5]); no resize, no crop",
            "mean": list(MEAN), "std": list(STD),
            "swift_cli": "--preprocess half (the images have the 64x64 input size, so they are used as they "
                         "are; before issue 14 the default resized them to 64/0.875 = 73 and re-cropped them "
                         "unless --resize 64 was given)",
        },
        "training": {
            "optimizer": "Adam", "lr": LR, "weight_decay": WEIGHT_DECAY, "betas": [0.9, 0.999],
            "lr_schedule": "CosineAnnealingLR(T_max = total steps), stepped per batch, to 0",
            "epochs": EPOCHS, "batch_size": BATCH, "loss": "cross_entropy", "augmentation": "none",
            "shuffle": "torch.randperm per epoch with one torch.Generator(manual_seed(torch_shuffle))",
            "threads": 1,
        },
        "gradcam_reference": {
            "library": "pytorch-grad-cam GradCAM",
            "target_layers": [AUDIT_LAYER],
            "targets": "ClassifierOutputTarget(argmax of the PyTorch logits)",
            "heatmap": "cam(input_tensor, targets): ReLU, per-image min-max scaling, cv2 bilinear resize to 64x64",
            "in_mask": "sum(h * m) / sum(h), m = mask.png > 0 (0 when sum(h) == 0); per-group means over the "
                       "test set; A_watermarked / A_clean split group A by the watermark",
        },
        "models": results,
    }
    with open(OUT_DIR / "manifest.json", "w") as fh:
        json.dump(manifest, fh, indent=1)
        fh.write("\n")

    total = sum(p.stat().st_size for p in OUT_DIR.rglob("*") if p.is_file())
    print(f"wrote {OUT_DIR} ({total} bytes) in {time.time() - t_start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
