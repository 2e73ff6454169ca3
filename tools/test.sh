#!/usr/bin/env bash
# The test suite: installs missing system libraries, then runs every test (no Python needed) once
# at every kernel level this CPU runs (avx512, avx2 with FMA, portable), so each level's paths stay
# tested: the products, element-wise loops and transforms differ between them. Last, every Swift
# block of README.md is compiled against the library (tools/check-readme.sh), a package that uses
# this one by path builds against the public API only (tools/check-consumer.sh), and the DocC
# documentation builds without a warning (tools/docs.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build --build-tests
levels=(portable)
grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo && levels=(avx2 "${levels[@]}")
grep -qw avx512f /proc/cpuinfo 2>/dev/null && levels=(avx512 "${levels[@]}")
for level in "${levels[@]}"; do
    echo "== tests with SHORTCUT_DETECT_KERNELS=$level"
    SHORTCUT_DETECT_KERNELS=$level swift test --skip-build "$@"
done
echo "== README.md Swift blocks"
tools/check-readme.sh
echo "== a consumer package, public API only"
tools/check-consumer.sh
echo "== DocC"
tools/docs.sh
