#!/usr/bin/env python3
"""Golden CAM heatmaps and gradients from pytorch-grad-cam and PyTorch autograd.

For the tiny fixture models resnet_basic, vgg, vit, swin (torchvision) and deit (timm)
this rebuilds the PyTorch model exactly as tools/export_fixtures.py does (same
builder, seed and parameter randomisation; eval mode), checks its logits on the
shared input Fixtures/models/inputs/<arch>.npy against the onnxruntime logits
golden of every export of that architecture (max abs diff <= 1e-4 * max |logit|,
else abort), and writes to Fixtures/cam/<arch>/ (all float32 .npy, batch N = 2):

  <method>.npy            heatmap of cam(input_tensor=x, targets=targets), [N, H, W]
  <method>_raw.npy        cam.get_cam_image(x, layer, targets, A, G, eigen_smooth=False),
                          [N, h, w]: the per-layer map before ReLU / normalisation / resize
  gradcam_eigensmooth.npy (+ _raw)   GradCAM with eigen_smooth=True
  gradcam_augsmooth.npy   GradCAM with aug_smooth=True (ttach: hflip x multiply 0.9/1/1.1)
  gradcam_twolayers.npy   GradCAM with target_layers = [previous layer, layer]
  guided_backprop.npy     GuidedBackpropReLUModel per sample, stacked, [N, H, W, 3]
  grad_input.npy          d(sum_i logit[i, c_i]) / d input, [N, 3, H, W]
  grad_input_softmax.npy  d(sum_i softmax(logits)[i, c_i]) / d input
  grad_layer.npy          d(sum_i logit[i, c_i]) / d (target layer output)
  activation_layer.npy    target layer output (ViTs: raw tokens [N, T, C])

with targets = [ClassifierOutputTarget(c_i)], c_i = argmax of the PyTorch logits
of sample i.  The reshape transform for ViTs is pytorch-grad-cam's tutorial one:
tokens[:, prefix:, :] -> [N, h, w, C] -> transpose(2, 3).transpose(1, 2); for Swin's
channels-last [N, H, W, C] stages the same transposes (channels_last_reshape).

A and G for the raw maps are the cam object's own activations/gradients
(ActivationsAndGradients, i.e. after the reshape transform), captured at the
point where BaseCAM.compute_cam_per_layer reads them.  The script checks that
relu -> scale_cam_image -> aggregate_multi_layers of each raw map reproduces
the heatmap exactly, and that the cam's gradients equal the autograd ones.

Fixtures/cam/ is regenerated from scratch; Fixtures/cam/manifest.json indexes it.
An output whose bytes equal an earlier output of the same architecture is not
written twice (size budget); its manifest entry names the earlier file and
models[].aliases lists these.
Fixtures/models is only read, never written.

Run with tools/.venv/bin/python tools/export_cam_goldens.py
"""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import io
import json
import os
import platform
import shutil
import sys
import traceback
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
    GuidedBackpropReLUModel,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.utils.image import scale_cam_image  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

import export_fixtures as ef  # noqa: E402  (builders, ARCHS; main() is not run on import)
import fixturelib as fl  # noqa: E402

FIXTURES_DIR = fl.REPO_DIR / "Fixtures"
MODELS_DIR = FIXTURES_DIR / "models"
OUT_DIR = FIXTURES_DIR / "cam"
LOGIT_RTOL = 1e-4  # torch vs ORT logits, relative to the largest |logit|

# (manifest name, file stem, class)
METHODS = [
    ("gradcam", "gradcam", GradCAM),
    ("hirescam", "hirescam", HiResCAM),
    ("gradcam++", "gradcampp", GradCAMPlusPlus),
    ("xgradcam", "xgradcam", XGradCAM),
    ("layercam", "layercam", LayerCAM),
    ("eigencam", "eigencam", EigenCAM),
    ("eigengradcam", "eigengradcam", EigenGradCAM),
    ("gradcam-elementwise", "gradcam-elementwise", GradCAMElementWise),
    ("scorecam", "scorecam", ScoreCAM),
]
# raw maps that are an SVD projection (sign is LAPACK's choice)
SVD_METHODS = {"eigencam", "eigengradcam"}


