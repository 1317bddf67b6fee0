#!/usr/bin/env bash
# Builds Dex (the OIDC provider the tests run) from the Go module proxy into
# ~/.cache/kubegate/bin/dex-<version>/dex. Nothing is built when the binary is already there.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "${here}/versions.env"
build_name=dex
# shellcheck source=build-common.sh
source "${here}/build-common.sh"

cache_root="${KUBEGATE_CACHE_DIR:-${HOME}/.cache/kubegate}"
bin_dir="${cache_root}/bin/dex-${DEX_VERSION}"
work_dir="${cache_root}/build/dex-${DEX_VERSION}"
package="github.com/dexidp/dex/cmd/dex"

if [[ -x "${bin_dir}/dex" ]]; then
  log "up to date: ${bin_dir}/dex"
  exit 0
fi
command -v go >/dev/null || { echo "go is required to build Dex" >&2; exit 1; }
log "building Dex ${DEX_VERSION} (${DEX_MODULE_VERSION}) into ${bin_dir} (cold builds take 6-10 minutes on 2 cores)"
mkdir -p "${bin_dir}" "${work_dir}"
export GOCACHE="${cache_root}/go-build-dex"
# The proxy alone: its refusals are clearer than the DNS failure of the `direct` fallback.
export GOPROXY="${GOPROXY:-https://proxy.golang.org}"
export CGO_ENABLED=1  # Dex's sqlite storage needs cgo

cd "${work_dir}"
# A wrapper module that requires the command's package (the bare module leaves go.sum entries missing).
[[ -f go.mod ]] || go mod init kubegate.local/dex-build >/dev/null 2>&1
log "resolving modules"
go get "${package}@${DEX_MODULE_VERSION}" 2>&1 | progress "dex module download"
log "compiling"
go build -trimpath -v -ldflags "-s -w -X main.version=${DEX_VERSION}" \
  -o "${bin_dir}/dex.tmp" "${package}" 2>&1 | progress dex
mv "${bin_dir}/dex.tmp" "${bin_dir}/dex"
[[ -n "${KUBEGATE_KEEP_GO_CACHE:-}" ]] || rm -rf "${GOCACHE}"
log "done: $("${bin_dir}/dex" version 2>&1 | head -n 1) in ${bin_dir}"
