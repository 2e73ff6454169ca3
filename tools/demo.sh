#!/usr/bin/env bash
# The main job on a bundled model and images: GradCAM overlays a user can open.
# The bundled model is a tiny ResNet-style fixture with random weights, so the heatmaps show the
# pipeline working (they equal pytorch-grad-cam's), not anything the model learned.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build -c release --product shortcut-detect >&2
out=${1:-demo-output}
.build/release/shortcut-detect gradcam Fixtures/models/resnet_basic_ts17.onnx \
    --image Fixtures/images/rgb8.png --image Fixtures/images/photo420.jpg \
    --layer layer4 --resize 73 --out "$out" --panel --save-npy
echo "open $out/rgb8.png (overlay) or $out/rgb8_panel.png (original | heatmap | overlay)"
