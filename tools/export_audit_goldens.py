#!/usr/bin/env python3
"""Goldens for the trustworthy audit (issue 14): Fixtures/audit/goldens/.

Everything is computed on the committed planted-shortcut fixtures (Fixtures/audit, made by
tools/make_planted_shortcut.py): the 48 test images, used as they are (they already have the
models' 64x64 input size), ToTensor + Normalize(0.5, 0.5), the shortcut and the control model.

The two ONNX models are rebuilt as torch modules from their initializers (the exporter folded the
BatchNorms into the convolutions), checked against onnxruntime, so that pytorch-grad-cam can run on
exactly the committed weights.

Outputs (Fixtures/audit/goldens/):

  reference.json   per model:
    default_path     per image the prediction, the probabilities (onnxruntime) and the in-region
                     share of pytorch-grad-cam's GradCAM at features.2 (the audit's default path:
                     images of the input size used as they are)
    counterfactual   per fill (mean, blur, noise) and image: the region (mask.png) filled in the
                     preprocessed input as the audit defines it, then onnxruntime's prediction and
                     the probability of the originally predicted class; per group and per label
                     within a group: flip_rate, confidence_drop, accuracy, accuracy_counterfactual
    faithfulness     per image, pytorch-grad-cam 1.5.7's metrics on its own GradCAM maps with
                     ClassifierOutputSoftmaxTarget(predicted class): CamMultImageConfidenceChange,
                     DropInConfidence, IncreaseInConfidence, ROADMostRelevantFirst and
                     ROADLeastRelevantFirst at 20, 40, 60, 80, ROADCombined over those; and the
                     deletion and insertion AUCs by the definition below
    spray            shortkit-ml 0.1.0's SpRAyDetector (default settings) on the maps pooled to
                     32x32 (2x2 means), with the groups and labels: cluster count, labels, the
                     per-cluster summaries and its Clever-Hans flags
  cams_<model>.npy pytorch-grad-cam's maps of the first 8 images of each group ([16, 64, 64]), for
                   the metric tests that must start from the reference's own maps
  blur_img_000.npy torchvision's gaussian_blur of the first preprocessed image at the audit's sigma
                   ([3, 64, 64]): the blur fill and the insertion curve's start
  torch_random.json torch.randn draws for a few seeds (the generator ROAD's noise comes from)

Definitions the Swift side implements (Sources/Audit):
  seeds            counterfactual noise of sample i: torch.manual_seed((seed + 1000003 i) mod 2^32);
                   ROAD at percentile p, sample i: torch.manual_seed((seed + 1000003 i + 1 + 2 p
                   + (0 most relevant first, 1 least)) mod 2^32) right before the metric runs on
                   that one sample; seed = 0
  fills            mean: per channel the mean of the input outside the region; blur: torchvision's
                   gaussian_blur with sigma = max(H, W) / 16 and kernel 2 ceil(3 sigma) + 1 (reflect
                   padding); noise: per channel mean + std * z over the whole input (population
                   std), z = torch.randn(C, H, W) from the sample's seed
  deletion AUC     pixels ordered by the map, highest first (ties by position); 32 steps of
                   ceil(HW / 32) pixels; deleted pixels become 0 in every channel of the input;
                   the softmax probability of the class after each step (33 points, the first on
                   the intact input); AUC = (sum - first / 2 - last / 2) / 32 (RISE's trapezoid)
  insertion AUC    the same order and steps, starting from the blurred input (the blur fill's
                   Gaussian over the whole image) and putting the input's pixels back

The SpRAy reference runs in its own venv (numpy<2; see tools/export_detector_goldens.py):
--shortkit-python points at its interpreter (default tools/.venv-shortkit/bin/python).

Run with tools/.venv/bin/python tools/export_audit_goldens.py
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def spray_main(folder: str) -> int:
    """Runs inside shortkit-ml's venv: SpRAyDetector with its defaults on the pooled maps."""
    import importlib.metadata as md

    import importlib.util
    import types

    import numpy as np
    import shortcut_detect

    # The package's xai/__init__ and gradcam modules import torch, which this venv lacks and
    # SpRAyDetector never calls on precomputed heatmaps: load spray_detector.py by path with
    # empty stand-ins for those two modules.
    root = Path(shortcut_detect.__file__).parent
    xai = types.ModuleType("shortcut_detect.xai")
    xai.__path__ = [str(root / "xai")]
    gradcam = types.ModuleType("shortcut_detect.gradcam")
    gradcam.GradCAMHeatmapGenerator = type("GradCAMHeatmapGenerator", (), {})
    sys.modules.update({"shortcut_detect.xai": xai, "shortcut_detect.gradcam": gradcam})
    spec = importlib.util.spec_from_file_location("shortcut_detect.xai.spray_detector", root / "xai" / "spray_detector.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    SpRAyDetector = module.SpRAyDetector

    meta = json.loads((Path(folder) / "meta.json").read_text())
    out = {"versions": {p: md.version(p) for p in ("shortkit-ml", "numpy", "scipy", "scikit-learn")}}
    for name in ("shortcut", "control"):
        maps = np.load(Path(folder) / f"{name}.npy")
        detector = SpRAyDetector()
        detector.fit(maps, labels=np.asarray(meta["labels"]), group_labels=np.asarray(meta["groups"]))
        processed = detector._preprocess_heatmaps(maps)
        features = processed.reshape(len(maps), -1)
        affinity = detector._compute_affinity(features)
        degrees = affinity.sum(axis=1)
        inverse = np.diag(1.0 / np.sqrt(np.maximum(degrees, 1e-8)))
        eigenvalues = np.sort(np.linalg.eigvalsh(np.eye(len(maps)) - inverse @ affinity @ inverse))
        out[name] = {
            "n_clusters": int(detector.results_["metrics"]["n_clusters"]),
            "cluster_labels": [int(c) for c in detector.cluster_labels_],
            "clusters": detector.results_["report"]["clusters"],
            "clever_hans": detector.results_["report"]["clever_hans"],
            "silhouette": detector.results_["metrics"]["silhouette"],
            "laplacian_eigenvalues": [float(v) for v in eigenvalues[:12]],
            "focus": [float(v) for v in detector._compute_focus_scores(processed)],
        }
    (Path(folder) / "spray.json").write_text(json.dumps(out, default=float))
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["--spray"]:
    # The SpRAy step runs in shortkit-ml's venv, which has none of the imports below.
    sys.exit(spray_main(sys.argv[2]))


from tvcompat import torchvision  # noqa: E402,F401  (must precede pytorch_grad_cam)

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torchvision.transforms.functional as TF  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from PIL import Image  # noqa: E402
from pytorch_grad_cam import GradCAM  # noqa: E402
from pytorch_grad_cam.metrics.cam_mult_image import (  # noqa: E402
    CamMultImageConfidenceChange, DropInConfidence, IncreaseInConfidence)
from pytorch_grad_cam.metrics.road import (  # noqa: E402
    ROADCombined, ROADLeastRelevantFirst, ROADMostRelevantFirst)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget  # noqa: E402

import fixturelib as fl  # noqa: E402

AUDIT = fl.REPO_DIR / "Fixtures" / "audit"
OUT = AUDIT / "goldens"
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
PERCENTILES = [20, 40, 60, 80]
SEED = 0
AUC_STEPS = 32
CAM_SAMPLES_PER_GROUP = 8


# --------------------------------------------------------------------------- model from ONNX


class Block(nn.Sequential):
    """features.k: Conv (BatchNorm folded in by the exporter), ReLU, optional MaxPool."""


def rebuild(path: Path) -> nn.Module:
    """The fixture's SmallCNN on the ONNX file's own weights, module paths as in training."""
    graph = onnx.load(str(path)).graph
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    pools = {n.name.split("/")[2] for n in graph.node if n.op_type == "MaxPool"}
    blocks = []
    for k, node in enumerate(convs):
        w, b = weights[node.input[1]], weights[node.input[2]]
        conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
        conv.weight.data.copy_(w)
        conv.bias.data.copy_(b)
        layers = [conv, nn.Identity(), nn.ReLU()]
        if f"features.{k}" in pools:
            layers.append(nn.MaxPool2d(2))
        blocks.append(Block(*layers))
    gemm = next(n for n in graph.node if n.op_type == "Gemm")
    linear = nn.Linear(weights[gemm.input[1]].shape[1], weights[gemm.input[1]].shape[0])
    linear.weight.data.copy_(weights[gemm.input[1]])
    linear.bias.data.copy_(weights[gemm.input[2]])

    class SmallCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*blocks)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = linear

        def forward(self, x):
            return self.classifier(torch.flatten(self.pool(self.features(x)), 1))

    return SmallCNN().eval()


