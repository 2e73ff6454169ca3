#!/usr/bin/env bash
# The test suite: installs missing system libraries, then runs every test (no Python needed).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift test "$@"
