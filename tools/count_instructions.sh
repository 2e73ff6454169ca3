#!/usr/bin/env bash
# Instructions one forward pass (or one GradCAM, with --layer) executes, counted by valgrind's
# callgrind: repeatable whatever else the machine runs, unlike times. `bench` runs once with
# --runs 1 and once with --runs 2 (each after its warm-up, one thread); the difference is one run.
#
#   tools/count_instructions.sh BINARY MODEL.onnx INPUT.npy [LEVEL] [bench options...]
#   tools/count_instructions.sh .build/release/shortcut-detect model.onnx x.npy avx2 --layer layer4
#
# LEVEL is avx2 or portable (SHORTCUT_DETECT_KERNELS): valgrind runs no AVX-512, and its CPU
# reports none, so the default level under valgrind is avx2. Needs valgrind (apt-get install valgrind).
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,10p' "$0"; exit 2; }
binary=$1 model=$2 input=$3 level=${4:-}
shift $(( $# >= 4 ? 4 : 3 ))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# valgrind 3.19 cannot read the DWARF 5 debug information Swift writes: count a stripped copy.
objcopy --strip-debug "$binary" "$work/shortcut-detect"
count() {
    local runs=$1
    shift
    SHORTCUT_DETECT_KERNELS=$level valgrind --tool=callgrind --callgrind-out-file="$work/$runs.out" \
        "$work/shortcut-detect" bench "$model" --input "$input" --runs "$runs" --threads 1 "$@" \
        > "$work/$runs.json" 2> "$work/$runs.err" || { cat "$work/$runs.err" >&2; exit 1; }
    awk '/^totals:/ {print $2}' "$work/$runs.out"
}
one=$(count 1 "$@")
two=$(count 2 "$@")
echo "{\"instructions_per_run\": $(( two - one )), $(grep -o '"kernels": "[a-z0-9]*"' "$work/1.json"), \"model\": \"$model\"}"
