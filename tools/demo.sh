#!/usr/bin/env bash
# The main job on bundled models and images: audit a model trained with a planted shortcut against a
# control trained without it, then draw GradCAM overlays a user can open.
#
# Fixtures/audit holds two small CNNs trained on the same shapes (tools/make_planted_shortcut.py):
# "shortcut" saw a watermark in the corner of every label-1 image of group A, "control" saw it at
# random. The audit should catch the first (attention in the region, predictions that change when the
# region is filled) and clear the second.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build -c release --product shortcut-detect >&2
out=${1:-demo-output}  # replaced on each run (--overwrite: a new result replaces the old only once complete)
bin=.build/release/shortcut-detect
for model in shortcut control; do
    echo "== audit of the $model model"
    # The images are 64x64, the models' input size: used as they are. --preprocess half is the
    # models' Normalize(0.5, 0.5); mask.png has the images' size, so it is read in image coordinates.
    "$bin" audit "Fixtures/audit/$model.onnx" --images Fixtures/audit/images --groups Fixtures/audit/groups.csv \
        --layer features.2 --mask Fixtures/audit/mask.png --preprocess half --counterfactual mean --spray \
        --out "$out/audit-$model" --overwrite
done
echo "== GradCAM overlays (a tiny ResNet with random weights: the pipeline, not a trained model's attention)"
"$bin" gradcam Fixtures/models/resnet_basic_ts17.onnx \
    --image Fixtures/images/rgb8.png --image Fixtures/images/photo420.jpg \
    --layer layer4 --out "$out/overlays" --panel --save-npy --overwrite
echo "open $out/audit-shortcut/report.html and $out/audit-control/report.html (the audits),"
echo "or $out/overlays/rgb8_panel.png (original | heatmap | overlay)"
