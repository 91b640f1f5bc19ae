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
# pre-commit passes the staged files only. Two HPAs on one Deployment:
# in a kustomization they are applied together (a conflict `lint .`
# reports), side by side without one they are alternatives (no
# conflict). Staging one HPA of each must give what `lint .` gives for
# its application: the hook reads the rest of the application as context.
# (The kustomization at the top, an earlier check's, would make the whole
# repository one application.)
git rm --quiet --force kustomization.yaml
for app in conflict alternatives; do
  mkdir -p "apps/$app"
  cat >"apps/$app/deploy.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: prod}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.27"}]
YAML
  for hpa in a b; do
    cat >"apps/$app/hpa-$hpa.yaml" <<YAML
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web-$hpa, namespace: prod}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 3
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}}]
YAML
  done
done
printf 'resources: [deploy.yaml, hpa-a.yaml, hpa-b.yaml]\n' >apps/conflict/kustomization.yaml
git add apps
git commit --quiet --no-verify -m "applications"
echo "# staged change" >>apps/conflict/hpa-a.yaml
echo "# staged change" >>apps/alternatives/hpa-a.yaml
git add apps
pre-commit try-repo "$repo" infergate --files apps/conflict/hpa-a.yaml >"$work/conflict.log" 2>&1
conflict_status=$?
pre-commit try-repo "$repo" infergate --files apps/alternatives/hpa-a.yaml >"$work/alternatives.log" 2>&1
alternatives_status=$?
# What `lint .` reports of each application: 1 when it holds a conflict.
lint_conflict_status=2
lint_alternatives_status=2
if [ -n "$built" ]; then
  "$built" lint --format json . >"$work/lint-dot.json" 2>/dev/null
  conflicts_in() {
    python3 -c 'import json,sys; findings=json.load(open(sys.argv[1]))["findings"]; sys.exit(1 if any(f["rule"]=="single-autoscaler-per-workload" and f["file"].startswith(sys.argv[2]) for f in findings) else 0)' "$work/lint-dot.json" "$1"
  }
  conflicts_in apps/conflict/
  lint_conflict_status=$?
  conflicts_in apps/alternatives/
  lint_alternatives_status=$?
fi
# The trial repository of testdata/repo, as a newcomer commits it: every
# file at once (only its deliberate mistake may block), then a change to
# one of two alternative HPAs (passes, as `lint .` says).
trial="$work/trial"
cp -r "$repo/testdata/repo" "$trial"
(
  cd "$trial"
  git init --quiet
  git config user.email ci@example.invalid
  git config user.name ci
  git add -A
  pre-commit try-repo "$repo" infergate --all-files >"$work/trial-all.log" 2>&1
  echo $? >"$work/trial-all.status"
  git commit --quiet --no-verify -m "trial"
  echo "# staged change" >>experiments/hpa-queue.yaml
  git add experiments/hpa-queue.yaml
  pre-commit try-repo "$repo" infergate --files experiments/hpa-queue.yaml >"$work/trial-one.log" 2>&1
  echo $? >"$work/trial-one.status"
)
trial_all_status=$(cat "$work/trial-all.status")
trial_one_status=$(cat "$work/trial-one.status")
trial_rules=$(grep -oE "(error|warning)\[[a-z-]+\]" "$work/trial-all.log" | sort -u | tr '\n' ' ')
set -e

passed=0
failed=0
if [ "$trial_all_status" -eq 0 ] || [ "$trial_rules" != "error[metric-name-lowercase] " ] || ! grep -q "overlays/staging/hpa-max.yaml:13" "$work/trial-all.log"; then
  echo "FAIL: the trial repository committed whole: status $trial_all_status, findings: $trial_rules (only its deliberate mistake at overlays/staging/hpa-max.yaml:13 may block)"; cat "$work/trial-all.log"; failed=$((failed + 1))
else
  echo "ok: the trial repository blocks on its deliberate mistake only"; passed=$((passed + 1))
fi
if [ "$trial_one_status" -ne 0 ]; then
  echo "FAIL: a change to one of two alternative HPAs of the trial repository was blocked"; cat "$work/trial-one.log"; failed=$((failed + 1))
else
  echo "ok: the trial repository's alternative HPA passes alone"; passed=$((passed + 1))
fi
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
if [ "$conflict_status" -eq 0 ] || [ "$lint_conflict_status" -eq 0 ] || ! grep -q "single-autoscaler-per-workload" "$work/conflict.log"; then
  echo "FAIL: one staged HPA of two applied together: hook $conflict_status, lint $lint_conflict_status (both must fail)"; cat "$work/conflict.log"; failed=$((failed + 1))
else
  echo "ok: a staged HPA conflicting with an unstaged one fails, as lint . does"; passed=$((passed + 1))
fi
if [ "$alternatives_status" -ne 0 ] || [ "$lint_alternatives_status" -ne 0 ]; then
  echo "FAIL: one staged HPA of two alternatives: hook $alternatives_status, lint $lint_alternatives_status (both must pass)"; cat "$work/alternatives.log" "$work/lint-dot.json"; failed=$((failed + 1))
else
  echo "ok: a staged HPA beside an alternative passes, as lint . does"; passed=$((passed + 1))
fi
echo "precommit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