def _vgg_relus(model) -> list:
    return [f"features.{i}" for i, m in enumerate(model.features) if isinstance(m, nn.ReLU)]


def _vit_grid(model):
    n = model.image_size // model.patch_size
    return 1, (n, n)


def _deit_grid(model):
    return int(model.num_prefix_tokens), tuple(int(v) for v in model.patch_embed.grid_size)


# arch -> (target layer, two-layer list, ViT geometry or None); each gets the built model
CAM_ARCHS = {
    "resnet_basic": dict(layer=lambda m: "layer4", two=lambda m: ["layer3", "layer4"], vit=None),
    "vgg": dict(layer=ef._vgg_last_relu, two=lambda m: _vgg_relus(m)[-2:], vit=None),
    "vit": dict(
        layer=lambda m: "encoder.layers.encoder_layer_1.ln_1",
        two=lambda m: ["encoder.layers.encoder_layer_0.ln_1", "encoder.layers.encoder_layer_1.ln_1"],
        vit=_vit_grid,
    ),
    "deit": dict(layer=lambda m: "blocks.1.norm1", two=lambda m: ["blocks.0.norm1", "blocks.1.norm1"],
                 vit=_deit_grid),
    # torchvision Swin keeps its stages channels-last, [N, H, W, C]. The layer is the final norm's
    # output, what the head pools: at the last stage's output, the norm's input, sum_k G_k A_k is
    # zero at every position (a LayerNorm's output does not change when its input is shifted or
    # scaled), so HiResCAM's map there is rounding noise.
    "swin": dict(layer=lambda m: "norm", two=lambda m: ["features.1", "norm"], vit=None, channels_last=True),
}


# --------------------------------------------------------------------------- helpers


def build_model(arch):
    """Same sequence as export_fixtures.main(): seed, build, eval, randomize."""
    torch.manual_seed(arch.seed)
    model = arch.build().eval()
    fl.randomize(model, torch.Generator().manual_seed(arch.seed + 1000))
    return model


def make_reshape_transform(prefix: int, grid):
    h, w = grid

    def reshape_transform(tensor):
        result = tensor[:, prefix:, :].reshape(tensor.size(0), h, w, tensor.size(2))
        return result.transpose(2, 3).transpose(1, 2)

    return reshape_transform


def channels_last_reshape(tensor):
    """pytorch-grad-cam's Swin transform (usage_examples/swinT_example.py: reshape to [N, h, w, C],
    then transpose(2, 3).transpose(1, 2)) with h and w read from the tensor: torchvision's Swin
    stages are already [N, H, W, C] (the example's [N, h*w, C] is timm's older token layout)."""
    result = tensor.reshape(tensor.size(0), tensor.size(1), tensor.size(2), tensor.size(3))
    return result.transpose(2, 3).transpose(1, 2)


def tool_versions() -> dict:
    import cv2
    import scipy
    import timm

    def dist(name):
        return importlib.metadata.version(name)

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "grad-cam": dist("grad-cam"),
        "ttach": dist("ttach"),
        "numpy": np.__version__,
        "opencv-python-headless": dist("opencv-python-headless"),
        "cv2": cv2.__version__,
        "scipy": scipy.__version__,
    }


