#!/usr/bin/env bash
# `make demo`: a dev cluster with the kubegate CRDs, the operator and the auth server running, the
# examples applied, and Flipt's documented calls made against it.
# `make demo-down` (this script with `down`) stops everything it started.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kubegate="${root}/.venv/bin/kubegate"
cluster=demo
state_dir="${KUBEGATE_CACHE_DIR:-${HOME}/.cache/kubegate}/clusters/${cluster}"
demo_dir="${state_dir}/demo"
namespace=kubegate-system
server=http://127.0.0.1:8080
python="${root}/.venv/bin/python"
http() { "${python}" "${root}/hack/demo_http.py" "$@"; }

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
  stop_pid "${demo_dir}/server.pid"
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

step "starting the auth server on ${server} (log: ${demo_dir}/server.log)"
cat >"${demo_dir}/bindings.yaml" <<EOT
- namespaces: [default]
  serviceAccounts: [web]
  groups: [web-apps]
EOT
stop_pid "${demo_dir}/server.pid"
nohup "${kubegate}" server --insecure-http --address 127.0.0.1:8080 --operator-namespace "${namespace}" \
  --issuer-url "${server}" --serviceaccount-bindings-file "${demo_dir}/bindings.yaml" \
  >"${demo_dir}/server.log" 2>&1 &
echo $! >"${demo_dir}/server.pid"
for _ in $(seq 150); do http GET "${server}/readyz" >/dev/null 2>&1 && break; sleep 0.2; done

step "applying examples/"
"${kubectl}" apply -f "${root}/examples/"
"${kubectl}" wait --for=condition=Ready --timeout=60s statictoken/ci-deployer
"${kubectl}" wait --for=condition=Ready --timeout=60s -n "${namespace}" statictoken/initial-bootstrap-token

step "kubectl get statictokens,oidcproviders -A"
"${kubectl}" get statictokens,oidcproviders -A

step "the bootstrap token, logged once by the operator at start-up"
grep -m1 'access token created' "${demo_dir}/operator.log"
bootstrap="$(grep -m1 -o 'client_token="[^"]*"' "${demo_dir}/operator.log" | cut -d'"' -f2)"

step "Flipt's documented call: POST /auth/v1/method/token with the bootstrap token"
echo "curl -X POST ${server}/auth/v1/method/token -H 'Authorization: Bearer <bootstrap token>' \\"
echo "     -H 'Content-Type: application/json' --data '{\"name\":\"access_all_areas\",\"description\":\"keys to the castle\"}'"
http POST "${server}/auth/v1/method/token" --token "${bootstrap}" \
  --data '{"name":"access_all_areas","description":"keys to the castle"}' >"${demo_dir}/created.json"
"${python}" -c 'import json,sys; d=json.load(open(sys.argv[1])); d["clientToken"]=d["clientToken"][:6]+"..."; print(json.dumps(d, indent=2))' "${demo_dir}/created.json"

step "forward auth with the ci-deployer token: GET /auth/v1/verify"
ci_token="$("${kubectl}" get secret ci-deployer -o jsonpath='{.data.token}' | base64 -d)"
http GET "${server}/auth/v1/verify" --token "${ci_token}" --headers

step "a workload's service-account token exchanged for a client token"
"${kubectl}" create serviceaccount web --dry-run=client -o yaml | "${kubectl}" apply -f -
for _ in $(seq 100); do http GET "${server}/.well-known/jwks.json" >/dev/null 2>&1 && break; sleep 0.2; done
sa_token="$("${kubectl}" create token web)"
http POST "${server}/auth/v1/method/kubernetes/serviceaccount" \
  --data "{\"service_account_token\":\"${sa_token}\"}" --field authentication

cat <<EOT

The demo is running: operator and auth server on the dev cluster '${cluster}'. Try it yourself:
  export KUBECONFIG=${KUBECONFIG}
  ${kubectl} get secret ci-deployer -o jsonpath='{.data.token}' | base64 -d
  curl -H "Authorization: Bearer <token>" ${server}/auth/v1/self
Logs: ${demo_dir}/operator.log, ${demo_dir}/server.log
Stop everything with: make demo-down
EOT
