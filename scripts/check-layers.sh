#!/usr/bin/env bash
# Fails when a file of a lower layer of src/ imports a higher one.
# The layers, from the ground up (docs/design.md): each folder may
# import the folders before it; engine and rules import each other.
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A allowed=(
  [input]="input"
  [policy]="input policy"
  [k8s]="input policy k8s"
  [engine]="input policy k8s engine rules"
  [rules]="input policy k8s engine rules"
  [fix]="input policy k8s engine rules fix"
  [output]="input policy k8s engine rules fix output"
  [webhook]="input policy k8s engine rules fix output webhook"
  [audit]="input policy k8s engine rules fix output audit"
  [simulate]="input policy k8s engine rules fix output simulate"
  [cli]="input policy k8s engine rules fix output webhook audit simulate cli"
)
status=0
for folder in src/*/; do
  layer=$(basename "$folder")
  if [[ -z "${allowed[$layer]+set}" ]]; then
    echo "src/$layer/: a folder the layer list does not name (add it to scripts/check-layers.sh and docs/design.md)"
    status=1
    continue
  fi
  # every crate::X path, in use lines and in code alike
  while IFS=: read -r file line target; do
    if [[ " ${allowed[$layer]} " != *" $target "* ]]; then
      echo "$file:$line: the $layer layer imports crate::$target (allowed: ${allowed[$layer]})"
      status=1
    fi
  done < <(grep -rnoE 'crate::[a-z0-9_]+' "$folder" --include='*.rs' | sed -E 's/crate::([a-z0-9_]+)$/\1/')
done
if [[ $status -eq 0 ]]; then
  echo "layers: every crate:: path in src/ runs downwards"
fi
exit $status