class Writer:
    """Saves float32 .npy files under Fixtures/cam/<arch>/ and tracks sizes.

    A file whose bytes equal an already written file of the same architecture is
    not written again: the manifest path points at the existing file and the
    alias is listed in ``aliases``.  (On resnet_basic the spatially constant
    layer4 gradient makes GradCAM == HiResCAM and EigenGradCAM == GradCAM with
    eigen_smooth; on post-ReLU layers LayerCAM == GradCAMElementWise.)
    """

    def __init__(self, arch: str):
        self.arch = arch
        self.dir = OUT_DIR / arch
        self.dir.mkdir(parents=True, exist_ok=True)
        self.files: dict = {}
        self.by_bytes: dict = {}
        self.aliases: dict = {}

    def save(self, stem: str, array) -> str:
        arr = np.ascontiguousarray(np.asarray(array, dtype="<f4"))
        if not np.all(np.isfinite(arr)):
            raise RuntimeError(f"{self.arch}/{stem}: non-finite values")
        buf = io.BytesIO()
        np.lib.format.write_array(buf, arr, version=(1, 0), allow_pickle=False)
        data = buf.getvalue()
        rel = f"cam/{self.arch}/{stem}.npy"
        if rel in self.files or rel in self.aliases:
            raise RuntimeError(f"{rel} written twice")
        if data in self.by_bytes:
            self.aliases[rel] = self.by_bytes[data]
            return self.by_bytes[data]
        path = self.dir / f"{stem}.npy"
        fl.save_npy(path, arr)
        if path.read_bytes() != data:
            raise RuntimeError(f"{path}: unexpected .npy bytes")
        self.by_bytes[data] = rel
        self.files[rel] = len(data)
        return rel


def reproduce_from_raw(raws: list, target_size) -> np.ndarray:
    """BaseCAM.compute_cam_per_layer (after get_cam_image) + aggregate_multi_layers."""
    per_layer = []
    for raw in raws:
        cam = np.maximum(raw, 0)
        scaled = scale_cam_image(cam, target_size)
        per_layer.append(scaled[:, None, :])
    cat = np.maximum(np.concatenate(per_layer, axis=1), 0)
    return scale_cam_image(np.mean(cat, axis=1))


def svd_sign_hint(projection: np.ndarray) -> list:
    """Per sample: True if the entry of largest |value| is positive (sklearn svd_flip's convention)."""
    out = []
    for p in projection:
        flat = p.reshape(-1)
        out.append(bool(flat[int(np.argmax(np.abs(flat)))] > 0))
    return out


def run_cam(cls, model, layer_paths, reshape, x, targets, raw_eigen=(False,), **call_kw):
    """Run one pytorch-grad-cam method; return the heatmap, the raw maps and the captured A/G."""
    mods = dict(model.named_modules())
    target_layers = [mods[p] for p in layer_paths]
    cam = cls(model=model, target_layers=target_layers, reshape_transform=reshape)
    captured: list = []
    original = cam.compute_cam_per_layer

    def capturing(input_tensor, targets_, eigen_smooth):
        # exactly what compute_cam_per_layer reads (detach=True path).  No copy: for ViTs these are
        # strided views (the reshape transform's transposes) and numpy's reduction order, hence the
        # float32 result, depends on the memory layout.  Nothing writes to them afterwards.
        acts = [a.cpu().data.numpy() for a in cam.activations_and_grads.activations]
        grads = [g.cpu().data.numpy() for g in cam.activations_and_grads.gradients]
        captured.append((acts, grads))
        return original(input_tensor, targets_, eigen_smooth)

    cam.compute_cam_per_layer = capturing
    try:
        heatmap = cam(input_tensor=x, targets=targets, **call_kw)
        raws = {}
        if len(captured) == 1:
            acts, grads = captured[0]
            for eig in raw_eigen:
                raws[eig] = [
                    cam.get_cam_image(x, target_layers[i], targets, acts[i],
                                      grads[i] if i < len(grads) else None, eigen_smooth=eig)
                    for i in range(len(target_layers))
                ]
    finally:
        cam.activations_and_grads.release()
    return heatmap, raws, captured


def check_logits(arch_name: str, logits: np.ndarray) -> list:
    manifest = json.loads((MODELS_DIR / "manifest.json").read_text())
    names = []
    scale = float(np.abs(logits).max())
    for entry in manifest["models"]:
        if entry["arch"] != arch_name:
            continue
        names.append(entry["name"])
        if entry["input"] != f"inputs/{arch_name}.npy":
            raise RuntimeError(f"{entry['name']}: unexpected input {entry['input']}")
        (out,) = [o for o in entry["outputs"] if o["role"] == "output"]
        golden = np.load(MODELS_DIR / out["file"])
        diff = float(np.abs(golden - logits).max())
        if golden.shape != logits.shape or diff > LOGIT_RTOL * scale:
            raise RuntimeError(f"{arch_name}: torch logits differ from {entry['name']} ORT golden by {diff:.3g} "
                               f"(limit {LOGIT_RTOL} * {scale:.3g}); the rebuilt model is not the fixture model")
        print(f"  logits vs {entry['name']:20s} max abs diff {diff:.2e}")
    if not names:
        raise RuntimeError(f"{arch_name}: no fixtures in Fixtures/models/manifest.json")
    return names


