#!/usr/bin/env python3
"""Goldens for the embedding detectors (Sources/Detectors) from the reference, shortkit-ml 0.1.0.

The reference library (import name `shortcut_detect`) is the one the seed document describes.  It
pins numpy<2, which conflicts with tools/.venv (numpy 2.4.6), so it lives in a venv of its own.
This script installs nothing; set the venv up once with:

    python3.11 -m venv tools/.venv-shortkit
    tools/.venv-shortkit/bin/pip install --no-deps shortkit-ml==0.1.0
    tools/.venv-shortkit/bin/pip install "numpy<2" "pandas>=2,<3" scikit-learn scipy statsmodels matplotlib plotly seaborn

(`--no-deps` because shortkit-ml also requires torch<2.3, gradio, weasyprint and more that the
detectors never import; seaborn because its package __init__ imports the plotting module; pandas<3
is its own pin. The versions actually used are recorded in the manifest.)

Data sets (inputs, float32 [N, D] .npy plus groups.csv; the reference runs on exactly these
float32 values, widened to float64 as it does itself):

  linear      datasets.generate_linear_shortcut(n_samples=400, embedding_dim=64, shortcut_dims=5, seed=42)
  nonlinear   datasets.generate_nonlinear_shortcut(n_samples=500, embedding_dim=64, seed=42)
              (concentric circles in dimensions 0 and 1: the linear probe cannot see it)
  multiclass  datasets.generate_multiclass_shortcut(n_samples=450, embedding_dim=32, n_classes=3, seed=42)
  none        datasets.generate_no_shortcut(n_samples=400, embedding_dim=64, seed=42)
  planted_shortcut, planted_control
              the planted-shortcut fixture models (Fixtures/audit, tools/make_planted_shortcut.py):
              our `shortcut-detect embed` of the 48 fixture images at features.2 (global-average
              pooled, [48, 64]), groups A/B and the shape labels from Fixtures/audit/groups.csv.
              Needs the built binary (swift build; --binary to point elsewhere).

Group names are "g<k>" for the generators' integer labels (so names sort like the integers) and
A/B for the planted sets.  The reference runs as the seed uses it:
`ShortcutDetector(methods=['hbac', 'probe', 'statistical', 'geometric'], seed=42).fit(X, groups)`
(groups passed as the labels, so every method works on the groups), default settings otherwise.

Outputs per data set, in Fixtures/detectors/<name>/:
  embeddings.npy, groups.csv   the inputs (groups.csv: group[,label])
  reference.json               per method the reference's numbers (see `run_reference`), the split
                               indices sklearn / numpy drew (so the Swift port of the samplers is
                               checked exactly), every Mann-Whitney p-value, the overall verdict
Fixtures/detectors/functions.json  SciPy / statsmodels on small cases the data sets do not reach:
                               mannwhitneyu on small samples (exact), ties, a constant column and
                               one tiny side; f.sf; multipletests(fdr_bh) on seeded p-values.
Fixtures/detectors/manifest.json  data sets, settings, tool versions.

Run with tools/.venv-shortkit/bin/python tools/export_detector_goldens.py
"""
from __future__ import annotations

import argparse
import csv
import importlib.metadata
import io
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

TOOLS_DIR = Path(__file__).resolve().parent
REPO_DIR = TOOLS_DIR.parent
OUT_DIR = REPO_DIR / "Fixtures" / "detectors"
SEED = 42
METHODS = ["hbac", "probe", "statistical", "geometric"]


def generated_sets() -> dict:
    from shortcut_detect import datasets as ds

    sets = {
        "linear": ds.generate_linear_shortcut(n_samples=400, embedding_dim=64, shortcut_dims=5, seed=42),
        "nonlinear": ds.generate_nonlinear_shortcut(n_samples=500, embedding_dim=64, seed=42),
        "multiclass": ds.generate_multiclass_shortcut(n_samples=450, embedding_dim=32, n_classes=3, seed=42),
        "none": ds.generate_no_shortcut(n_samples=400, embedding_dim=64, seed=42),
    }
    return {
        name: (np.asarray(x, dtype=np.float32), np.array([f"g{int(v)}" for v in y]), None)
        for name, (x, y) in sets.items()
    }


