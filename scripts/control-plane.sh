#!/usr/bin/env bash
# A real Kubernetes control plane for the e2e tests: etcd, kube-apiserver and
# kube-controller-manager built from k8s.io/kubernetes at the release pinned
# in scripts/control-plane/go.mod, run on 127.0.0.1. No kubelet and no
# scheduler: pods stay Pending.
#
#   scripts/control-plane.sh build          build (or reuse) the binaries, print their folder
#                                           (helm too, from scripts/control-plane/helm/)
#   scripts/control-plane.sh start DIR      start in DIR (certificates, data, logs, kubeconfig)
#   scripts/control-plane.sh stop DIR       stop what start started
#   scripts/control-plane.sh run -- CMD...  build, start in a fresh folder, run CMD with
#                                           KUBECONFIG and INFERGATE_E2E_DIR set, stop
#
# The binaries are cached outside the checkout, in
# ${INFERGATE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/infergate}/control-plane/<hash>,
# keyed by the Go sources, so a second run (or a second checkout) reuses them.
# The first build takes 5-10 minutes on 2 cores.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
module="$here/control-plane"

cache_root="${INFERGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/infergate}"
# Keyed by everything that decides the binaries: the Go sources and this
# script's build function (not how it starts them, so a new flag or
# certificate does not rebuild).
key="$(
  cat "$module/go.mod" "$module/go.sum" "$module/etcd/main.go" "$module/helm/go.mod" "$module/helm/go.sum"
  sed -n '/^build() {$/,/^}$/p' "$0"
)"
key="$(printf '%s' "$key" | sha256sum | cut -c1-16)"
bin="$cache_root/control-plane/$key"

die() {
  echo "control-plane: $*" >&2
  exit 1
}