# --------------------------------------------------------------------------- per architecture


def process_arch(arch) -> dict:
    cfg = CAM_ARCHS[arch.name]
    print(f"{arch.name}:")
    x = torch.from_numpy(np.load(MODELS_DIR / "inputs" / f"{arch.name}.npy"))
    regen = np.random.default_rng(arch.seed).standard_normal((2, 3, arch.hw, arch.hw)).astype(np.float32)
    if not np.array_equal(regen, x.numpy()):
        raise RuntimeError(f"{arch.name}: shared input differs from its seeded regeneration")
    n, _, height, width = x.shape
    target_size = (width, height)  # BaseCAM.get_target_width_height

    model = build_model(arch)
    layer = cfg["layer"](model)
    layers_two = cfg["two"](model)
    if layers_two[-1] != layer or len(layers_two) != 2:
        raise RuntimeError(f"{arch.name}: two-layer list {layers_two} must end with {layer}")
    prefix, grid, reshape = None, None, None
    if cfg["vit"] is not None:
        prefix, grid = cfg["vit"](model)
        if prefix != 1:
            raise RuntimeError(f"{arch.name}: expected 1 prefix token, model has {prefix}")
        reshape = make_reshape_transform(prefix, grid)
    if cfg.get("channels_last"):
        reshape = channels_last_reshape

    with torch.no_grad():
        logits = model(x).numpy()
    fixtures = check_logits(arch.name, logits)
    classes = [int(c) for c in np.argmax(logits, axis=1)]
    top2 = np.sort(logits, axis=1)[:, -2:]
    margins = [float(m) for m in (top2[:, 1] - top2[:, 0])]
    print(f"  classes {classes}  top-1 margins {[f'{m:.4g}' for m in margins]}")

    def fresh():
        return build_model(arch)

    def targets():
        return [ClassifierOutputTarget(c) for c in classes]

    w = Writer(arch.name)

    # ---- autograd references (raw module outputs, no reshape)
    model = fresh()
    store: dict = {}
    hook = dict(model.named_modules())[layer].register_forward_hook(lambda _m, _i, o: store.__setitem__("act", o))
    xg = x.clone().requires_grad_(True)
    out = model(xg)
    hook.remove()
    # torch.nn.MultiheadAttention (torchvision ViT) takes a fused fast path under no_grad in eval
    # mode, so the grad-enabled logits are close to, not bitwise equal to, the no_grad ones
    grad_path_diff = float(np.abs(out.detach().numpy() - logits).max())
    if grad_path_diff > LOGIT_RTOL * float(np.abs(logits).max()):
        raise RuntimeError(f"{arch.name}: grad-enabled logits differ by {grad_path_diff:.3g}")
    loss = sum([out[i, c] for i, c in enumerate(classes)])
    g_input, g_layer = torch.autograd.grad(loss, [xg, store["act"]])
    activation = store["act"].detach().numpy().copy()
    g_input, g_layer = g_input.numpy(), g_layer.numpy()

    model = fresh()
    xs = x.clone().requires_grad_(True)
    probs = torch.softmax(model(xs), dim=-1)
    (g_input_softmax,) = torch.autograd.grad(sum([probs[i, c] for i, c in enumerate(classes)]), [xs])
    g_input_softmax = g_input_softmax.numpy()

    gradients = {
        "input": w.save("grad_input", g_input),
        "input_softmax": w.save("grad_input_softmax", g_input_softmax),
        "layer": w.save("grad_layer", g_layer),
        "activation": w.save("activation_layer", activation),
    }

    # ---- the nine methods
    methods = {}
    for name, stem, cls in METHODS:
        heat, raws, captured = run_cam(cls, fresh(), [layer], reshape, x, targets())
        (raw,) = raws[False]
        acts, grads = captured[0]
        check_layer_tensors(arch.name, name, acts, grads, activation, g_layer, reshape, cls)
        if heat.shape != (n, height, width) or raw.shape[0] != n or raw.ndim != 3:
            raise RuntimeError(f"{arch.name}/{name}: shapes heat {heat.shape} raw {raw.shape}")
        again = reproduce_from_raw([raw], target_size)
        if not np.array_equal(again, heat):
            raise RuntimeError(f"{arch.name}/{name}: raw map does not reproduce the heatmap "
                               f"(max diff {np.abs(again - heat).max():.3g})")
        entry = {"class": cls.__name__, "heatmap": w.save(stem, heat), "raw": w.save(f"{stem}_raw", raw),
                 "raw_shape": list(raw.shape)}
        if name in SVD_METHODS:
            entry["svd_max_abs_entry_positive"] = svd_sign_hint(raw)
        methods[name] = entry
        print(f"  {name:20s} raw {tuple(raw.shape)}  raw range [{raw.min():.4g}, {raw.max():.4g}]")

    # ---- GradCAM variants
    variants = {}
    heat, raws, _ = run_cam(GradCAM, fresh(), [layer], reshape, x, targets(), raw_eigen=(True,),
                            eigen_smooth=True)
    (raw,) = raws[True]
    if not np.array_equal(reproduce_from_raw([raw], target_size), heat):
        raise RuntimeError(f"{arch.name}: eigen_smooth raw map does not reproduce the heatmap")
    variants["gradcam_eigensmooth"] = {
        "method": "gradcam", "eigen_smooth": True,
        "heatmap": w.save("gradcam_eigensmooth", heat),
        "raw": w.save("gradcam_eigensmooth_raw", raw),
        "svd_max_abs_entry_positive": svd_sign_hint(raw),
    }

    heat, _, captured = run_cam(GradCAM, fresh(), [layer], reshape, x, targets(), raw_eigen=(), aug_smooth=True)
    if len(captured) != 6:
        raise RuntimeError(f"{arch.name}: aug_smooth ran {len(captured)} forwards, expected 6")
    variants["gradcam_augsmooth"] = {
        "method": "gradcam", "aug_smooth": True,
        "tta": "ttach.Compose([HorizontalFlip(), Multiply(factors=[0.9, 1, 1.1])]): 6 passes in order "
               "(flip, factor) = (F,0.9) (F,1) (F,1.1) (T,0.9) (T,1) (T,1.1); each heatmap flipped back, "
               "then np.mean over the 6 (no re-normalisation)",
        "heatmap": w.save("gradcam_augsmooth", heat),
    }

    heat, raws, _ = run_cam(GradCAM, fresh(), layers_two, reshape, x, targets())
    if not np.array_equal(reproduce_from_raw(raws[False], target_size), heat):
        raise RuntimeError(f"{arch.name}: two-layer raw maps do not reproduce the heatmap")
    variants["gradcam_twolayers"] = {
        "method": "gradcam", "layers": layers_two,
        "raw_shapes": [list(r.shape) for r in raws[False]],
        "heatmap": w.save("gradcam_twolayers", heat),
    }

    # ---- guided backprop (replaces nn.ReLU modules in place: its own throwaway model)
    gb_model = fresh()
    gb = GuidedBackpropReLUModel(gb_model, device="cpu")
    gbs = [gb(x[i:i + 1].clone(), target_category=c) for i, c in enumerate(classes)]
    guided = np.stack(gbs).astype(np.float32)
    if guided.shape != (n, height, width, 3):
        raise RuntimeError(f"{arch.name}: guided backprop shape {guided.shape}")
    relus = sum(isinstance(m, nn.ReLU) for m in build_model(arch).modules())
    if relus == 0:
        # no nn.ReLU: guided backprop is the plain per-sample input gradient
        ref = g_input.transpose(0, 2, 3, 1)
        if not np.allclose(guided, ref, rtol=1e-4, atol=1e-6 * float(np.abs(ref).max())):
            raise RuntimeError(f"{arch.name}: guided backprop without ReLUs differs from grad_input")
    guided_rel = w.save("guided_backprop", guided)
    del gb, gb_model

    # the model used for everything above is untouched by guided backprop; re-check logits on a fresh one
    with torch.no_grad():
        if not np.array_equal(fresh()(x).numpy(), logits):
            raise RuntimeError(f"{arch.name}: rebuilt model gives different logits")

    total = sum(w.files.values())
    print(f"  wrote {len(w.files)} files, {total} bytes; identical outputs not rewritten: {w.aliases}")
    return {
        "arch": arch.name,
        "fixtures": fixtures,
        "input": f"models/inputs/{arch.name}.npy",
        "input_shape": list(x.shape),
        "layer": layer,
        "layers_two": layers_two,
        "prefix_tokens": prefix,
        "grid": list(grid) if grid is not None else None,
        "layer_layout": "nhwc" if cfg.get("channels_last") else ("tokens" if grid is not None else "nchw"),
        "reshape_transform": (None if reshape is None else
                              "t.reshape(N, H, W, C).transpose(2, 3).transpose(1, 2)" if grid is None else
                              f"t[:, {prefix}:, :].reshape(N, {grid[0]}, {grid[1]}, C).transpose(2, 3).transpose(1, 2)"),
        "classes": classes,
        "top1_margins": margins,
        "grad_vs_nograd_logits_max_abs_diff": grad_path_diff,
        "logits_torch": [[float(v) for v in row] for row in logits],
        "methods": methods,
        "variants": variants,
        "guided_backprop": guided_rel,
        "guided_backprop_layout": "[N, H, W, 3]: sample i = GuidedBackpropReLUModel(model)(x[i:i+1], "
                                  f"target_category=c_i), i.e. d logit[0, c_i] / d x_i with guided ReLUs, "
                                  f"transposed CHW -> HWC; no normalisation (model has {relus} nn.ReLU modules)",
        "gradients": gradients,
        "gradient_target": "sum_i logit[i, c_i] (input, layer); sum_i softmax(logits)[i, c_i] (input_softmax)",
        "files_bytes": total,
        "aliases": w.aliases,
    }