def planted_sets(binary: Path) -> dict:
    audit = REPO_DIR / "Fixtures" / "audit"
    with open(audit / "groups.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    result = {}
    for model in ("shortcut", "control"):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "emb.npy"
            subprocess.run(
                [str(binary), "embed", str(audit / f"{model}.onnx"), "--images", str(audit / "images"),
                 "--layer", "features.2", "--preprocess", "half", "--resize", "64", "--out", str(out)],
                check=True, stdout=subprocess.DEVNULL)
            x = np.load(out)
            files = (Path(tmp) / "emb.files.txt").read_text().split()
        by_file = {r["file"]: r for r in rows}
        groups = np.array([by_file[f]["group"] for f in files])
        labels = np.array([int(by_file[f]["label"]) for f in files])
        result[f"planted_{model}"] = (np.asarray(x, dtype=np.float32), groups, labels)
    return result


def run_reference(x32: np.ndarray, groups: np.ndarray) -> dict:
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelEncoder

    from shortcut_detect import ShortcutDetector

    x = x32.astype(np.float64)
    with redirect_stdout(io.StringIO()):
        detector = ShortcutDetector(methods=METHODS, seed=SEED).fit(x, groups)
    results = detector.get_results()
    assessment = detector._generate_overall_assessment()
    overall = "high" if "HIGH RISK" in assessment else "moderate" if "MODERATE RISK" in assessment else "low"

    # Probe: the reference's own numbers, plus accuracy and ROC AUC of its fitted estimator on its holdout.
    probe = results["probe"]
    report = probe["results"]
    y = LabelEncoder().fit_transform(groups)
    idx = np.arange(len(y))
    train_idx, test_idx = train_test_split(idx, test_size=0.2, stratify=y, random_state=SEED)
    est = probe["detector"].estimator_
    proba = est.predict_proba(x[test_idx])
    pred = est.predict(x[test_idx])
    assert np.array_equal(pred, probe["detector"].y_pred_eval_), "the holdout split was not reproduced"
    roc = roc_auc_score(y[test_idx], proba[:, 1]) if proba.shape[1] == 2 else roc_auc_score(
        y[test_idx], proba, average="macro", multi_class="ovr")
    probe_out = {
        "metric": report["metrics"]["metric"], "value": report["metrics"]["metric_value"],
        "threshold": report["metrics"]["threshold"], "detected": bool(report["shortcut_detected"]),
        "risk": probe["risk_value"], "average": report["metadata"]["average"],
        "accuracy": float(accuracy_score(y[test_idx], pred)), "roc_auc": float(roc),
        "train_indices": train_idx.tolist(), "test_indices": test_idx.tolist(),
        "risk_indicators": probe["risk_indicators"],
    }

    stat = results["statistical"]
    comparisons = []
    for key, pvals in stat["p_values"].items():
        raw = stat["significant_features_raw"][key] or []
        corrected = stat["significant_features"][key] or []
        comparisons.append({
            "key": key, "p_values": [float(p) for p in pvals], "significant_uncorrected": len(raw),
            "significant": len(corrected), "features": [int(i) for i in corrected],
        })
    stat_out = {"risk": stat["risk_value"], "comparisons": comparisons, "risk_indicators": stat["risk_indicators"]}

    hbac = results["hbac"]
    h = hbac["detector"]
    info = hbac["report"]["has_shortcut"]
    hbac_out = {
        "detected": bool(info["exists"]), "confidence": info["confidence"], "types": info["types"],
        "risk": hbac["risk_value"], "clusters": len(h.clusters_),
        "cluster_sizes": sorted(int(len(c["data_indices"])) for c in h.clusters_),
        "purities": sorted(float(c["purity"]) for c in hbac["report"]["cluster_purities"]),
        "high_purity_clusters": int(info["evidence"]["high_purity_clusters"]),
        "important_dims_ratio": float(info["evidence"]["important_dims_ratio"]),
        "linear_test_accuracy": float(info["evidence"]["linear_test_accuracy"]),
        "test_indices": [int(i) for i in h.test_indices], "train_indices": [int(i) for i in h.train_indices],
        "risk_indicators": hbac["risk_indicators"],
    }

    geo = results["geometric"]
    geo_out = {
        "risk": geo["risk_value"],
        "bias_pairs": [{"groups": list(p.groups), "effect_size": p.effect_size, "alignment": p.alignment_score,
                        "direction_norm": p.direction_norm, "projection_gap": p.projection_gap}
                       for p in geo["bias_pairs"]],
        "subspace_pairs": [{"groups": list(p.groups), "mean_cosine": p.mean_cosine, "min_angle_deg": p.min_angle_deg,
                            "max_angle_deg": p.max_angle_deg} for p in geo["subspace_pairs"]],
        "risk_indicators": geo["risk_indicators"],
    }
    return {
        "n": int(x.shape[0]), "dim": int(x.shape[1]), "groups": sorted(set(groups.tolist())),
        "methods": {"probe": probe_out, "statistical": stat_out, "hbac": hbac_out, "geometric": geo_out},
        "overall": {"risk": overall, "assessment": assessment},
    }


def function_cases() -> dict:
    """Reference values of the statistics on cases chosen to reach every branch."""
    from scipy.stats import f as fdist
    from scipy.stats import mannwhitneyu
    from statsmodels.stats.multitest import multipletests

    rng = np.random.RandomState(7)
    samples = {
        "exact_small": (rng.randn(5), rng.randn(7) + 1.0),
        "exact_one_small": (rng.randn(3) + 0.5, rng.randn(40)),
        "exact_equal": (np.array([1.0, 4.0, 6.0]), np.array([2.0, 3.0, 5.0])),
        "ties_small": (np.array([1.0, 2.0, 2.0, 3.0]), np.array([2.0, 3.0, 3.0, 4.0, 5.0])),
        "asymptotic": (rng.randn(30), rng.randn(25) + 0.4),
        "asymptotic_ties": (np.round(rng.randn(40) * 2) / 2, np.round(rng.randn(35) * 2 + 0.5) / 2),
        "constant": (np.zeros(12), np.zeros(15)),
        "separated": (rng.randn(50), rng.randn(50) + 10.0),
    }
    mwu = []
    for name, (x, y) in samples.items():
        res = mannwhitneyu(x, y)
        mwu.append({"name": name, "x": x.tolist(), "y": y.tolist(), "u": float(res.statistic), "p": float(res.pvalue)})
    f_cases = [(f, d1, d2) for f in (0.0, 0.3, 1.0, 2.5, 7.0, 40.0) for d1, d2 in ((1, 10), (2, 97), (3, 396), (5, 30))]
    f_sf = [{"f": f, "d1": d1, "d2": d2, "sf": float(fdist.sf(f, d1, d2))} for f, d1, d2 in f_cases]
    p = np.concatenate([rng.uniform(0, 1, 40), rng.uniform(0, 0.002, 8), [0.05, 0.05, 1.0]])
    reject = multipletests(p, alpha=0.05, method="fdr_bh")[0]
    return {"mannwhitneyu": mwu, "f_sf": f_sf, "fdr_bh": {"p": p.tolist(), "reject": reject.tolist()}}


def tool_versions() -> dict:
    names = ["shortkit-ml", "numpy", "scipy", "scikit-learn", "statsmodels", "pandas"]
    return {"python": platform.python_version(), **{n: importlib.metadata.version(n) for n in names}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", type=Path, default=REPO_DIR / ".build" / "debug" / "shortcut-detect",
                        help="the built shortcut-detect, for the planted sets' embeddings")
    args = parser.parse_args()
    if not args.binary.exists():
        sys.exit(f"{args.binary} is missing: run `swift build` first (or pass --binary)")

    sets = generated_sets()
    sets.update(planted_sets(args.binary))
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    manifest = {"generator": "tools/export_detector_goldens.py", "reference": "shortkit-ml 0.1.0 (import shortcut_detect)",
                "call": f"ShortcutDetector(methods={METHODS}, seed={SEED}).fit(embeddings.astype(float64), groups)",
                "tool_versions": tool_versions(), "sets": {}}
    for name, (x, groups, labels) in sets.items():
        folder = OUT_DIR / name
        folder.mkdir(parents=True)
        np.save(folder / "embeddings.npy", np.ascontiguousarray(x, dtype="<f4"))
        with open(folder / "groups.csv", "w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["group"] + (["label"] if labels is not None else []))
            for i, g in enumerate(groups):
                writer.writerow([g] + ([int(labels[i])] if labels is not None else []))
        reference = run_reference(x, groups)
        with open(folder / "reference.json", "w") as fh:
            json.dump(reference, fh, indent=1, sort_keys=True)
            fh.write("\n")
        m = reference["methods"]
        manifest["sets"][name] = {"n": reference["n"], "dim": reference["dim"], "groups": reference["groups"],
                                  "overall": reference["overall"]["risk"]}
        print(f"{name:17s} n={reference['n']:4d} d={reference['dim']:3d} probe f1={m['probe']['value']:.3f} "
              f"stat={[c['significant'] for c in m['statistical']['comparisons']]} hbac={m['hbac']['detected']}/"
              f"{m['hbac']['risk']} geo={m['geometric']['risk']} overall={reference['overall']['risk']}")
    with open(OUT_DIR / "functions.json", "w") as fh:
        json.dump(function_cases(), fh, indent=1, sort_keys=True)
        fh.write("\n")
    with open(OUT_DIR / "manifest.json", "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")


if __name__ == "__main__":
    main()
