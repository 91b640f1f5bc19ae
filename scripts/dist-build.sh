#!/usr/bin/env bash
# Builds the release artifacts of this machine's target with cargo-dist, the
# way .github/workflows/release.yml builds every target on a tag push.
# Not part of the default CI: it is a full LTO release build (minutes).
#
#   bash scripts/dist-build.sh            # x86_64-unknown-linux-gnu
#   bash scripts/dist-build.sh TARGET     # another installed target
#
# Prints the artifacts and their sha256 checksums (target/distrib/).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-x86_64-unknown-linux-gnu}"

if ! command -v dist >/dev/null 2>&1; then
  # cargo-dist is published on PyPI as a wheel with the binary inside.
  python3 -m pip install --quiet "astral-dev-toolchain-cargo-dist==0.33.0"
fi

# dist checks that the workflow still matches dist-workspace.toml.
dist generate --check
dist build --target "$target" --artifacts=local
dist build --target "$target" --artifacts=global
echo
echo "artifacts in target/distrib/:"
cd target/distrib
for f in *; do
  [ -f "$f" ] || continue
  case "$f" in
    *.sha256 | dist-manifest.json) ;;
    *) printf '  %-55s %s\n' "$f" "$(sha256sum "$f" | cut -d' ' -f1)" ;;
  esac
done
