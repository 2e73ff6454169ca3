#!/usr/bin/env bash
# Installs the Debian packages the Swift build links against, when they are missing:
# protobuf-c (ONNX decoding), OpenBLAS (matrix products), libpng, zlib and libjpeg-turbo's TurboJPEG
# API (image files), and pkg-config (to find them all).
# protobuf-c-compiler is only needed to regenerate the decoder (tools/generate-proto.sh).
set -euo pipefail
packages=(pkg-config libprotobuf-c-dev libopenblas-dev libpng-dev zlib1g-dev libturbojpeg0-dev)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
