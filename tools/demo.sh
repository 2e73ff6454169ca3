#!/usr/bin/env bash
# The main job on a bundled model: describe it, then run it forward on a bundled batch of two
# images and save the logits and the last residual stage's activations.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build -c release --product shortcut-detect >&2
bin=.build/release/shortcut-detect
model=Fixtures/models/resnet_basic_ts17.onnx
out=${1:-demo-output}
mkdir -p "$out"
"$bin" inspect "$model"
echo
"$bin" run "$model" --input Fixtures/models/inputs/resnet_basic.npy --output "$out/logits.npy" \
    --tap "/layer4/layer4.0/relu_1/Relu_output_0=$out/layer4.npy"
