#!/usr/bin/env bash
# Builds tools/consumer, a package that depends on this one by path and uses only the public API (its
# sources include the fuzz targets, which tools/fuzz builds from outside this package too), then
# checks that the library's internals are out of its reach: each line of the probe below must fail
# to compile, naming the symbol, because it is `package` (or internal), not public.
set -euo pipefail
cd "$(dirname "$0")/consumer"
swift build

probe=Sources/Consumer/InternalsProbe.swift
trap 'rm -f "$probe"' EXIT
# symbol the error names | a use of it
probes=(
    "storage|func probe1(_ t: Tensor) { _ = t.storage }"
    "PackedGEMM|func probe2(_ g: PackedGEMM) {}"
    "BLAS|func probe3() { _ = BLAS.coreName }"
    "BufferPool|func probe4() { BufferPool.shared.drain() }"
    "Parallel|func probe5() { Parallel.setWidth(1) }"
    "VectorKernels|func probe6(_ v: VectorKernels) {}"
    "transposed|func probe7(_ t: Tensor) throws { _ = try t.transposed([1, 0]) }"
    "sliced|func probe8(_ t: Tensor) throws { _ = try t.sliced(axis: 0, 0..<1) }"
    "multiplied|func probe9(_ t: Tensor) throws { _ = try t.multiplied(by: t) }"
    "OpRegistry|func probe10() { _ = OpRegistry.standard }"
    "BackwardStep|func probe11(_ s: BackwardStep) {}"
    "ClassProbabilities|func probe12() { _ = ClassProbabilities.softmax([1.0]) }"
)
{
    echo "import ShortcutDetect"
    for entry in "${probes[@]}"; do echo "${entry#*|}"; done
} > "$probe"
if output=$(swift build 2>&1); then
    echo "check-consumer.sh: the internals probe compiled; some internal symbol is public" >&2
    exit 1
fi
status=0
for entry in "${probes[@]}"; do
    symbol=${entry%%|*}
    if ! grep "InternalsProbe.swift" <<<"$output" | grep -q "error:.*'$symbol'"; then
        echo "check-consumer.sh: no error names '$symbol': it is reachable from outside the package" >&2
        status=1
    fi
done
[[ $status == 0 ]] && echo "check-consumer.sh: the consumer builds; ${#probes[@]} internals are out of its reach"
exit $status
