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
# YAML that is not a Kubernetes object, correct as written: a GitHub
# workflow, a compose file, a kustomization and Helm values.
cp "$repo/testdata/rules/unresolved-placeholder/quiet-github-workflow.yaml" workflow.yaml
cp "$repo/testdata/rules/unresolved-placeholder/quiet-compose.yaml" compose.yaml
cp "$repo/testdata/rules/unresolved-placeholder/quiet-kustomization.yaml" kustomization.yaml
cp "$repo/testdata/rules/unresolved-placeholder/quiet-helm-values.yaml" values.yaml
git add good.yaml bad.yaml workflow.yaml compose.yaml kustomization.yaml values.yaml

set +e
pre-commit try-repo "$repo" infergate --files bad.yaml >"$work/bad.log" 2>&1
bad_status=$?
pre-commit try-repo "$repo" infergate --files good.yaml >"$work/good.log" 2>&1
good_status=$?
pre-commit try-repo "$repo" infergate --files workflow.yaml compose.yaml kustomization.yaml values.yaml >"$work/other.log" 2>&1
other_status=$?
# The language: system hook runs the infergate on PATH: the one the rust
# hook just built.
built="$(find "$PRE_COMMIT_HOME" "$CARGO_TARGET_DIR" -type f -name infergate -perm -u+x 2>/dev/null | head -n 1)"
system_status=2
if [ -n "$built" ]; then
  PATH="$(dirname "$built"):$PATH" pre-commit try-repo "$repo" infergate-system --files bad.yaml >"$work/system.log" 2>&1
  system_status=$?
fi
# A repository's .infergate.yaml applies unchanged: its fixtures of
# deliberate mistakes are excluded, the same bad manifest elsewhere is not.
mkdir -p fixtures
cp bad.yaml fixtures/bad.yaml
printf 'exclude:\n  - fixtures/**\n' > .infergate.yaml
git add fixtures/bad.yaml .infergate.yaml
pre-commit try-repo "$repo" infergate --files fixtures/bad.yaml >"$work/config.log" 2>&1
config_status=$?
rm -f .infergate.yaml
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
if [ "$other_status" -ne 0 ]; then
  echo "FAIL: a workflow, compose file, kustomization or Helm values was blocked"; cat "$work/other.log"; failed=$((failed + 1))
else
  echo "ok: non-Kubernetes YAML passes"; passed=$((passed + 1))
fi
if [ "$system_status" -eq 0 ] || ! grep -q "metric-name-lowercase" "$work/system.log"; then
  echo "FAIL: the installed-binary hook did not block the bad manifest (binary: ${built:-none})"; cat "$work/system.log" 2>/dev/null; failed=$((failed + 1))
else
  echo "ok: the installed-binary hook blocks the bad manifest"; passed=$((passed + 1))
fi
if [ "$config_status" -ne 0 ]; then
  echo "FAIL: a file excluded by .infergate.yaml was blocked"; cat "$work/config.log"; failed=$((failed + 1))
else
  echo "ok: .infergate.yaml excludes its fixtures from the hook"; passed=$((passed + 1))
fi
echo "precommit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
