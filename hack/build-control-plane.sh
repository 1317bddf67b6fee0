#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kube-controller-manager, kubectl) from the Go
# module proxy into ~/.cache/kubegate/bin/<version>/. Nothing is built when the binaries are already
# there. No Docker is needed: the sources come from the Go module proxy, not from git.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "${here}/versions.env"

cache_root="${KUBEGATE_CACHE_DIR:-${HOME}/.cache/kubegate}"
version_tag="k8s-${KUBE_VERSION}_etcd-${ETCD_VERSION}"
bin_dir="${cache_root}/bin/${version_tag}"
work_dir="${cache_root}/build/${version_tag}"
binaries=(etcd kube-apiserver kube-controller-manager kubectl)
build_name=control-plane
# shellcheck source=build-common.sh
source "${here}/build-common.sh"

all_present() {
  local b
  for b in "${binaries[@]}"; do [[ -x "${bin_dir}/${b}" ]] || return 1; done
}

if all_present; then
  log "up to date: ${bin_dir}"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build the control plane" >&2; exit 1; }
log "building ${version_tag} into ${bin_dir} (cold builds take 15-30 minutes on 2 cores)"
mkdir -p "${bin_dir}" "${work_dir}"

build_flags=(-trimpath -v)
# A private build cache: it is only useful until the binaries exist, so it is removed after a
# successful build (about 3 GB) instead of growing the user's own Go cache.
export GOCACHE="${cache_root}/go-build"

# --- etcd -----------------------------------------------------------------------------------------
if [[ ! -x "${bin_dir}/etcd" ]]; then
  etcd_mod="${work_dir}/etcd"
  mkdir -p "${etcd_mod}"
  cd "${etcd_mod}"
  [[ -f go.mod ]] || go mod init kubegate.local/etcd-build >/dev/null 2>&1
  log "etcd ${ETCD_VERSION}: resolving modules"
  go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" 2>&1 | sed 's/^/  /' | tail -n 3
  log "etcd ${ETCD_VERSION}: compiling"
  go build "${build_flags[@]}" -ldflags "-s -w" -o "${bin_dir}/etcd.tmp" go.etcd.io/etcd/server/v3 2>&1 \
    | progress etcd
  mv "${bin_dir}/etcd.tmp" "${bin_dir}/etcd"
fi

# --- Kubernetes -----------------------------------------------------------------------------------
kube_mod="${work_dir}/kubernetes"
mkdir -p "${kube_mod}"
cd "${kube_mod}"
if [[ ! -f go.mod ]] || ! grep -q "k8s.io/kubernetes ${KUBE_VERSION}" go.mod; then
  log "kubernetes ${KUBE_VERSION}: downloading go.mod"
  upstream_mod="$(go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  # k8s.io/kubernetes points its staging modules at ./staging/src/...; outside its repository each
  # must be replaced by the published v0.X.Y release of the same Kubernetes version.
  staging_version="v0.${KUBE_VERSION#v1.}"
  rm -f go.mod go.sum
  go mod init kubegate.local/kubernetes-build >/dev/null 2>&1
  go mod edit -require "k8s.io/kubernetes@${KUBE_VERSION}"
  count=0
  while read -r module; do
    go mod edit -replace "${module}=${module}@${staging_version}"
    count=$((count + 1))
  done < <(awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "${upstream_mod}")
  (( count > 0 )) || { echo "no staging replacements found in ${upstream_mod}" >&2; exit 1; }
  log "kubernetes ${KUBE_VERSION}: replaced ${count} staging modules with ${staging_version}"
fi
log "kubernetes ${KUBE_VERSION}: resolving modules (first run downloads a few hundred MB)"
GOFLAGS="${GOFLAGS:-} -mod=mod" go list -deps k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl 2>&1 >/dev/null \
  | progress "kubernetes module download"
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X ${pkg}.gitVersion=${KUBE_VERSION} -X ${pkg}.gitTreeState=clean"
  kube_ldflags+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=$(cut -d. -f2 <<<"${KUBE_VERSION}")"
done
missing=()
for b in kube-apiserver kube-controller-manager kubectl; do
  [[ -x "${bin_dir}/${b}" ]] || missing+=("k8s.io/kubernetes/cmd/${b}")
done
if (( ${#missing[@]} > 0 )); then
  log "kubernetes ${KUBE_VERSION}: compiling ${missing[*]##*/}"
  tmp_out="${work_dir}/out"
  rm -rf "${tmp_out}" && mkdir -p "${tmp_out}"
  GOFLAGS="${GOFLAGS:-} -mod=mod" go build "${build_flags[@]}" -ldflags "${kube_ldflags}" \
    -o "${tmp_out}/" "${missing[@]}" 2>&1 | progress kubernetes
  for f in "${tmp_out}"/*; do mv "${f}" "${bin_dir}/"; done
fi

all_present || { echo "build finished but binaries are missing in ${bin_dir}" >&2; exit 1; }
[[ -n "${KUBEGATE_KEEP_GO_CACHE:-}" ]] || rm -rf "${GOCACHE}" "${work_dir}/out"
log "done: $(du -sh "${bin_dir}" | cut -f1) in ${bin_dir}"