def check_layer_tensors(arch_name, method, acts, grads, activation, g_layer, reshape, cls):
    """The cam's A (and G, when it backpropagates) match the autograd references."""
    if len(acts) < 1:
        raise RuntimeError(f"{arch_name}/{method}: no activations captured")
    ref_a, ref_g = activation, g_layer
    if reshape is not None:
        ref_a = reshape(torch.from_numpy(activation)).numpy()
        ref_g = reshape(torch.from_numpy(g_layer)).numpy()
    if not np.array_equal(acts[0], ref_a):
        raise RuntimeError(f"{arch_name}/{method}: cam activations differ from the forward hook")
    if cls in (EigenCAM, ScoreCAM):
        if grads:
            raise RuntimeError(f"{arch_name}/{method}: unexpected gradients")
        return
    scale = float(np.abs(ref_g).max())
    if not np.allclose(grads[0], ref_g, rtol=1e-5, atol=1e-6 * scale):
        raise RuntimeError(f"{arch_name}/{method}: cam gradients differ from autograd "
                           f"(max diff {np.abs(grads[0] - ref_g).max():.3g})")


def main() -> int:
    fl.quiet_warnings()
    torch.set_num_threads(1)
    by_name = {a.name: a for a in ef.ARCHS}
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True)
    models = [process_arch(by_name[name]) for name in CAM_ARCHS]
    manifest = {
        "tools": tool_versions(),
        "generated": _dt.datetime.now(_dt.timezone.utc).date().isoformat(),
        "generator": "tools/export_cam_goldens.py",
        "format": "float32 little-endian C-order .npy (version 1.0); paths relative to Fixtures/; an output "
                  "byte-identical to an earlier one of the same arch is not duplicated, its entry names the "
                  "earlier file (models[].aliases: would-be path -> file)",
        "models": models,
    }
    (OUT_DIR / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT_DIR.rglob("*") if p.is_file())
    print(f"\nwrote {OUT_DIR}  total {total} bytes ({total / 1e6:.3f} MB)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        sys.exit(1)