def ort_session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- definitions


def sample_seed(index: int, stream: int = 0) -> int:
    return (SEED + 1000003 * index + stream) % (1 << 32)


def road_seed(index: int, percentile: int, most: bool) -> int:
    return sample_seed(index, 1 + 2 * percentile + (0 if most else 1))


def blur(x: torch.Tensor) -> torch.Tensor:
    """[C, H, W] -> the audit's Gaussian blur (torchvision's gaussian_blur, reflect padding)."""
    h, w = x.shape[-2:]
    sigma = max(h, w) / 16
    kernel = 2 * math.ceil(3 * sigma) + 1
    return TF.gaussian_blur(x, [kernel, kernel], [sigma, sigma])


def fill(x: torch.Tensor, region: np.ndarray, kind: str, index: int) -> torch.Tensor:
    """One preprocessed input [C, H, W] with the region filled (float32 throughout)."""
    inside = torch.from_numpy(region)
    out = x.clone()
    if kind == "mean":
        for c in range(x.shape[0]):
            out[c][inside] = float(np.float32(x[c][~inside].double().mean().item()))
    elif kind == "blur":
        blurred = blur(x)
        out[:, inside] = blurred[:, inside]
    elif kind == "noise":
        torch.manual_seed(sample_seed(index))
        z = torch.randn(x.shape)
        for c in range(x.shape[0]):
            mean = torch.tensor(x[c].double().mean().item(), dtype=torch.float32)
            std = torch.tensor(x[c].double().std(unbiased=False).item(), dtype=torch.float32)
            out[c][inside] = mean + std * z[c][inside]
    else:
        raise ValueError(kind)
    return out


