#!/usr/bin/env bash
# The test suite: installs missing system libraries, then runs every test (no Python needed).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift test "$@"
# Where the CPU has AVX-512 the run above used our AVX-512 kernels; run again on the portable paths
# (BLAS products, Swift loops) that other CPUs take, so both are tested.
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    SHORTCUT_DETECT_KERNELS=portable swift test --skip-build "$@"
fi
