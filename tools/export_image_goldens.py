#!/usr/bin/env python3
"""Image fixtures and goldens for decoding, preprocessing, colormaps and overlays.

Writes Fixtures/images/ (regenerated from scratch, kept under SIZE_BUDGET bytes):

  <fixture images>           seeded synthetic "photos" (smooth gradients, a few hard- and
                             soft-edged shapes, mild Gaussian noise) in many PNG / JPEG flavours,
                             plus broken files for error tests
  decoded/<stem>.npy         np.asarray(Image.open(f).convert("RGB")), uint8 [H, W, 3]
  preprocessed/*.npy         torchvision.transforms (PIL path) Resize / CenterCrop / ToTensor /
                             Normalize, float32 [3, C, C]; *_rgb.npy: uint8 [C, C, 3] after
                             Resize + CenterCrop only
  colormaps/*.npy            256-entry uint8 [256, 3] RGB tables (OpenCV applyColorMap, matplotlib)
  overlays/*                 file -> tensor -> GradCAM heatmap -> show_cam_on_image overlay, the way
                             a pytorch-grad-cam user does it, on the fixture models resnet_basic and
                             vit (rebuilt as tools/export_cam_goldens.py does, logits checked against
                             the onnxruntime goldens in Fixtures/models); guided backprop and
                             Guided GradCAM images as in pytorch-grad-cam's README
  manifest.json              tool versions and the meaning of every file

Every .npy is numpy format version 1.0, C order, little-endian (uint8 or float32).
The outputs are deterministic (no timestamps); running twice gives byte-identical files.

Run with tools/.venv/bin/python tools/export_image_goldens.py
"""
from __future__ import annotations

import importlib.metadata
import io
import json
import os
import platform
import shutil
import sys
import traceback
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tvcompat import torchvision  # noqa: E402  (must precede pytorch_grad_cam)

import cv2  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
import PIL  # noqa: E402
import torch  # noqa: E402
import torchvision.transforms as T  # noqa: E402
from matplotlib import colormaps as mpl_colormaps  # noqa: E402
from PIL import Image, ImageFile, features  # noqa: E402
from pytorch_grad_cam import GradCAM, GuidedBackpropReLUModel  # noqa: E402
from pytorch_grad_cam.utils.image import deprocess_image, show_cam_on_image  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

import export_cam_goldens as cg  # noqa: E402  (build_model, check_logits, reshape transform)
import export_fixtures as ef  # noqa: E402
import fixturelib as fl  # noqa: E402

OUT_DIR = fl.REPO_DIR / "Fixtures" / "images"
SIZE_BUDGET = 600_000  # bytes, whole Fixtures/images tree

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

# (R, C) for T.Resize(R) + T.CenterCrop(C).  The brief's (200, 150) and (64, 100) would cost
# 270 KB / 120 KB per float32 tensor, so the upscaling and padding cases use a small crop.
PREPROC_SIZES = [
    ((73, 64), "resnet_basic input size; downscales rgb8/photo420, upscales gray8/palette"),
    ((37, 32), "vit input size; downscales every image, crop offsets hit round-half-even"),
    ((200, 24), "upscaling (shorter side -> 200), small centre crop"),
    ((16, 24), "crop larger than the resized image: zero padding (asymmetric) before the crop"),
]
PREPROC_IMAGES = ["rgb8.png", "photo420.jpg", "gray8.png", "palette.png"]
# float32 tensors at (73, 64) cost 49 KB each: only for these; every image gets the uint8 crop
FLOAT_73_64_IMAGES = ["rgb8.png", "photo420.jpg"]
# extra normalisations: (tag, mean, std) for rgb8.png only, at the small padded size (size budget; the
# zero padding becomes -mean/std after Normalize, which these make visible)
EXTRA_NORMS = [("half", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]), ("nonorm", None, None)]
EXTRA_NORM_SIZE = (16, 24)
EXTRA_NORM_IMAGES = ["rgb8.png"]

WHOLE_PATH = {
    "resnet_basic": dict(size=(73, 64), images=["rgb8.png", "photo420.jpg", "gray8.png"], guided="rgb8.png"),
    "vit": dict(size=(37, 32), images=["rgb8.png", "photo420.jpg"], guided=None),
}

OPENCV_CMAPS = {"jet": cv2.COLORMAP_JET, "turbo": cv2.COLORMAP_TURBO, "viridis": cv2.COLORMAP_VIRIDIS,
                "inferno": cv2.COLORMAP_INFERNO}
MPL_CMAPS = ["viridis", "inferno", "turbo", "RdBu"]


# --------------------------------------------------------------------------- writing


class Out:
    """Writes files under OUT_DIR, refusing duplicates, and records their meaning."""

    def __init__(self):
        self.files: dict = {}

    def _record(self, rel: str, data: bytes, meaning: dict) -> str:
        if rel in self.files:
            raise RuntimeError(f"{rel} written twice")
        path = OUT_DIR / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.files[rel] = dict(bytes=len(data), **meaning)
        return rel

    def raw(self, rel: str, data: bytes, **meaning) -> str:
        return self._record(rel, data, meaning)

    def npy(self, rel: str, array, dtype: str, **meaning) -> str:
        arr = np.ascontiguousarray(np.asarray(array))
        if arr.dtype != np.dtype(dtype):
            raise RuntimeError(f"{rel}: dtype {arr.dtype}, expected {dtype}")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise RuntimeError(f"{rel}: non-finite values")
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        buf = io.BytesIO()
        np.lib.format.write_array(buf, arr, version=(1, 0), allow_pickle=False)
        return self._record(rel, buf.getvalue(), dict(dtype=str(arr.dtype), shape=list(arr.shape), **meaning))

    @staticmethod
    def pil(image: Image.Image, **save_kw) -> bytes:
        buf = io.BytesIO()
        image.save(buf, **save_kw)
        return buf.getvalue()


def npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), version=(1, 0), allow_pickle=False)
    return buf.getvalue()


# --------------------------------------------------------------------------- synthetic images


def synth(seed: int, w: int, h: int, channels: int, noise: float) -> np.ndarray:
    """Photo-like float image in [0, 1], [h, w, channels].

    Per channel a tilted linear gradient plus a low-frequency sinusoid; then a hard-edged disc,
    a hard-edged rectangle and a soft-edged ellipse in random colours; then Gaussian noise
    (standard deviation ``noise``, in units of the [0, 1] range).
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = x / (w - 1), y / (h - 1)
    img = np.empty((h, w, channels))
    for c in range(channels):
        gx, gy = rng.uniform(-0.35, 0.35, 2)
        fx, fy = rng.uniform(0.4, 1.4, 2)
        phase = rng.uniform(0, 2 * np.pi)
        img[..., c] = 0.5 + gx * (u - 0.5) + gy * (v - 0.5) + 0.15 * np.sin(2 * np.pi * (fx * u + fy * v) + phase)

    # hard-edged disc
    cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    r = rng.uniform(0.12, 0.22) * min(w, h)
    disc = (x - cx) ** 2 + (y - cy) ** 2 <= r * r
    img[disc] = rng.uniform(0.05, 0.95, channels)
    # hard-edged rectangle (clipped to the image)
    x0, y0 = int(rng.uniform(0.05, 0.6) * w), int(rng.uniform(0.05, 0.6) * h)
    x1, y1 = x0 + int(rng.uniform(0.15, 0.35) * w), y0 + int(rng.uniform(0.1, 0.3) * h)
    img[y0:y1, x0:x1] = rng.uniform(0.05, 0.95, channels)
    # soft-edged ellipse (linear ramp over 20% of its radius), blended
    ex, ey = rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h
    ax, ay = rng.uniform(0.15, 0.3) * w, rng.uniform(0.15, 0.3) * h
    d = np.sqrt(((x - ex) / ax) ** 2 + ((y - ey) / ay) ** 2)
    a = np.clip((1.0 - d) / 0.2, 0.0, 1.0)[..., None]
    img = img * (1 - a) + rng.uniform(0.05, 0.95, channels) * a

    img += rng.normal(0.0, noise, img.shape)
    return np.clip(img, 0.0, 1.0)


def to_u8(img: np.ndarray) -> np.ndarray:
    return np.rint(img * 255.0).astype(np.uint8)


def to_u16(img: np.ndarray) -> np.ndarray:
    return np.rint(img * 65535.0).astype(np.uint16)


def alpha_plane(seed: int, w: int, h: int) -> np.ndarray:
    """uint8 alpha: diagonal ramp 0..255, a fully transparent disc and a fully opaque bar."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    a = (x / (w - 1) + y / (h - 1)) / 2
    cx, cy, r = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h, 0.2 * min(w, h)
    a[(x - cx) ** 2 + (y - cy) ** 2 <= r * r] = 0.0
    a[:, : max(2, w // 8)] = 1.0
    return to_u8(a)


def png_chunks(data: bytes) -> list:
    """[(type, length)] of a PNG byte string (sanity checks only)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise RuntimeError("not a PNG")
    out, pos = [], 8
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        out.append((data[pos + 4:pos + 8].decode("latin-1"), n))
        pos += 12 + n
    return out


def png_ihdr(data: bytes) -> dict:
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return dict(width=w, height=h, bit_depth=data[24], color_type=data[25], interlace=data[28])


def jpeg_sampling(image: Image.Image) -> list:
    """[(component id, h, v, quant table)] from PIL's parsed SOF layer."""
    return [[int(c) for c in comp] for comp in getattr(image, "layer", [])]


def make_fixtures(out: Out) -> dict:
    """Writes the fixture images; returns {file: entry} for the manifest's images section."""
    images: dict = {}
    noise = 2.0 / 255

    def save_pil(name, image, meaning, **save_kw):
        data = out.pil(image, **save_kw)
        out.raw(name, data, kind="fixture image", meaning=meaning)
        return data

    # rgb8.png
    rgb = to_u8(synth(1, 97, 131, 3, noise))
    rgb8 = save_pil("rgb8.png", Image.fromarray(rgb, "RGB"), "8-bit RGB PNG, 97x131 (w x h)", format="PNG")
    images["rgb8.png"] = dict(format="PNG", pil_mode="RGB", size_wh=[97, 131], seed=1, png=png_ihdr(rgb8),
                              generator="synth(seed=1, 97x131, 3 ch) -> rint(*255)")

    # gray8.png (smaller than 73 on its short side: Resize(73) upscales it)
    gray = to_u8(synth(2, 59, 67, 1, noise))[..., 0]
    data = save_pil("gray8.png", Image.fromarray(gray, "L"), "8-bit grayscale PNG (mode L), 59x67", format="PNG")
    images["gray8.png"] = dict(format="PNG", pil_mode="L", size_wh=[59, 67], seed=2, png=png_ihdr(data))

    # gray_alpha.png (LA)
    g = to_u8(synth(3, 41, 29, 1, noise))[..., 0]
    la = np.stack([g, alpha_plane(30, 41, 29)], axis=-1)
    data = save_pil("gray_alpha.png", Image.fromarray(la, "LA"),
                    "8-bit gray + alpha PNG (mode LA), 41x29; alpha has 0, 255 and a ramp; gray values under "
                    "alpha 0 are not zero", format="PNG")
    images["gray_alpha.png"] = dict(format="PNG", pil_mode="LA", size_wh=[41, 29], seed=3, png=png_ihdr(data))

    # rgba8.png
    c = to_u8(synth(4, 43, 31, 3, noise))
    rgba = np.concatenate([c, alpha_plane(40, 43, 31)[..., None]], axis=-1)
    data = save_pil("rgba8.png", Image.fromarray(rgba, "RGBA"),
                    "8-bit RGBA PNG, 43x31; alpha has 0, 255 and a ramp; colour under alpha 0 is not zero",
                    format="PNG")
    images["rgba8.png"] = dict(format="PNG", pil_mode="RGBA", size_wh=[43, 31], seed=4, png=png_ihdr(data))

    # palette.png: 40 colours picked from the image itself, nearest-colour mapping (no dithering)
    src = to_u8(synth(5, 69, 57, 3, noise))
    rng = np.random.default_rng(50)
    flat = src.reshape(-1, 3)
    palette = flat[rng.choice(flat.shape[0], size=40, replace=False)].astype(np.int32)
    d2 = ((flat[:, None, :].astype(np.int32) - palette[None]) ** 2).sum(-1)
    idx = np.argmin(d2, axis=1).astype(np.uint8).reshape(57, 69)
    pimg = Image.frombytes("P", (69, 57), idx.tobytes())
    pimg.putpalette(palette.astype(np.uint8).reshape(-1).tolist(), rawmode="RGB")
    data = save_pil("palette.png", pimg, "8-bit palette PNG (mode P), 69x57, 40-entry PLTE, no tRNS", format="PNG")
    plte = [n for t, n in png_chunks(data) if t == "PLTE"]
    if plte != [120] or any(t == "tRNS" for t, _ in png_chunks(data)):
        raise RuntimeError(f"palette.png: PLTE {plte}")
    images["palette.png"] = dict(format="PNG", pil_mode="P", size_wh=[69, 57], seed=5, palette_entries=40,
                                 colours_used=int(len(np.unique(idx))), png=png_ihdr(data))

    # rgb16.png: PIL cannot write 16-bit RGB; OpenCV writes a uint16 BGR array as 16-bit RGB PNG
    raw16 = to_u16(synth(6, 45, 37, 3, noise))
    ok, enc = cv2.imencode(".png", np.ascontiguousarray(raw16[..., ::-1]))
    if not ok:
        raise RuntimeError("cv2.imencode failed for rgb16.png")
    data = enc.tobytes()
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if back.dtype != np.uint16 or not np.array_equal(back[..., ::-1], raw16):
        raise RuntimeError("rgb16.png does not round-trip")
    out.raw("rgb16.png", data, kind="fixture image",
            meaning="16-bit RGB PNG, 45x37, written by cv2.imencode('.png', uint16 BGR array)")
    images["rgb16.png"] = dict(format="PNG", size_wh=[45, 37], seed=6, png=png_ihdr(data),
                               writer="cv2.imencode('.png', raw16[..., ::-1])",
                               raw16_stats=dict(min=int(raw16.min()), max=int(raw16.max())))
    if images["rgb16.png"]["png"]["bit_depth"] != 16 or images["rgb16.png"]["png"]["color_type"] != 2:
        raise RuntimeError(f"rgb16.png header {images['rgb16.png']['png']}")

    # gray16.png (PIL mode I;16)
    g16 = to_u16(synth(7, 43, 35, 1, noise))[..., 0]
    g16[:4, :] = np.rint(np.linspace(0, 511, 43)).astype(np.uint16)  # dark ramp: PIL passes <= 255, clips above
    im16 = Image.fromarray(g16)
    if im16.mode != "I;16":
        raise RuntimeError(f"gray16 array gives PIL mode {im16.mode}")
    data = save_pil("gray16.png", im16, "16-bit grayscale PNG (PIL mode I;16), 43x35; rows 0-3 are a "
                    "horizontal ramp 0..511, the rest is in about [12000, 52000]", format="PNG")
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if back.dtype != np.uint16 or not np.array_equal(back, g16):
        raise RuntimeError("gray16.png does not round-trip")
    images["gray16.png"] = dict(format="PNG", pil_mode="I;16", size_wh=[43, 35], seed=7, png=png_ihdr(data),
                                raw16_stats=dict(min=int(g16.min()), max=int(g16.max()),
                                                 fraction_above_255=float(np.mean(g16 > 255))))

    # JPEGs
    photo = to_u8(synth(8, 107, 81, 3, noise))
    p420 = save_pil("photo420.jpg", Image.fromarray(photo, "RGB"),
                    "baseline RGB JPEG, 107x81 (odd, not a multiple of the MCU), quality 90, 4:2:0",
                    format="JPEG", quality=90, subsampling=2)
    photo_s = to_u8(synth(9, 63, 47, 3, noise))
    save_pil("photo444.jpg", Image.fromarray(photo_s, "RGB"), "baseline RGB JPEG, 63x47, quality 90, 4:4:4",
             format="JPEG", quality=90, subsampling=0)
    gj = to_u8(synth(10, 57, 43, 1, noise))[..., 0]
    save_pil("gray.jpg", Image.fromarray(gj, "L"), "baseline grayscale JPEG (1 component), 57x43, quality 90",
             format="JPEG", quality=90)
    cm = Image.fromarray(to_u8(synth(11, 23, 17, 3, noise)), "RGB").convert("CMYK")
    cmyk = save_pil("cmyk.jpg", cm, "4-component CMYK JPEG (PIL writes Adobe APP14, inverted), 23x17, "
                    "quality 90; for error / unsupported-format tests", format="JPEG", quality=90)
    for name, size, seed, q, sub in [("photo420.jpg", [107, 81], 8, 90, "4:2:0"),
                                     ("photo444.jpg", [63, 47], 9, 90, "4:4:4"),
                                     ("gray.jpg", [57, 43], 10, 90, "n/a (1 component)"),
                                     ("cmyk.jpg", [23, 17], 11, 90, "4:4:4")]:
        with Image.open(OUT_DIR / name) as im:
            images[name] = dict(format="JPEG", pil_mode=im.mode, size_wh=size, seed=seed, quality=q,
                                subsampling=sub, sof_components_id_h_v_tq=jpeg_sampling(im),
                                adobe_transform=im.info.get("adobe_transform"))
    if images["photo420.jpg"]["sof_components_id_h_v_tq"][0][1:3] != [2, 2]:
        raise RuntimeError(f"photo420.jpg sampling {images['photo420.jpg']['sof_components_id_h_v']}")
    if images["photo444.jpg"]["sof_components_id_h_v_tq"][0][1:3] != [1, 1]:
        raise RuntimeError("photo444.jpg is not 4:4:4")
    if images["cmyk.jpg"]["pil_mode"] != "CMYK":
        raise RuntimeError("cmyk.jpg is not CMYK")
    del cmyk

    # broken files
    n = int(len(p420) * 0.6)
    out.raw("truncated.jpg", p420[:n], kind="error fixture",
            meaning=f"first {n} of {len(p420)} bytes (60%) of photo420.jpg: no EOI, scan cut short")
    n = int(len(rgb8) * 0.6)
    out.raw("truncated.png", rgb8[:n], kind="error fixture",
            meaning=f"first {n} of {len(rgb8)} bytes (60%) of rgb8.png: IDAT cut short, no IEND")
    out.raw("not_an_image.png", b"This is not a PNG file, just text with a .png extension.\n",
            kind="error fixture", meaning="ASCII text with a .png name")
    return images


# --------------------------------------------------------------------------- decode goldens


def pil_error(path: Path) -> dict:
    """Which PIL step fails on a broken file: Image.open (header) or convert (pixel data)."""
    stage = "Image.open"
    try:
        with Image.open(path) as im:
            stage = "convert('RGB')"
            opened = dict(mode=im.mode, size_wh=list(im.size))
            im.convert("RGB")
    except Exception as exc:  # noqa: BLE001
        res = dict(stage=stage, exception=type(exc).__name__, message=str(exc).replace(str(path), path.name))
        if stage != "Image.open":
            res["opened_as"] = opened
        return res
    raise RuntimeError(f"{path.name}: PIL decodes it without error")


def decode_goldens(out: Out, images: dict) -> dict:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL LOAD_TRUNCATED_IMAGES is set")
    decoded = {}
    for name in images:
        path = OUT_DIR / name
        with Image.open(path) as im:
            mode = im.mode
            rgb = np.asarray(im.convert("RGB"))
        stem = Path(name).stem  # the stems of the PNGs and the JPEGs do not collide
        note = CONVERT_NOTES["RGB16" if name == "rgb16.png" else mode]
        rel = out.npy(f"decoded/{stem}.npy", rgb, "uint8", kind="decode golden", source=name,
                      meaning=f"PIL convert('RGB'), [H, W, 3]; PIL mode {mode}. {note}".strip())
        decoded[name] = rel
    checks = {}

    # what PIL's convert("RGB") did, checked against the pixels we wrote
    with Image.open(OUT_DIR / "rgba8.png") as im:
        rgba = np.asarray(im)
    got = np.load(OUT_DIR / decoded["rgba8.png"])
    checks["rgba8_alpha_dropped"] = bool(np.array_equal(got, rgba[..., :3]))
    with Image.open(OUT_DIR / "gray_alpha.png") as im:
        la = np.asarray(im)
    got = np.load(OUT_DIR / decoded["gray_alpha.png"])
    checks["gray_alpha_alpha_dropped_gray_replicated"] = bool(np.array_equal(got, np.repeat(la[..., :1], 3, -1)))
    with Image.open(OUT_DIR / "palette.png") as im:
        idx = np.asarray(im)
        pal = np.array(im.getpalette()[: 3 * 40], dtype=np.uint8).reshape(40, 3)
    got = np.load(OUT_DIR / decoded["palette.png"])
    checks["palette_is_plain_lookup"] = bool(np.array_equal(got, pal[idx]))

    raw16 = cv2.imread(str(OUT_DIR / "rgb16.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    got = np.load(OUT_DIR / decoded["rgb16.png"])
    hb = (raw16 >> 8).astype(np.uint8)
    rounded = np.rint(raw16 / 257.0).astype(np.uint8)
    checks["rgb16_pil_equals_high_byte"] = bool(np.array_equal(got, hb))
    checks["rgb16_pil_equals_round_div_257"] = bool(np.array_equal(got, rounded))
    checks["rgb16_high_byte_vs_round_div_257_pixels_differing"] = float(np.mean(np.any(hb != rounded, -1)))

    g16 = cv2.imread(str(OUT_DIR / "gray16.png"), cv2.IMREAD_UNCHANGED)
    got = np.load(OUT_DIR / decoded["gray16.png"])
    clipped = np.minimum(g16, 255).astype(np.uint8)
    checks["gray16_pil_equals_min_raw_255"] = bool(np.array_equal(got, np.repeat(clipped[..., None], 3, -1)))
    checks["gray16_fraction_of_pixels_pil_gives_255"] = float(np.mean(got[..., 0] == 255))
    hb16 = np.repeat((g16 >> 8).astype(np.uint8)[..., None], 3, -1)
    rel = out.npy("decoded/gray16_highbyte.npy", hb16, "uint8", kind="decode golden (non-PIL)", source="gray16.png",
                  meaning="(raw16 >> 8) replicated to 3 channels, [H, W, 3]: the high-byte scaling the Swift "
                          "decoder uses; intentionally NOT what PIL gives (PIL clips, see decoded/gray16.npy)")
    decoded["gray16.png (high byte, not PIL)"] = rel

    with Image.open(OUT_DIR / "cmyk.jpg") as im:
        cmyk = np.asarray(im).astype(np.int32)
    got = np.load(OUT_DIR / decoded["cmyk.jpg"]).astype(np.int32)
    nk = 255 - cmyk[..., 3:]
    formula = nk - (cmyk[..., :3] * nk + 127) // 255
    checks["cmyk_max_abs_diff_vs_(255-K)-C*(255-K)/255"] = int(np.abs(got - formula).max())

    # the manifest's notes state these behaviours: fail loudly if a PIL update changes them
    expected_true = ["rgba8_alpha_dropped", "gray_alpha_alpha_dropped_gray_replicated", "palette_is_plain_lookup",
                     "rgb16_pil_equals_high_byte", "gray16_pil_equals_min_raw_255"]
    bad = [k for k in expected_true if not checks[k]]
    if bad or checks["cmyk_max_abs_diff_vs_(255-K)-C*(255-K)/255"] != 0:
        raise RuntimeError(f"PIL conversion behaviour changed ({bad}, {checks}); update the notes")

    errors = {name: pil_error(OUT_DIR / name) for name in ["truncated.jpg", "truncated.png", "not_an_image.png"]}
    return dict(files=decoded, checks=checks, pil_errors=errors)


CONVERT_NOTES = {
    "RGB": "",
    "RGB16": "16-bit file: PIL keeps the high byte of each sample.",
    "L": "Gray replicated to R = G = B.",
    "LA": "Alpha is DROPPED (not composited, not premultiplied); gray replicated.",
    "RGBA": "Alpha is DROPPED (not composited, not premultiplied).",
    "P": "Plain palette lookup (no tRNS in this file).",
    "I;16": "PIL CLIPS: convert('RGB') of a 16-bit gray image gives min(raw16, 255), so almost every pixel "
            "is 255; the Swift decoder takes the high byte instead (decoded/gray16_highbyte.npy).",
    "CMYK": "PIL reads the Adobe (inverted) CMYK JPEG and converts with R = (255-K) - C*(255-K)/255 "
            "(integer, rounded), likewise G/M and B/Y.",
}


# --------------------------------------------------------------------------- preprocessing


def resize_crop_geometry(w: int, h: int, r: int, c: int) -> dict:
    """What T.Resize(r) + T.CenterCrop(c) do geometrically (torchvision 0.28 PIL path)."""
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = r, int(r * long / short)
    nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
    pad = [0, 0, 0, 0]
    pw, ph = nw, nh
    if c > nw or c > nh:
        pad = [(c - nw) // 2 if c > nw else 0, (c - nh) // 2 if c > nh else 0,
               (c - nw + 1) // 2 if c > nw else 0, (c - nh + 1) // 2 if c > nh else 0]
        pw, ph = nw + pad[0] + pad[2], nh + pad[1] + pad[3]
    top = int(round((ph - c) / 2.0))
    left = int(round((pw - c) / 2.0))
    return dict(source_wh=[w, h], resized_wh=[nw, nh], resize_skipped=[nw, nh] == [w, h], pad_ltrb=pad,
                padded_wh=[pw, ph], crop_top=top, crop_left=left)


GEOMETRY_RULE = ("Resize: short side -> R, long side -> int(R * long / short) (truncation), PIL "
                 "Image.resize(size, BILINEAR) (PIL's resampler always antialiases), skipped if the size is "
                 "unchanged; CenterCrop: if C exceeds a side, zero-pad by l = (C-w)//2, t = (C-h)//2, "
                 "r = (C-w+1)//2, b = (C-h+1)//2 (only on the sides C exceeds), then top = round((H - C) / 2), "
                 "left = round((W - C) / 2) with Python's round (half to even: 4.5 -> 4, 8.5 -> 8, but "
                 "101.5 -> 102 in gray8_200_24)")


def check_geometry(img: Image.Image, r: int, c: int, geo: dict) -> None:
    resized = T.Resize(r)(img)
    if list(resized.size) != geo["resized_wh"]:
        raise RuntimeError(f"resize geometry {resized.size} != {geo['resized_wh']}")
    # the crop window, applied by hand to the zero-padded resized image, must equal CenterCrop
    a = np.asarray(resized)
    l, t, rr, b = geo["pad_ltrb"]
    padded = np.pad(a, ((t, b), (l, rr), (0, 0)))
    mine = padded[geo["crop_top"]:geo["crop_top"] + c, geo["crop_left"]:geo["crop_left"] + c]
    if not np.array_equal(mine, np.asarray(T.CenterCrop(c)(resized))):
        raise RuntimeError(f"crop geometry mismatch for R={r} C={c}")


def preprocess(img: Image.Image, r: int, c: int, mean, std) -> torch.Tensor:
    steps = [T.Resize(r), T.CenterCrop(c), T.ToTensor()]
    if mean is not None:
        steps.append(T.Normalize(mean, std))
    return T.Compose(steps)(img)


def preprocessing_goldens(out: Out) -> list:
    entries = []
    for name in PREPROC_IMAGES:
        with Image.open(OUT_DIR / name) as im:
            img = im.convert("RGB")
        stem = Path(name).stem
        for (r, c), why in PREPROC_SIZES:
            geo = resize_crop_geometry(img.width, img.height, r, c)
            check_geometry(img, r, c, geo)
            x = preprocess(img, r, c, IMAGENET_MEAN, IMAGENET_STD).numpy()
            if x.dtype != np.float32 or x.shape != (3, c, c):
                raise RuntimeError(f"{name} {r} {c}: {x.dtype} {x.shape}")
            if (r, c) != (73, 64) or name in FLOAT_73_64_IMAGES:
                entries.append(out.npy(f"preprocessed/{stem}_{r}_{c}.npy", x, "float32", kind="preprocessing golden",
                                       image=name, R=r, C=c, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                       meaning=f"preprocessing.pipeline with ImageNet mean/std, float32 [3, C, C] "
                                               f"({why})", geometry=geo))
            if (r, c) == (73, 64):
                rgb = np.asarray(T.CenterCrop(c)(T.Resize(r)(img)))
                u = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div(255)
                again = ((u - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1))
                if not np.array_equal(again.numpy(), x):
                    raise RuntimeError(f"{name}: uint8 crop does not reproduce the tensor")
                rel = out.npy(f"preprocessed/{stem}_{r}_{c}_rgb.npy", rgb, "uint8", kind="preprocessing golden",
                              image=name, R=r, C=c, mean=None, std=None,
                              meaning="np.asarray(CenterCrop(C)(Resize(R)(rgb))), uint8 [C, C, 3]: the "
                                      "resampled pixels before ToTensor", geometry=geo)
                entries.append(rel)
        if name in EXTRA_NORM_IMAGES:
            r, c = EXTRA_NORM_SIZE
            geo = resize_crop_geometry(img.width, img.height, r, c)
            for tag, mean, std in EXTRA_NORMS:
                x = preprocess(img, r, c, mean, std).numpy()
                comp = "ToTensor()" + ("" if mean is None else f", Normalize({mean}, {std})")
                rel = out.npy(f"preprocessed/{stem}_{r}_{c}_{tag}.npy", x, "float32", kind="preprocessing golden",
                              image=name, R=r, C=c, mean=mean, std=std,
                              meaning=f"Compose([Resize(R), CenterCrop(C), {comp}]), float32 [3, C, C]",
                              geometry=geo)
                entries.append(rel)
    return entries


# --------------------------------------------------------------------------- colormaps


def colormap_goldens(out: Out) -> dict:
    entries = []
    ramp = np.arange(256, dtype=np.uint8)[None]
    for name, code in OPENCV_CMAPS.items():
        bgr = cv2.applyColorMap(ramp, code)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[0]
        rel = out.npy(f"colormaps/opencv_{name}.npy", rgb, "uint8", kind="colormap table",
                      meaning=f"cv2.applyColorMap(np.arange(256, dtype=uint8)[None], cv2.COLORMAP_{name.upper()}) "
                              "converted BGR -> RGB, [256, 3]; row i = colour of input byte i")
        entries.append(rel)
    for name in MPL_CMAPS:
        rgb = np.round(mpl_colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)
        rel = out.npy(f"colormaps/matplotlib_{name}.npy", rgb, "uint8", kind="colormap table",
                      meaning=f"(matplotlib.colormaps['{name}'](np.linspace(0, 1, 256))[:, :3] * 255).round() as "
                              "uint8, [256, 3]")
        entries.append(rel)
    # the same for both libraries?  (informational)
    cmp = {}
    for name in ["viridis", "inferno", "turbo"]:
        a = np.load(OUT_DIR / f"colormaps/opencv_{name}.npy").astype(int)
        b = np.load(OUT_DIR / f"colormaps/matplotlib_{name}.npy").astype(int)
        cmp[name] = dict(max_abs_diff=int(np.abs(a - b).max()), entries_differing=int(np.any(a != b, 1).sum()))
    return dict(files=entries, opencv_vs_matplotlib_same_name=cmp)


# --------------------------------------------------------------------------- whole path


def whole_path_goldens(out: Out, preproc: dict) -> dict:
    by_name = {a.name: a for a in ef.ARCHS}
    results = {}
    for arch_name, cfg in WHOLE_PATH.items():
        arch = by_name[arch_name]
        cam_cfg = cg.CAM_ARCHS[arch_name]
        r, c = cfg["size"]
        if c != arch.hw:
            raise RuntimeError(f"{arch_name}: crop {c} != model input {arch.hw}")
        print(f"{arch_name}:")

        # same weights as the committed ONNX fixtures: check logits on the shared input
        model = cg.build_model(arch)
        with torch.no_grad():
            logits_fixture = model(torch.from_numpy(np.load(cg.MODELS_DIR / "inputs" / f"{arch_name}.npy"))).numpy()
        fixtures = cg.check_logits(arch_name, logits_fixture)

        layer = cam_cfg["layer"](model)
        reshape, reshape_desc = None, None
        if cam_cfg["vit"] is not None:
            prefix, grid = cam_cfg["vit"](model)
            reshape = cg.make_reshape_transform(prefix, grid)
            reshape_desc = (f"t[:, {prefix}:, :].reshape(N, {grid[0]}, {grid[1]}, C).transpose(2, 3)"
                            ".transpose(1, 2) (class token dropped)")
        runs = []
        for name in cfg["images"]:
            stem = Path(name).stem
            with Image.open(OUT_DIR / name) as im:
                rgb = T.CenterCrop(c)(T.Resize(r)(im.convert("RGB")))
            x = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)(T.ToTensor()(rgb))
            # the stored preprocessing goldens are this model input (float32 file, else the uint8 crop)
            pre_rel = f"preprocessed/{stem}_{r}_{c}.npy"
            rgb_rel = f"preprocessed/{stem}_{r}_{c}_rgb.npy"
            pre_rel = pre_rel if pre_rel in preproc else None
            rgb_rel = rgb_rel if rgb_rel in preproc else None
            if pre_rel is None and rgb_rel is None:
                raise RuntimeError(f"{arch_name}/{name}: no preprocessing golden for the input")
            if pre_rel and npy_bytes(x.numpy()) != (OUT_DIR / pre_rel).read_bytes():
                raise RuntimeError(f"{arch_name}/{name}: input differs from {pre_rel}")
            if rgb_rel and npy_bytes(np.asarray(rgb)) != (OUT_DIR / rgb_rel).read_bytes():
                raise RuntimeError(f"{arch_name}/{name}: crop differs from {rgb_rel}")

            model = cg.build_model(arch)
            with torch.no_grad():
                logits = model(x[None]).numpy()[0]
            pred = int(np.argmax(logits))
            top2 = np.sort(logits)[-2:]
            targets = [ClassifierOutputTarget(pred)]
            cam = GradCAM(model=model, target_layers=[dict(model.named_modules())[layer]], reshape_transform=reshape)
            try:
                heat = cam(input_tensor=x[None], targets=targets)[0]
                grad_logits = cam.outputs.detach().numpy()[0]
            finally:
                cam.activations_and_grads.release()
            if int(np.argmax(grad_logits)) != pred:
                raise RuntimeError(f"{arch_name}/{name}: grad-path argmax differs")
            if heat.shape != (c, c) or heat.dtype != np.float32:
                raise RuntimeError(f"{arch_name}/{name}: heatmap {heat.shape} {heat.dtype}")

            img01 = np.float32(np.asarray(rgb)) / 255
            overlay = show_cam_on_image(img01, heat, use_rgb=True)
            base = f"overlays/{arch_name}_{stem}"
            heat_rel = out.npy(f"{base}_heatmap.npy", heat, "float32", kind="whole-path golden",
                               meaning=f"GradCAM(model, [{layer}]{', reshape' if reshape else ''})"
                                       f"(x[None], [ClassifierOutputTarget({pred})])[0], float32 [{c}, {c}] in [0, 1]")
            png = out.pil(Image.fromarray(overlay, "RGB"), format="PNG")
            ov_rel = out.raw(f"{base}.png", png, kind="whole-path golden",
                             meaning="show_cam_on_image(np.float32(np.asarray(rgb)) / 255, heat, use_rgb=True) "
                                     "(image_weight 0.5, COLORMAP_JET), saved with PIL as RGB PNG")
            run = dict(image=name, R=r, C=c, input=pre_rel, rgb_crop=rgb_rel,
                       logits=[float(v) for v in logits], predicted_class=pred,
                       top1_margin=float(top2[1] - top2[0]),
                       grad_path_logits_max_abs_diff=float(np.abs(grad_logits - logits).max()),
                       heatmap=heat_rel, heatmap_range=[float(heat.min()), float(heat.max())], overlay=ov_rel)
            print(f"  {name:14s} class {pred} margin {run['top1_margin']:.4g}  "
                  f"heat [{heat.min():.3g}, {heat.max():.3g}]")

            if cfg["guided"] == name:
                gb_model = GuidedBackpropReLUModel(model=cg.build_model(arch), device="cpu")
                gb = gb_model(x[None], target_category=None)  # README: None -> argmax of the output
                if gb.shape != (c, c, 3):
                    raise RuntimeError(f"guided backprop shape {gb.shape}")
                cam_mask = cv2.merge([heat, heat, heat])
                cam_gb = deprocess_image(cam_mask * gb)
                gb_img = deprocess_image(gb)
                g_rel = out.raw(f"{base}_guided.png", out.pil(Image.fromarray(gb_img, "RGB"), format="PNG"),
                                kind="whole-path golden",
                                meaning="deprocess_image(GuidedBackpropReLUModel(model)(x[None], "
                                        "target_category=None)) "
                                        "(target = argmax = the predicted class), [H, W, 3] in input channel order "
                                        "(R, G, B), saved with PIL")
                gg_rel = out.raw(f"{base}_guided_gradcam.png",
                                 out.pil(Image.fromarray(cam_gb, "RGB"), format="PNG"), kind="whole-path golden",
                                 meaning="deprocess_image(cv2.merge([heat, heat, heat]) * gb), saved with PIL")
                run["guided_backprop"] = g_rel
                run["guided_gradcam"] = gg_rel
                run["guided_backprop_stats"] = dict(min=float(gb.min()), max=float(gb.max()),
                                                    mean=float(np.mean(gb)), std=float(np.std(gb)))
            runs.append(run)
        results[arch_name] = dict(fixtures_checked=fixtures, target_layer=layer, reshape_transform=reshape_desc,
                                  method="GradCAM", input_size=[c, c], runs=runs)
    return results


# --------------------------------------------------------------------------- main


def compact_json(obj, indent: int = 0) -> str:
    """json.dumps(indent=1) layout, but lists of scalars and small dicts of scalars on one line."""
    pad, inner = " " * indent, " " * (indent + 1)

    def scalar(v):
        return not isinstance(v, (dict, list))

    if isinstance(obj, list):
        if all(scalar(v) for v in obj):
            return json.dumps(obj)
        return "[\n" + ",\n".join(inner + compact_json(v, indent + 1) for v in obj) + "\n" + pad + "]"
    if isinstance(obj, dict):
        flat = json.dumps(obj)
        if len(flat) <= 100 and all(scalar(v) or (isinstance(v, list) and all(map(scalar, v))) for v in obj.values()):
            return flat
        items = [inner + json.dumps(k) + ": " + compact_json(v, indent + 1) for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    return json.dumps(obj)


def tool_versions() -> dict:
    def dist(name):
        return importlib.metadata.version(name)

    png_line = [ln.strip() for ln in cv2.getBuildInformation().splitlines() if ln.strip().startswith("PNG:")]
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "pillow_libjpeg_turbo": features.version("libjpeg_turbo"),
        "pillow_zlib": features.version("zlib"),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "opencv-python-headless": dist("opencv-python-headless"),
        "cv2": cv2.__version__,
        "cv2_png": png_line[0] if png_line else None,
        "matplotlib": matplotlib.__version__,
        "grad-cam": dist("grad-cam"),
    }


def main() -> int:
    fl.quiet_warnings()
    torch.set_num_threads(1)
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True)
    out = Out()

    images = make_fixtures(out)
    decoded = decode_goldens(out, images)
    preproc = preprocessing_goldens(out)
    cmaps = colormap_goldens(out)
    whole = whole_path_goldens(out, preproc)

    files = dict(sorted(out.files.items()))
    for name, details in images.items():  # fixture images: their details live in their file entry
        files[name].update(details)
    manifest = {
        "generator": "tools/export_image_goldens.py",
        "tools": tool_versions(),
        "format": "paths relative to Fixtures/images/; .npy = numpy format 1.0, C order, little-endian; image "
                  "sizes are width x height; every preprocessing / overlay input is "
                  "Image.open(path).convert('RGB'); files{} lists every file with its size and meaning",
        "decode": {
            **decoded,
            "notes": [
                "decoded/<stem>.npy is what PIL's Image.open(f).convert('RGB') gives.",
                "LA and RGBA: convert('RGB') drops alpha (no compositing onto any background, no premultiply).",
                "P: plain palette lookup.",
                "16-bit RGB PNG: PIL opens it as mode RGB keeping the HIGH byte of each sample "
                "(raw16 >> 8), not round(raw16 / 257).",
                "16-bit gray PNG: PIL opens it as mode I;16 and convert('RGB') CLIPS to min(raw16, 255); the "
                "Swift decoder intentionally takes the high byte instead: compare it with "
                "decoded/gray16_highbyte.npy, not decoded/gray16.npy.",
                "JPEGs are decoded by PIL's bundled libjpeg-turbo with its defaults (islow IDCT, fancy "
                "upsampling for 4:2:0).",
                "cmyk.jpg is meant for error / unsupported-format tests; decoded/cmyk.npy only records what "
                "PIL makes of it.",
                "Error files: pil_errors records what PIL raises (ImageFile.LOAD_TRUNCATED_IMAGES off).",
            ],
        },
        "preprocessing": {
            "pipeline": "T.Compose([T.Resize(R), T.CenterCrop(C), T.ToTensor(), T.Normalize(mean, std)]) on the "
                        "PIL RGB image (torchvision.transforms v1, PIL backend); ToTensor = uint8 / 255 in float32, "
                        "Normalize = (x - mean) / std in float32",
            "geometry_rule": GEOMETRY_RULE,
            "sizes": [dict(R=r, C=c, why=why) for (r, c), why in PREPROC_SIZES],
            "deviations_from_brief": [
                "upscaling and padding use (200, 24) and (16, 24) instead of (200, 150) and (64, 100)",
                "float32 tensors at (73, 64) only for " + ", ".join(FLOAT_73_64_IMAGES) + "; gray8 and palette "
                "have the uint8 crop *_73_64_rgb.npy only (ToTensor + Normalize of it is the tensor)",
                "mean=std=0.5 (*_half) and no Normalize (*_nonorm) only for rgb8.png at (16, 24)",
                f"reason: size budget {SIZE_BUDGET} bytes for Fixtures/images",
            ],
            "files": preproc,
        },
        "colormaps": cmaps,
        "whole_path": {
            "recipe": "rgb = T.CenterCrop(C)(T.Resize(R)(Image.open(p).convert('RGB'))); "
                      "x = T.Normalize(imagenet)(T.ToTensor()(rgb)); pred = argmax(model(x[None])) (no_grad); "
                      "heat = GradCAM(model, target_layers, reshape_transform)(x[None], "
                      "[ClassifierOutputTarget(pred)])[0]; overlay = show_cam_on_image(np.float32(np.asarray(rgb)) "
                      "/ 255, heat, use_rgb=True); Image.fromarray(overlay).save(png). Guided: "
                      "gb = GuidedBackpropReLUModel(fresh model, 'cpu')(x[None], target_category=None); "
                      "guided = deprocess_image(gb); guided_gradcam = deprocess_image(cv2.merge([heat]*3) * gb). "
                      "(pytorch-grad-cam's cam.py writes these with cv2.imwrite, which would swap R and B in the "
                      "file; here they are saved with PIL, channels in input order.)",
            "show_cam_on_image": "heat8 = np.uint8(255 * mask) (truncation); jet = cvtColor(applyColorMap(heat8, "
                                 "COLORMAP_JET), BGR2RGB) / 255; cam = 0.5 * jet + 0.5 * img; cam = cam / "
                                 "np.max(cam) (renormalised by the overall max, all float32); "
                                 "np.uint8(255 * cam) (truncation)",
            "deprocess_image": "x = x - mean(x); x = x / (std(x) + 1e-5); x = x * 0.1 + 0.5; clip to [0, 1]; "
                               "np.uint8(x * 255) (truncation); mean/std over all elements (population std)",
            "models": whole,
        },
        "files": files,
    }
    (OUT_DIR / "manifest.json").write_text(compact_json(manifest) + "\n")

    total = sum(p.stat().st_size for p in OUT_DIR.rglob("*") if p.is_file())
    for group in ["", "decoded", "preprocessed", "colormaps", "overlays"]:
        files = [p for p in (OUT_DIR / group).glob("*") if p.is_file()] if group else \
            [p for p in OUT_DIR.glob("*") if p.is_file()]
        print(f"  {group or '(top level)':14s} {len(files):3d} files {sum(p.stat().st_size for p in files):8d} bytes")
    print(f"wrote {OUT_DIR}  total {total} bytes")
    if total >= SIZE_BUDGET:
        raise RuntimeError(f"Fixtures/images is {total} bytes, budget {SIZE_BUDGET}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        sys.exit(1)
