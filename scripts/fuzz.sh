#!/usr/bin/env bash
# Fuzzes guardway's input parsers with cargo-fuzz (libFuzzer): builds every
# target of fuzz/ once, then runs each for a bounded time from its seed
# corpus (fuzz/seeds/<target>, committed) and its working corpus
# (fuzz/corpus/<target>, kept between runs, not committed).
#
#   scripts/fuzz.sh [TARGET...]       all targets when none is named
#   FUZZ_SECONDS=60                   time per target (default 60)
#   FUZZ_JOBS=1                       libFuzzer processes per target
#
# The http target runs the Python echo backend from .venv (created by
# scripts/setup-test-env.sh).
#
# Needs the nightly toolchain; without it, fuzzing is skipped (exit 0). A
# crash, a failed check or a hang fails the run (exit 1); every finding is
# listed with the command that reproduces it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
jobs="${FUZZ_JOBS:-1}"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "== fuzzing skipped: no nightly (cargo-fuzz needs the nightly toolchain)"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    if ! nice -n 19 cargo install --quiet --locked cargo-fuzz; then
        echo "== fuzzing skipped: cargo-fuzz could not be installed"
        exit 0
    fi
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

# No sanitizer: guardway is safe Rust (the one `unsafe` block, deserialising
# a verified artifact, is what the disk_cache target attacks from outside);
# what the targets look for is panics, failed checks and hangs. Debug
# assertions and overflow checks are on.
build=(cargo +nightly fuzz build --fuzz-dir fuzz --sanitizer none)
echo "== fuzz build: ${targets[*]}"
started=$(date +%s)
nice -n 19 "${build[@]}"
echo "== fuzz build took $(($(date +%s) - started)) s"

failed=()
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    artifacts="fuzz/artifacts/$target"
    rm -rf "$artifacts"
    mkdir -p "$corpus" "$artifacts"
    parallel=()
    if [ "$jobs" -gt 1 ]; then
        parallel=(-jobs="$jobs" -workers="$jobs")
    fi
    log="fuzz/artifacts/$target.log"
    echo "== fuzz $target for ${seconds} s"
    status=0
    nice -n 19 cargo +nightly fuzz run --fuzz-dir fuzz --sanitizer none "$target" \
        "$corpus" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -max_len=65536 \
        "${parallel[@]}" -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|stat::new_units_added)' "$log" \
        | sed "s/^/   $target /" || true
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        echo "!! $target failed (exit $status); the end of its log:"
        grep -v '^#[0-9]' "$log" | tail -40 | sed 's/^/   /'
        for finding in "$artifacts"/*; do
            [ -f "$finding" ] || continue
            echo "   finding: $finding"
            echo "   reproduce: cargo +nightly fuzz run --fuzz-dir fuzz --sanitizer none $target $finding"
        done
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "== fuzzing found problems in: ${failed[*]}"
    exit 1
fi
echo "== fuzzing: no findings (${#targets[@]} targets, ${seconds} s each)"
