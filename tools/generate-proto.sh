#!/usr/bin/env bash
# Regenerates the committed C decoder for our onnx.proto subset with protoc-c (Debian: protobuf-c-compiler).
# Run after editing Sources/CONNXProto/proto/onnx.proto; commit the generated files.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target="$root/Sources/CONNXProto"
command -v protoc-c >/dev/null || { echo "protoc-c not found: apt-get install protobuf-c-compiler" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
protoc-c --proto_path="$target/proto" --c_out="$tmp" "$target/proto/onnx.proto"
mv "$tmp/onnx.pb-c.c" "$target/onnx.pb-c.c"
mv "$tmp/onnx.pb-c.h" "$target/include/onnx.pb-c.h"
echo "generated with $(protoc-c --version | head -n 1)"