def causal_curve(model, x: torch.Tensor, cam: np.ndarray, target: int, insertion: bool) -> np.ndarray:
    """The class probability as pixels are deleted (or inserted), most relevant first."""
    c, h, w = x.shape
    order = np.argsort(-cam.reshape(-1), kind="stable")
    step = -(-h * w // AUC_STEPS)
    start = blur(x) if insertion else torch.zeros_like(x)
    finish = x if insertion else torch.zeros_like(x)
    current = (start if insertion else x).clone().reshape(c, -1)
    source = finish.reshape(c, -1)
    batch = [current.clone()]
    for k in range(1, AUC_STEPS + 1):
        chosen = torch.from_numpy(order[(k - 1) * step:k * step])
        current[:, chosen] = source[:, chosen]
        batch.append(current.clone())
    with torch.no_grad():
        logits = model(torch.stack(batch).reshape(-1, c, h, w))
    return torch.softmax(logits, dim=-1)[:, target].numpy().astype(np.float64)


def trapezoid(curve: np.ndarray) -> float:
    return float((curve.sum() - curve[0] / 2 - curve[-1] / 2) / (len(curve) - 1))


# --------------------------------------------------------------------------- summaries


def rate(values) -> float | None:
    values = list(values)
    return float(np.mean(values)) if values else None


def aggregate(rows: list[dict]) -> dict:
    """flip_rate, confidence_drop, accuracy, accuracy_counterfactual over some samples."""
    out = {
        "n": len(rows),
        "flip_rate": rate(r["predicted_cf"] != r["predicted"] for r in rows),
        "confidence_drop": rate(r["confidence"] - r["confidence_cf"] for r in rows),
    }
    labelled = [r for r in rows if r["label"] is not None]
    if labelled:
        out["accuracy"] = rate(r["predicted"] == r["label"] for r in labelled)
        out["accuracy_counterfactual"] = rate(r["predicted_cf"] == r["label"] for r in labelled)
    return out


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shortkit-python", default=str(fl.TOOLS_DIR / ".venv-shortkit" / "bin" / "python"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    rows = [line.split(",") for line in (AUDIT / "groups.csv").read_text().splitlines()[1:]]
    files = [r[0] for r in rows]
    groups = [r[1] for r in rows]
    labels = [int(r[2]) for r in rows]
    images = [np.array(Image.open(AUDIT / "images" / f).convert("RGB")) for f in files]
    x = torch.stack([TF.normalize(TF.to_tensor(img), MEAN, STD) for img in images])
    region = np.asarray(Image.open(AUDIT / "mask.png").convert("L")) > 127
    cam_rows = [i for g in sorted(set(groups)) for i in [j for j in range(len(files)) if groups[j] == g][:CAM_SAMPLES_PER_GROUP]]
    OUT.mkdir(parents=True, exist_ok=True)
    fl.save_npy(OUT / "blur_img_000.npy", blur(x[0]).numpy())

    reference = {
        "generator": "tools/export_audit_goldens.py",
        "tool_versions": {**fl.tool_versions(), "grad-cam": importlib.metadata.version("grad-cam"),
                          "scipy": importlib.metadata.version("scipy")},
        "files": files, "groups": groups, "labels": labels,
        "settings": {"seed": SEED, "road_percentiles": PERCENTILES, "auc_steps": AUC_STEPS,
                     "layer": "features.2", "preprocess": "half", "cam_rows": cam_rows},
        "models": {},
    }
    pooled_maps = {}
    for name in ("shortcut", "control"):
        path = AUDIT / f"{name}.onnx"
        model = rebuild(path)
        ort_logits = ort_session(path).run(["logits"], {"input": x.numpy()})[0]
        with torch.no_grad():
            torch_logits = model(x).numpy()
        assert np.abs(torch_logits - ort_logits).max() < 1e-5, "rebuilt model differs from onnxruntime"
        probabilities = softmax(ort_logits)
        predicted = ort_logits.argmax(1)

        with GradCAM(model=model, target_layers=[model.features[2]]) as cam:
            cams = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in predicted])
        sums = cams.astype(np.float64).reshape(len(cams), -1).sum(1)
        inside = (cams.astype(np.float64) * region).reshape(len(cams), -1).sum(1)
        in_mask = np.where(sums > 0, inside / np.where(sums > 0, sums, 1), 0)
        fl.save_npy(OUT / f"cams_{name}.npy", cams[cam_rows])
        pooled_maps[name] = cams.reshape(len(cams), 32, 2, 32, 2).mean(axis=(2, 4)).astype(np.float32)

        entry = {
            "ort_vs_rebuilt_max_abs_diff": float(np.abs(torch_logits - ort_logits).max()),
            "default_path": [
                {"file": f, "predicted": int(p), "probabilities": [float(v) for v in prob], "in_mask": float(m)}
                for f, p, prob, m in zip(files, predicted, probabilities, in_mask)
            ],
        }

        # ---- counterfactual
        session = ort_session(path)
        counterfactual = {}
        for kind in ("mean", "blur", "noise"):
            filled = torch.stack([fill(x[i], region, kind, i) for i in range(len(files))])
            cf_logits = session.run(["logits"], {"input": filled.numpy()})[0]
            cf_prob = softmax(cf_logits)
            samples = [
                {"file": files[i], "group": groups[i], "label": labels[i], "predicted": int(predicted[i]),
                 "confidence": float(probabilities[i, predicted[i]]), "predicted_cf": int(cf_logits[i].argmax()),
                 "confidence_cf": float(cf_prob[i, predicted[i]])}
                for i in range(len(files))
            ]
            summary = {}
            for g in sorted(set(groups)):
                members = [s for s in samples if s["group"] == g]
                summary[g] = aggregate(members)
                summary[g]["by_label"] = {str(lab): aggregate([s for s in members if s["label"] == lab])
                                          for lab in sorted({s["label"] for s in members})}
            counterfactual[kind] = {"samples": samples, "groups": summary}
        entry["counterfactual"] = counterfactual

        # ---- faithfulness (pytorch-grad-cam's metrics, one sample per call so each has its seed)
        per_image = []
        for i in range(len(files)):
            xi, ci = x[i:i + 1], cams[i:i + 1]
            targets = [ClassifierOutputSoftmaxTarget(int(predicted[i]))]
            row = {
                "cam_mult_confidence_change": float(CamMultImageConfidenceChange()(xi, ci, targets, model)[0]),
                "drop_in_confidence": float(DropInConfidence()(xi, ci, targets, model)[0]),
                "increase_in_confidence": float(IncreaseInConfidence()(xi, ci, targets, model)[0]),
                "road_most_relevant_first": {}, "road_least_relevant_first": {},
            }
            for p in PERCENTILES:
                torch.manual_seed(road_seed(i, p, True))
                row["road_most_relevant_first"][str(p)] = float(ROADMostRelevantFirst(p)(xi, ci, targets, model)[0])
                torch.manual_seed(road_seed(i, p, False))
                row["road_least_relevant_first"][str(p)] = float(ROADLeastRelevantFirst(p)(xi, ci, targets, model)[0])
            # ROADCombined draws its noise in its own order (least relevant first at every
            # percentile, then most relevant first), so it is recomputed here from the per-call
            # values exactly as ROADCombined combines them: float32 means, halved difference.
            lerf = np.mean(np.float32([row["road_least_relevant_first"][str(p)] for p in PERCENTILES]), axis=0)
            morf = np.mean(np.float32([row["road_most_relevant_first"][str(p)] for p in PERCENTILES]), axis=0)
            row["road_combined"] = float((lerf - morf) / 2)
            row["deletion_auc"] = trapezoid(causal_curve(model, x[i], cams[i], int(predicted[i]), insertion=False))
            row["insertion_auc"] = trapezoid(causal_curve(model, x[i], cams[i], int(predicted[i]), insertion=True))
            per_image.append(row)
        entry["faithfulness"] = per_image
        # ROADCombined itself, on the same maps with its own noise order, to show the recombination
        # above is what it computes (equal up to the noise it draws).
        torch.manual_seed(SEED)
        combined = ROADCombined(percentiles=PERCENTILES)(
            x, cams, [ClassifierOutputSoftmaxTarget(int(c)) for c in predicted], model)
        entry["road_combined_library_batch"] = [float(v) for v in combined]
        reference["models"][name] = entry
        print(f"{name}: done", flush=True)

    # ---- SpRAy in shortkit-ml's venv
    with tempfile.TemporaryDirectory() as tmp:
        for name, maps in pooled_maps.items():
            np.save(Path(tmp) / f"{name}.npy", maps)
        (Path(tmp) / "meta.json").write_text(json.dumps({"groups": groups, "labels": labels}))
        result = subprocess.run([args.shortkit_python, str(Path(__file__).resolve()), "--spray", tmp],
                                capture_output=True, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stderr)
            return 1
        spray = json.loads((Path(tmp) / "spray.json").read_text())
    for name in pooled_maps:
        reference["models"][name]["spray"] = spray[name]
    reference["tool_versions"]["shortkit-ml"] = spray["versions"]

    # ---- torch's generator, for the imputer's noise
    draws = {}
    for seed in (0, 7, 1000004, 4294967295):
        torch.manual_seed(seed)
        strided = torch.randn_like(torch.zeros(21, 3).t())  # ROAD's randn_like(res.t()): not contiguous
        torch.manual_seed(seed)
        contiguous = torch.randn(37)  # a contiguous float tensor of 16 or more: the vectorized fill
        draws[str(seed)] = {"strided_memory_order": strided.t().contiguous().reshape(-1).tolist(),
                            "contiguous": contiguous.tolist()}
    (OUT / "torch_random.json").write_text(json.dumps({"torch": torch.__version__, "draws": draws}, indent=1) + "\n")

    (OUT / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
