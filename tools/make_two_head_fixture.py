#!/usr/bin/env python3
"""A tiny two-head classifier and the attention-overlap goldens of `compare-heads`: Fixtures/heads/.

The seed's reference library (shortkit-ml 0.1.0, `shortcut_detect/gradcam.py`) compares where a
model looks to predict the disease with where it looks to predict a protected attribute: GradCAM
of each head, then `GradCAMHeatmapGenerator.calculate_overlap` (Dice and IoU of the maps
thresholded at 0.5, cosine similarity of the maps).

The model: features.0 = Conv3x3(3->8)+BN+ReLU, features.1 = Conv3x3(8->16, stride 2)+BN+ReLU,
global average pooling, then two Linear heads: "disease" (3 classes) and "attribute" (2 classes).
Seeded random weights and BatchNorm statistics; TorchScript exporter (dynamo=False), opset 17,
input "input" [N, 3, 32, 32] with a dynamic batch, outputs "disease" and "attribute".

Outputs (Fixtures/heads/, regenerated from scratch):
  two_head.onnx          the model
  input.npy              float32 [4, 3, 32, 32], seeded N(0, 1)
  gradcam_disease.npy    pytorch-grad-cam GradCAM at features.1 of each head (its argmax class),
  gradcam_attribute.npy  float32 [4, 32, 32]: the maps our generator reproduces
  manifest.json          versions, per-head logits (onnxruntime) and classes, and the reference's
                         calculate_overlap(disease, attribute, 0.5) per image and over the batch,
                         on the two pytorch-grad-cam maps; for information also the reference's
                         own generate_attention_overlap (its GradCAM normalizes after upsampling)

The reference's gradcam.py is loaded by file path from tools/.venv-shortkit (see
tools/export_detector_goldens.py for that venv); it needs only numpy and torch, which this venv has.

Run with tools/.venv/bin/python tools/make_two_head_fixture.py
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tvcompat import torchvision  # noqa: E402,F401  (must precede pytorch_grad_cam)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from pytorch_grad_cam import GradCAM  # noqa: E402

import fixturelib as fl  # noqa: E402

OUT = fl.REPO_DIR / "Fixtures" / "heads"
SEED = 20241130
REFERENCE = fl.TOOLS_DIR / ".venv-shortkit" / "lib" / "python3.11" / "site-packages" / "shortcut_detect" / "gradcam.py"


class TwoHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()),
            nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, stride=2, bias=False), nn.BatchNorm2d(16), nn.ReLU()),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.disease = nn.Linear(16, 3)
        self.attribute = nn.Linear(16, 2)

    def forward(self, x):
        p = self.pool(self.features(x)).flatten(1)
        return self.disease(p), self.attribute(p)


class Head(nn.Module):
    """One output of the two-head model, for pytorch-grad-cam."""

    def __init__(self, model: TwoHead, index: int) -> None:
        super().__init__()
        self.model = model
        self.index = index

    def forward(self, x):
        return self.model(x)[self.index]


def build() -> TwoHead:
    torch.manual_seed(SEED)
    model = TwoHead()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    return model.eval()


def load_reference():
    if not REFERENCE.exists():
        sys.exit(f"{REFERENCE} is missing: set up tools/.venv-shortkit as tools/export_detector_goldens.py describes")
    spec = importlib.util.spec_from_file_location("shortkit_gradcam", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main() -> None:
    torch.set_num_threads(1)
    fl.quiet_warnings()
    reference = load_reference()
    model = build()
    x = torch.from_numpy(np.random.RandomState(SEED).randn(4, 3, 32, 32).astype(np.float32))

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    path = OUT / "two_head.onnx"
    torch.onnx.export(
        model, (x[:2],), str(path), dynamo=False, opset_version=17, input_names=["input"],
        output_names=["disease", "attribute"],
        dynamic_axes={"input": {0: "batch"}, "disease": {0: "batch"}, "attribute": {0: "batch"}},
        do_constant_folding=True,
    )
    fl.save_npy(OUT / "input.npy", x.numpy())

    session = fl.ort_session(str(path))
    ort_disease, ort_attribute = session.run(["disease", "attribute"], {"input": x.numpy()})
    with torch.no_grad():
        torch_disease, torch_attribute = model(x)
    ort_diff = max(float(np.abs(ort_disease - torch_disease.numpy()).max()), float(np.abs(ort_attribute - torch_attribute.numpy()).max()))
    assert ort_diff < 1e-5, f"onnxruntime and torch disagree by {ort_diff}"

    maps = {}
    for index, name in enumerate(["disease", "attribute"]):
        with GradCAM(model=Head(model, index), target_layers=[model.features[1]]) as cam:
            maps[name] = cam(input_tensor=x, targets=None).astype(np.float32)
        fl.save_npy(OUT / f"gradcam_{name}.npy", maps[name])

    overlap = reference.GradCAMHeatmapGenerator.calculate_overlap
    per_image = [overlap(maps["disease"][n], maps["attribute"][n], 0.5) for n in range(x.shape[0])]
    batch = overlap(maps["disease"], maps["attribute"], 0.5)

    generator = reference.GradCAMHeatmapGenerator(
        model, target_layer="features.1", head_mappings={"disease": 0, "attribute": 1}, device=torch.device("cpu"))
    own = generator.generate_attention_overlap(x, disease_head="disease", attribute_head="attribute")

    manifest = {
        "generator": "tools/make_two_head_fixture.py",
        "model": {"file": "two_head.onnx", "layer": "features.1", "outputs": ["disease", "attribute"], "seed": SEED},
        "tool_versions": {**fl.tool_versions(), "grad-cam": __import__("importlib.metadata").metadata.version("grad-cam"),
                          "reference": "shortkit-ml 0.1.0 shortcut_detect/gradcam.py (loaded by path)"},
        "ort_vs_torch_max_abs_diff": ort_diff,
        "classes": {"disease": ort_disease.argmax(1).tolist(), "attribute": ort_attribute.argmax(1).tolist()},
        "threshold": 0.5,
        "overlap_per_image": per_image,
        "overlap_mean": batch,
        "reference_own_maps_overlap": own.metrics,
    }
    with open(OUT / "manifest.json", "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")
    print(json.dumps({"per_image": per_image, "mean": batch, "reference_own": own.metrics}, indent=1))


if __name__ == "__main__":
    main()
