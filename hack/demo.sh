#!/usr/bin/env bash
# `make demo`: a dev cluster with the kubegate CRDs, the operator running, and the examples applied.
# `make demo-down` (this script with `down`) stops everything it started.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kubegate="${root}/.venv/bin/kubegate"
cluster=demo
state_dir="${KUBEGATE_CACHE_DIR:-${HOME}/.cache/kubegate}/clusters/${cluster}"
demo_dir="${state_dir}/demo"
namespace=kubegate-system

step() { printf '\n==> %s\n' "$*"; }

stop_pid() {
  local file="$1"
  [[ -f "${file}" ]] || return 0
  local pid
  pid="$(cat "${file}")"
  if kill -0 "${pid}" 2>/dev/null; then
    kill "${pid}" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.2; done
    kill -9 "${pid}" 2>/dev/null || true
  fi
  rm -f "${file}"
}

if [[ "${1:-up}" == "down" ]]; then
  step "stopping the demo"
  stop_pid "${demo_dir}/operator.pid"
  "${kubegate}" dev-cluster down --name "${cluster}"
  exit 0
fi

step "starting the dev cluster '${cluster}' (etcd, kube-apiserver, kube-controller-manager)"
"${kubegate}" dev-cluster up --name "${cluster}"
eval "$("${kubegate}" dev-cluster env --name "${cluster}")"
kubectl="$(command -v kubectl)"  # the cluster's own, first on PATH after `env`
mkdir -p "${demo_dir}"

step "installing the CRDs"
"${kubectl}" apply -f "${root}/crds/"
"${kubectl}" wait --for=condition=Established --timeout=60s crd/statictokens.kubegate.dev crd/oidcproviders.kubegate.dev
"${kubectl}" create namespace "${namespace}" --dry-run=client -o yaml | "${kubectl}" apply -f -

step "starting the operator (log: ${demo_dir}/operator.log)"
stop_pid "${demo_dir}/operator.pid"
nohup "${kubegate}" operator --standalone --operator-namespace "${namespace}" \
  --health-address 127.0.0.1:0 >"${demo_dir}/operator.log" 2>&1 &
echo $! >"${demo_dir}/operator.pid"

step "applying examples/"
"${kubectl}" apply -f "${root}/examples/"
"${kubectl}" wait --for=condition=Ready --timeout=60s statictoken/ci-deployer

step "kubectl get statictokens,oidcproviders -A"
"${kubectl}" get statictokens,oidcproviders -A

step "the bootstrap token, logged once by the operator at start-up"
grep -m1 'access token created' "${demo_dir}/operator.log" || true

cat <<EOT

The demo is running. Try it yourself:
  export KUBECONFIG=${KUBECONFIG}
  ${kubectl} get secret ci-deployer -o jsonpath='{.data.token}' | base64 -d
Stop everything with: make demo-down
EOT
