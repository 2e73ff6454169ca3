#!/usr/bin/env bash
# Builds the library's API documentation (DocC) and fails on any warning, such as a link to a symbol
# that does not exist or is not public, or on a public symbol without a summary line (DocC's coverage
# must find an abstract for every type, member and global; members that implement a protocol
# requirement without a comment of their own show the protocol's, as `--enable-inherited-docs` says).
#
# The umbrella module ShortcutDetect re-exports the library's modules. swift-docc-plugin extracts only
# the umbrella's own symbols (swiftlang/swift-docc-plugin#113), so we extract its symbol graph once more
# with the re-exported modules' public symbols in it and hand that to DocC as well.
#
# Output: .build/plugins/Swift-DocC/outputs/ShortcutDetect.doccarchive (or the --output-path given after
# the options below). Preview with `swift package --disable-sandbox preview-documentation --target ShortcutDetect`
# plus the same --additional-symbol-graph-dir.
set -euo pipefail
cd "$(dirname "$0")/.."

reexported=TensorCore,ONNXModel,GraphEngine,Explain,Imaging,Detectors,Audit
swift build --target ShortcutDetect
bin=$(swift build --show-bin-path)
triple=$(basename "$(dirname "$bin")")
symbols=.build/docs-symbols
rm -rf "$symbols"
mkdir -p "$symbols"

# The C modules' maps: the system-library ones beside their shims, CKernels' as SwiftPM generated it.
includes=(-I "$bin/Modules")
for folder in Sources/C*/; do
    [[ -f $folder/module.modulemap ]] && includes+=(-I "$folder")
    [[ -d $folder/include ]] && includes+=(-I "$folder/include")
done
for map in "$bin"/C*.build/module.modulemap; do
    [[ -f $map ]] && includes+=(-Xcc "-fmodule-map-file=$map")
done
swift symbolgraph-extract -module-name ShortcutDetect -target "$triple" "${includes[@]}" -minimum-access-level public -skip-synthesized-members \
    -experimental-allowed-reexported-modules="$reexported" -output-dir "$symbols"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
swift package generate-documentation --target ShortcutDetect --additional-symbol-graph-dir "$symbols" \
    --experimental-skip-synthesized-symbols --enable-inherited-docs \
    --experimental-documentation-coverage --coverage-summary-level brief "$@" 2>&1 | tee "$log"
status=0
if grep -q 'warning:' "$log"; then
    echo "docs.sh: DocC reported $(grep -c 'warning:' "$log") warning(s)" >&2
    status=1
fi
# Coverage rows read `Members         | 100% (692/692)   | ...`: the abstract column's counts must agree.
while IFS='|' read -r kind abstract _; do
    counts=$(grep -o '([0-9]*/[0-9]*)' <<<"$abstract" | tr -d '()')
    if [[ -z $counts || ${counts%/*} != "${counts#*/}" ]]; then
        echo "docs.sh: public ${kind%% *} without a summary line: ${abstract// /}" >&2
        status=1
    fi
done < <(grep -E '^(Types|Members|Globals) +\|' "$log")
if ! grep -qE '^Members +\|' "$log"; then
    echo "docs.sh: DocC printed no coverage" >&2
    status=1
fi
exit $status
