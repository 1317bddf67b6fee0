# Shared by the build scripts in hack/: `log` with the seconds since start, and `progress`, which turns
# `go build -v` output into a line per 100 packages. Set build_name before sourcing.
started=${SECONDS}

log() { printf '[%s %4ds] %s\n' "${build_name}" "$((SECONDS - started))" "$*"; }

# `go build -v` names every package it compiles; print a line per 100 so CI logs show progress
# without thousands of lines.
progress() {
  local what="$1" n=0 downloads=0
  while IFS= read -r line; do
    case "${line}" in
      "go: downloading "*)
        downloads=$((downloads + 1))
        (( downloads % 50 == 0 )) && log "${what}: ${downloads} modules downloaded" ;;
      *" "*|"") printf '%s\n' "${line}" ;;   # real messages (errors) contain spaces: show them
      *) n=$((n + 1)); (( n % 100 == 0 )) && log "${what}: ${n} packages compiled" ;;
    esac
  done
  log "${what}: ${n} packages compiled, ${downloads} modules downloaded"
}

