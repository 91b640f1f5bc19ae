#!/usr/bin/env bash
# The HPA oracle (tests/hpa-oracle): Kubernetes' HorizontalController built
# from k8s.io/kubernetes at the release tests/hpa-oracle/go.mod pins, as a Go
# test binary that replays traces inside a testing/synctest bubble.
#
#   scripts/hpa-oracle.sh build          build (or reuse) the binary, print its path
#   scripts/hpa-oracle.sh run -- CMD...  build, run CMD with INFERGATE_HPA_ORACLE set
#
# The binary is cached outside the checkout, in
# ${INFERGATE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/infergate}/hpa-oracle/<hash>,
# keyed by the oracle's sources. The first build takes 2-4 minutes on 2 cores
# (less after scripts/control-plane.sh has filled the Go module cache).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
module="$here/../tests/hpa-oracle"
cache_root="${INFERGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/infergate}"
key="$(cat "$module"/go.mod "$module"/go.sum "$module"/*.go "$0" | sha256sum | cut -c1-16)"
bin="$cache_root/hpa-oracle/$key/hpa-oracle"

build() {
  if [[ -x "$bin" ]]; then
    echo "$bin"
    return
  fi
  command -v go >/dev/null || { echo "hpa-oracle: go is not installed; the polyglot machine has Go 1.26" >&2; exit 1; }
  echo "hpa-oracle: building the HPA controller oracle into $bin" >&2
  local started=$SECONDS
  mkdir -p "$(dirname "$bin")"
  (cd "$module" && go vet . && go test -c -mod=readonly -o "$bin.tmp" .) >&2
  mv "$bin.tmp" "$bin"
  # Keep only this build.
  find "$cache_root/hpa-oracle" -mindepth 1 -maxdepth 1 -not -name "$key" -exec rm -rf {} +
  echo "hpa-oracle: built in $((SECONDS - started)) s" >&2
  echo "$bin"
}

case "${1:-}" in
  build) build ;;
  run)
    shift
    [[ "${1:-}" == "--" ]] && shift
    oracle="$(build)"
    INFERGATE_HPA_ORACLE="$oracle" "$@"
    ;;
  *)
    echo "usage: $0 build | run -- CMD..." >&2
    exit 2
    ;;
esac
