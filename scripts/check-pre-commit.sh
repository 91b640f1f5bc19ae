#!/usr/bin/env bash
# Proves the pre-commit hooks work: installs pre-commit from PyPI into a
# virtual environment, then in a scratch git repository commits a bad and a
# good manifest through `pre-commit try-repo` against this checkout.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "pre-commit>=3,<5"
export PATH="$work/venv/bin:$PATH"
# Build the hook once in the checkout's own target directory.
export CARGO_TARGET_DIR="$repo/target/pre-commit"
export PRE_COMMIT_HOME="$work/cache"

# try-repo uses the working tree (uncommitted changes included).
scratch="$work/scratch"
mkdir -p "$scratch"
cd "$scratch"
git init --quiet
git config user.email ci@example.invalid
git config user.name ci
cp "$repo/testdata/rules/metric-name-lowercase/quiet.yaml" good.yaml
cp "$repo/testdata/examples/000-tgi-gemma.yaml" bad.yaml
git add good.yaml bad.yaml


set +e
pre-commit try-repo "$repo" infergate --files bad.yaml >"$work/bad.log" 2>&1
bad_status=$?
pre-commit try-repo "$repo" infergate --files good.yaml >"$work/good.log" 2>&1
good_status=$?
set -e

passed=0
failed=0
if [ "$bad_status" -eq 0 ]; then
  echo "FAIL: the bad manifest passed the hook"; cat "$work/bad.log"; failed=$((failed + 1))
elif ! grep -q "metric-name-lowercase" "$work/bad.log" || ! grep -q "bad.yaml:" "$work/bad.log"; then
  echo "FAIL: the hook blocked without the diagnostic"; cat "$work/bad.log"; failed=$((failed + 1))
else
  echo "ok: the bad manifest is blocked with the diagnostic"; passed=$((passed + 1))
fi
if [ "$good_status" -ne 0 ]; then
  echo "FAIL: the good manifest was blocked"; cat "$work/good.log"; failed=$((failed + 1))
else
  echo "ok: the good manifest passes"; passed=$((passed + 1))
fi
echo "precommit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