build() {
  if [[ -x "$bin/kube-apiserver" && -x "$bin/kube-controller-manager" && -x "$bin/etcd" && -x "$bin/helm" ]]; then
    echo "$bin"
    return
  fi
  command -v go >/dev/null || die "go is not installed; the polyglot machine has Go 1.26"
  mkdir -p "$bin.tmp"
  echo "control-plane: building kube-apiserver, kube-controller-manager, etcd and helm into $bin (5-10 min the first time)" >&2
  local started=$SECONDS
  # The release is stamped in as Kubernetes' own build does
  # (hack/lib/version.sh): without it the apiserver reports v0.0.0-master,
  # which kubectl cannot parse and the compatibility version misreads.
  local version major minor stamp=""
  version="$(cd "$module" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
  major="${version#v}"; major="${major%%.*}"
  minor="${version#v*.}"; minor="${minor%%.*}"
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    stamp+=" -X $package.gitVersion=$version -X $package.gitMajor=$major -X $package.gitMinor=$minor"
    stamp+=" -X $package.gitTreeState=clean -X $package.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$module" && go build -mod=readonly -trimpath -ldflags="-s$stamp" -o "$bin.tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager ./etcd) >&2
  # Helm, from its own module (upstream's dependency versions).
  local helm_version
  helm_version="$(cd "$module/helm" && go list -m -f '{{.Version}}' helm.sh/helm/v4)"
  (cd "$module/helm" && go build -mod=readonly -trimpath \
    -ldflags="-s -X helm.sh/helm/v4/internal/version.version=$helm_version" \
    -o "$bin.tmp/" helm.sh/helm/v4/cmd/helm) >&2
  # Renamed into place only when all three exist: an interrupted build is
  # never mistaken for a finished one.
  rm -rf "$bin"
  mv "$bin.tmp" "$bin"
  # Earlier builds (another pin or another version of this script) are
  # 250 MB each: keep only this one.
  find "$cache_root/control-plane" -mindepth 1 -maxdepth 1 -not -name "$key" -exec rm -rf {} +
  echo "control-plane: built in $((SECONDS - started)) s" >&2
  echo "$bin"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A CA and the certificates the components use, with openssl (EC P-256).
certificates() {
  local dir="$1"
  local pki="$dir/pki"
  mkdir -p "$pki"
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=infergate-e2e-ca" -days 2 -out "$pki/ca.crt" 2>/dev/null
  # The CA of the certificate the apiserver presents to webhooks (its
  # AdmissionConfiguration below), apart from the cluster's: `serve
  # --client-ca` with it admits the apiserver and no other client.
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/webhook-client-ca.key" 2>/dev/null
  openssl req -x509 -new -key "$pki/webhook-client-ca.key" -subj "/CN=infergate-e2e-webhook-client-ca" \
    -days 2 -out "$pki/webhook-client-ca.crt" 2>/dev/null
  # name  subject  extensions  [CA]
  issue() {
    local name="$1" subject="$2" ext="$3" ca="${4:-ca}"
    openssl ecparam -name prime256v1 -genkey -noout -out "$pki/$name.key" 2>/dev/null
    openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
    printf '%s\n' "$ext" >"$pki/$name.ext"
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" -CAcreateserial \
      -days 2 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  }
  issue apiserver "/CN=kube-apiserver" "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc
extendedKeyUsage=serverAuth"
  issue admin "/O=system:masters/CN=e2e-admin" "extendedKeyUsage=clientAuth"
  issue webhook-client "/CN=kube-apiserver-webhook-client" "extendedKeyUsage=clientAuth" webhook-client-ca
  # The service-account token signing key.
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/sa.key" 2>/dev/null
  openssl ec -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

kubeconfig() {
  local dir="$1" user="$2" port="$3"
  cat >"$dir/$user.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: e2e
    cluster:
      server: https://127.0.0.1:$port
      certificate-authority: $dir/pki/ca.crt
users:
  - name: $user
    user:
      client-certificate: $dir/pki/$user.crt
      client-key: $dir/pki/$user.key
contexts:
  - name: e2e
    context: {cluster: e2e, user: $user}
current-context: e2e
EOF
}

# How the apiserver authenticates itself to admission webhooks: an
# AdmissionConfiguration whose webhook plugins read a kubeconfig; its user
# `*` (the default match, for every webhook host) holds the client
# certificate (Kubernetes docs, "Authenticate apiservers").
admission_config() {
  local dir="$1"
  cat >"$dir/webhook-client.kubeconfig" <<EOF
apiVersion: v1
kind: Config
users:
  - name: '*'
    user:
      client-certificate: $dir/pki/webhook-client.crt
      client-key: $dir/pki/webhook-client.key
EOF
  cat >"$dir/admission.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: ValidatingAdmissionWebhook
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: WebhookAdmissionConfiguration
      kubeConfigFile: $dir/webhook-client.kubeconfig
  - name: MutatingAdmissionWebhook
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: WebhookAdmissionConfiguration
      kubeConfigFile: $dir/webhook-client.kubeconfig
EOF
}

wait_ready() {
  local dir="$1" what="$2" url="$3" log="$4" pid="$5"
  for _ in $(seq 1 240); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -30 "$log" >&2
      die "$what exited; its log is $log"
    fi
    if curl -fsS --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key" "$url" >/dev/null 2>&1; then
      return
    fi
    sleep 0.5
  done
  tail -30 "$log" >&2
  die "$what not ready after 120 s; its log is $log"
}

start() {
  local dir="$1"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  local bin_dir
  bin_dir="$(build)"
  certificates "$dir"
  admission_config "$dir"
  local etcd_port peer_port api_port kcm_port
  etcd_port="$(free_port)"
  peer_port="$(free_port)"
  api_port="$(free_port)"
  kcm_port="$(free_port)"

  "$bin_dir/etcd" --data-dir "$dir/etcd" \
    --listen-client-url "http://127.0.0.1:$etcd_port" --listen-peer-url "http://127.0.0.1:$peer_port" \
    >"$dir/etcd.log" 2>&1 &
  echo $! >"$dir/etcd.pid"

  "$bin_dir/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --tls-cert-file "$dir/pki/apiserver.crt" --tls-private-key-file "$dir/pki/apiserver.key" \
    --client-ca-file "$dir/pki/ca.crt" \
    --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$dir/pki/sa.pub" \
    --service-account-signing-key-file "$dir/pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --enable-admission-plugins MutatingAdmissionWebhook,ValidatingAdmissionWebhook \
    --admission-control-config-file "$dir/admission.yaml" \
    --allow-privileged=true \
    --endpoint-reconciler-type none \
    >"$dir/kube-apiserver.log" 2>&1 &
  echo $! >"$dir/kube-apiserver.pid"
  wait_ready "$dir" kube-apiserver "https://127.0.0.1:$api_port/readyz" "$dir/kube-apiserver.log" "$(cat "$dir/kube-apiserver.pid")"

  kubeconfig "$dir" admin "$api_port"

  # (--endpoint-reconciler-type none: the `kubernetes` Service cannot have
  # a loopback endpoint, and no pod here would call it.)
  # The controllers the tests rely on: namespace deletion (uninstall),
  # garbage collection, service-account tokens, and the HPA controller. It
  # runs as the admin: with --use-service-account-credentials=false the
  # controllers act as the manager's own user, and RBAC is not under test here.
  "$bin_dir/kube-controller-manager" \
    --kubeconfig "$dir/admin.kubeconfig" \
    --authentication-skip-lookup \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" \
    --leader-elect=false \
    --controllers namespace,garbagecollector,serviceaccount,horizontalpodautoscaling \
    --service-account-private-key-file "$dir/pki/sa.key" \
    --root-ca-file "$dir/pki/ca.crt" \
    >"$dir/kube-controller-manager.log" 2>&1 &
  echo $! >"$dir/kube-controller-manager.pid"

  cat >"$dir/env" <<EOF
export KUBECONFIG=$dir/admin.kubeconfig
export INFERGATE_E2E_DIR=$dir
export INFERGATE_E2E_APISERVER=https://127.0.0.1:$api_port
export INFERGATE_E2E_WEBHOOK_CLIENT_CA=$dir/pki/webhook-client-ca.crt
export INFERGATE_HELM=$bin_dir/helm
EOF
  echo "control-plane: kube-apiserver on https://127.0.0.1:$api_port; source $dir/env" >&2
}

stop() {
  local dir="$1"
  for component in kube-controller-manager kube-apiserver etcd; do
    if [[ -f "$dir/$component.pid" ]]; then
      local pid
      pid="$(cat "$dir/$component.pid")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/$component.pid"
    fi
  done
}

case "${1:-}" in
  build) build ;;
  start)
    [[ $# -eq 2 ]] || die "usage: $0 start DIR"
    start "$2"
    ;;
  stop)
    [[ $# -eq 2 ]] || die "usage: $0 stop DIR"
    stop "$2"
    ;;
  run)
    shift
    [[ "${1:-}" == "--" ]] && shift
    [[ $# -ge 1 ]] || die "usage: $0 run -- COMMAND..."
    dir="$(mktemp -d "${TMPDIR:-/tmp}/infergate-e2e.XXXXXX")"
    trap 'stop "$dir"' EXIT
    start "$dir"
    # shellcheck source=/dev/null
    source "$dir/env"
    status=0
    "$@" || status=$?
    if [[ $status -ne 0 ]]; then
      echo "control-plane: the command failed ($status); logs are in $dir" >&2
    fi
    exit $status
    ;;
  *) die "usage: $0 build | start DIR | stop DIR | run -- COMMAND..." ;;
esac
