#!/usr/bin/env bash
# Fuzzes the readers of untrusted bytes with libFuzzer (under AddressSanitizer).
#
#   tools/fuzz.sh [SECONDS-PER-TARGET] [TARGET...]     targets: onnx npy png jpeg csv state (default: all)
#   tools/fuzz.sh --cpu SECONDS [TARGET...]            a campaign: each target until its process has
#                                                      used SECONDS of processor time
#   tools/fuzz.sh --ledger                             what every campaign so far has done
#
# Builds tools/fuzz (the targets live in Tests/ShortcutDetectCLITests/FuzzTargets.swift) into
# .build-fuzz, seeds each target's corpus with the fixtures, runs it for SECONDS (default 60) and
# prints its execution count. Every input that crashed, hung or ran out of memory is copied to
# Fixtures/fuzz-regressions/<target>/, which FuzzRegressionTests replays in the normal suite.
# Exits non-zero when anything was found.
#
# The corpus of each target stays in .build-fuzz/corpus/<target>/corpus, so a run continues where
# the last one stopped. Every run appends a line to .build-fuzz/corpus/<target>/ledger: its date,
# processor seconds, wall seconds, executions and findings. Processor time is what a campaign is
# measured in because the machine is shared: run it under `nice -n 19` beside other work and it
# takes only what is idle.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=.build-fuzz
work=$scratch/corpus
if [ "${1:-}" = --ledger ]; then
    for ledger in "$work"/*/ledger; do
        [ -f "$ledger" ] || continue
        awk -v t="$(basename "$(dirname "$ledger")")" '{cpu += $2; wall += $3; runs += $4; found += $5; n++}
            END {printf "%-6s %3d runs: %8.0f processor s, %8.0f wall s, %12d executions, %d finding(s)\n", t, n, cpu, wall, runs, found}' "$ledger"
    done
    exit 0
fi
mode=wall
if [ "${1:-}" = --cpu ]; then mode=cpu; shift; fi
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(onnx npy png jpeg csv state)
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

# In memory where there is /dev/shm: the state target writes a report folder per input.
tmp=$( [ -d /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}" )
# Wall seconds past which libFuzzer calls a unit a timeout.
unit_limit=30
found=0
for target in "${targets[@]}"; do
    seed "$target"
    mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
    log=$work/$target/log
    # Swift's own backtracer is slow and interactive; libFuzzer reports and saves the input.
    # In a campaign, libFuzzer runs without a time limit and is interrupted (it then prints its
    # final statistics) once its processor time, read from /proc, reaches the budget.
    limit=$seconds
    [ $mode = cpu ] && limit=0
    start=$(date +%s)
    TMPDIR=$tmp FUZZ_TARGET=$target SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 \
        "$binary" "$work/$target/corpus" "$work/$target/seeds" -max_total_time="$limit" -timeout=$unit_limit \
        -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -artifact_prefix="$work/$target/artifacts/" \
        >"$log" 2>&1 &
    pid=$!
    ticks=$(getconf CLK_TCK)
    cpu=0
    while kill -0 "$pid" 2>/dev/null; do
        sleep 5
        # utime and stime (fields 14 and 15; the command name in field 2 has no spaces here).
        used=$(awk -v hz="$ticks" '{print int(($14 + $15) / hz)}' "/proc/$pid/stat" 2>/dev/null || echo "$cpu")
        cpu=$used
        if [ $mode = cpu ] && [ "$cpu" -ge "$seconds" ]; then kill -INT "$pid" 2>/dev/null || true; break; fi
    done
    wait "$pid" || true
    wall=$(( $(date +%s) - start ))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    # A target whose code handles SIGINT itself (the state target's merge cleans up and exits) ends
    # without libFuzzer's final statistics: then the last status line's count (#N) is the figure.
    [ -n "$runs" ] || runs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    shopt -s nullglob
    # libFuzzer also saves inputs slower than 10 s wall as slow-unit-*: on a shared machine (or under
    # nice) those measure the load, not the input; they stay in the artifacts folder and do not count.
    # A timeout is measured in wall time, so a run that was paused (SIGSTOP) or starved reports
    # the input it was on: each is run again alone, and one that finishes within the limit is
    # kept as unreproduced-* beside the artifacts, not counted.
    for timeout in "$work/$target/artifacts/"timeout-*; do
        if TMPDIR=$tmp FUZZ_TARGET=$target SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 \
            "$binary" "$timeout" -timeout=$unit_limit >/dev/null 2>&1; then
            mv "$timeout" "$work/$target/artifacts/unreproduced-$(basename "$timeout")"
            echo "$target: $(basename "$timeout") ran in time when tried again alone; not counted"
        fi
    done
    artifacts=("$work/$target/artifacts/"crash-* "$work/$target/artifacts/"timeout-* "$work/$target/artifacts/"oom-* "$work/$target/artifacts/"leak-*)
    shopt -u nullglob
    echo "$(date -u +%FT%TZ) $cpu $wall ${runs:-0} ${#artifacts[@]}" >> "$work/$target/ledger"
    echo "$target: ${runs:-?} executions in ${cpu} processor s (${wall} s wall), ${#artifacts[@]} finding(s) (log: $log)"
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
