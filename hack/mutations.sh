#!/usr/bin/env bash
# Proves the unit suite catches the mutations issue 12 names: each is applied to a fresh worktree of HEAD,
# `pytest tests/unit` runs there, and the failing tests are printed (a mutation no test catches prints none).
# Usage: hack/mutations.sh   (from the repository root, after `make venv`; about a minute per mutation)
set -euo pipefail
root="$(git rev-parse --show-toplevel)"
python="${root}/.venv/bin/python"
rev="$(git -C "${root}" rev-parse HEAD)"
work="$(mktemp -d)"
trap 'git -C "${root}" worktree remove --force "${work}/tree" >/dev/null 2>&1 || true; rm -rf "${work}"' EXIT

mutate() {
  local name="$1" file="$2" old="$3" new="$4"
  git -C "${root}" worktree add --quiet --force "${work}/tree" "${rev}"
  "${python}" - "${work}/tree/${file}" "${old}" "${new}" <<'PY'
import sys
path, old, new = sys.argv[1:]
text = open(path).read()
if old not in text:
    sys.exit(f"the code to mutate is no longer in {path}: update hack/mutations.sh")
open(path, "w").write(text.replace(old, new, 1))
PY
  echo "== ${name}"
  (cd "${work}/tree" && PYTHONPATH="${work}/tree/operator:${work}/tree/tests" \
    "${python}" -m pytest tests/unit -q -p no:cacheprovider 2>&1 | grep -E "^FAILED|passed|failed" || true)
  git -C "${root}" worktree remove --force "${work}/tree"
}

mutate "deny-list entries never expire (a write keeps them all)" operator/kubegate/server/deny_list.py \
  "kept = {k: v for k, v in entries.items() if v > now}" "kept = dict(entries)"
mutate "deny-list entries never expire (the mirror ignores time)" operator/kubegate/state/revocations.py \
  "return until is not None and until > self._clock()" "return until is not None"
mutate "unbounded cache of TokenReview answers" operator/kubegate/methods/kubernetes/review.py \
  "while len(self._cache) > self._max_cached:" "while False:"
mutate "a client token outlives the publication of its key" operator/kubegate/methods/kubernetes/exchange.py \
  "cap = now + min(max_lifetime, keys_kept)" "cap = now + max_lifetime"
mutate "unescaped metric label values" operator/kubegate/server/metrics.py \
  'return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"'"'"'"'"', '"'"'\\"'"'"')' "return value"
