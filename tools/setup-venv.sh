#!/usr/bin/env bash
# Create tools/.venv and install tools/requirements.txt into it.
# Idempotent: a second run with unchanged requirements does nothing.
#   PYTHON=python3.11 tools/setup-venv.sh      # choose the interpreter (must be 3.11: cp311 torch wheel)
#   tools/setup-venv.sh --force                # reinstall even if the stamp says up to date
set -euo pipefail

tools_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$tools_dir/.venv"
requirements="$tools_dir/requirements.txt"
stamp="$venv/.requirements.sha256"
wheels="${WHEEL_DIR:-/opt/wheels}"

python="${PYTHON:-}"
if [ -z "$python" ]; then
    if command -v python3.11 >/dev/null 2>&1; then python=python3.11; else python=python3; fi
fi
version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$version" != "3.11" ]; then
    echo "setup-venv: $python is Python $version; the pinned torch wheel needs 3.11 (set PYTHON=...)" >&2
    exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "setup-venv: creating $venv"
    "$python" -m venv "$venv"
fi

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ "${1:-}" != "--force" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "setup-venv: $venv is up to date"
    exit 0
fi

find_links=()
if [ -d "$wheels" ]; then
    find_links=(--find-links "$wheels")
else
    echo "setup-venv: warning: $wheels not found; torch==2.13.0+cpu must come from another find-links" >&2
fi

"$venv/bin/python" -m pip install --disable-pip-version-check --quiet "${find_links[@]}" -r "$requirements"
(cd "$tools_dir" && "$venv/bin/python" -c "from tvcompat import torchvision; import torch, timm, onnx, onnxruntime, onnxscript, numpy; print('setup-venv: ok: torch', torch.__version__, 'torchvision', torchvision.__version__, 'onnx', onnx.__version__, 'onnxruntime', onnxruntime.__version__)")
echo "$want" > "$stamp"
