#!/usr/bin/env bash
# Runs the test suite under AddressSanitizer and ThreadSanitizer and times each.
#
#   tools/sanitize.sh [address] [thread]        (default: both)
#
# Each sanitizer builds into its own scratch folder (.build-asan, .build-tsan), so the normal
# .build stays as it is. The suite runs once per sanitizer, with our AVX-512 kernels where the CPU
# has them; a report from either sanitizer fails the run.
set -uo pipefail
cd "$(dirname "$0")/.."
sanitizers=("$@")
[ ${#sanitizers[@]} -gt 0 ] || sanitizers=(address thread)
status=0
for sanitizer in "${sanitizers[@]}"; do
    case $sanitizer in
        address) scratch=.build-asan ;;
        thread) scratch=.build-tsan ;;
        *) echo "unknown sanitizer '$sanitizer' (address or thread)" >&2; exit 2 ;;
    esac
    start=$(date +%s)
    swift build --build-tests --sanitize="$sanitizer" --scratch-path "$scratch" || { status=1; continue; }
    built=$(date +%s)
    # halt_on_error: the first report fails the run with the report on standard error.
    # allocator_may_return_null: a refused allocation is an error we handle (a test asks for 256 PiB).
    ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:allocator_may_return_null=1 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:allocator_may_return_null=1 \
        swift test --skip-build --sanitize="$sanitizer" --scratch-path "$scratch"
    result=$?
    [ $result -eq 0 ] || status=1
    end=$(date +%s)
    echo "$sanitizer: build $((built - start)) s, tests $((end - built)) s, exit $result"
done
exit $status
