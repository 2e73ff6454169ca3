#!/usr/bin/env bash
# Fuzzes the readers of untrusted bytes with libFuzzer (under AddressSanitizer).
#
#   tools/fuzz.sh [SECONDS-PER-TARGET] [TARGET...]     targets: onnx npy png jpeg csv state (default: all)
#
# Builds tools/fuzz (the targets live in Tests/ShortcutDetectCLITests/FuzzTargets.swift) into
# .build-fuzz, seeds each target's corpus with the fixtures, runs it for SECONDS (default 60) and
# prints its execution count. Every input that crashed, hung or ran out of memory is copied to
# Fixtures/fuzz-regressions/<target>/, which FuzzRegressionTests replays in the normal suite.
# Exits non-zero when anything was found.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(onnx npy png jpeg csv state)
scratch=.build-fuzz
work=$scratch/corpus

# A path dependency's added or removed files do not always re-plan the build: plan afresh each time
# (the objects stay, so the build is still incremental).
rm -f "$scratch/release.yaml" "$scratch/build.db"
swift build --package-path tools/fuzz --scratch-path "$scratch" -c release \
    --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=address
binary=$scratch/release/shortcut-detect-fuzz

# Files of at most 64 KB: larger seeds make every mutation slow.
small() { find "$@" -type f -size -65k 2>/dev/null || true; }

seed() {
    local target=$1 seeds=$work/$1/seeds
    rm -rf "$seeds" && mkdir -p "$seeds"
    case $target in
        onnx)
            # The upstream node tests come packed; every committed model joins them.
            mkdir -p "$scratch/onnx-node" && tar xzf Fixtures/onnx-node/tests.tar.gz -C "$scratch/onnx-node"
            small "$scratch/onnx-node" Fixtures -name '*.onnx' ;;
        npy) small Fixtures -name '*.npy' ;;
        png) small Fixtures -name '*.png' ;;
        jpeg) small Fixtures -name '*.jpg' ;;
        csv) echo Fixtures/audit/groups.csv ;;
        state) ;;
    esac | while read -r file; do cp "$file" "$seeds/$(echo "$file" | tr / _)"; done
    if [ "$target" = csv ]; then printf 'group,file,label\n"a,b.png",x,\n"q""uote".jpg,g,-1\n' > "$seeds/quoted.csv"; fi
    # Seeds made in Swift (a shard state: FuzzTargets.stateSeed).
    FUZZ_TARGET=$target FUZZ_WRITE_SEED=$seeds SWIFT_BACKTRACE=enable=no "$binary"
}

found=0
for target in "${targets[@]}"; do
    seed "$target"
    mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
    log=$work/$target/log
    # Swift's own backtracer is slow and interactive; libFuzzer reports and saves the input.
    # TMPDIR in memory: the state target writes a report folder per input.
    TMPDIR=$( [ -d /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}" ) \
        FUZZ_TARGET=$target SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 \
        "$binary" "$work/$target/corpus" "$work/$target/seeds" -max_total_time="$seconds" -timeout=30 \
        -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -artifact_prefix="$work/$target/artifacts/" \
        >"$log" 2>&1 || true
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    shopt -s nullglob
    artifacts=("$work/$target/artifacts/"*)
    shopt -u nullglob
    echo "$target: ${runs:-?} executions in ${seconds}s, ${#artifacts[@]} finding(s) (log: $log)"
    if [ ${#artifacts[@]} -gt 0 ]; then
        found=1
        mkdir -p "Fixtures/fuzz-regressions/$target"
        for artifact in "${artifacts[@]}"; do
            cp "$artifact" "Fixtures/fuzz-regressions/$target/$(basename "$artifact")"
            echo "  -> Fixtures/fuzz-regressions/$target/$(basename "$artifact")"
        done
        rm -f "${artifacts[@]}"
    fi
done
exit $found
