"""StaticToken lifecycle on a real control plane, with the real operator running as a process."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kubegate.contracts.timestamps import format_time
from kubegate.contracts.token_format import hash_token
from kubegate.devcluster import ClusterState, Kubectl
from kubegate.devcluster.processes import Child
from kubegate.resources.duration import parse_duration
from support import eventually
from support.kube import (
    apply,
    condition,
    config_entries,
    events,
    secret_token,
    shard_versions,
    static_token,
    token_resource,
)
from support.processes import operator

pytestmark = pytest.mark.integration


@dataclass
class Env:
    kubectl: Kubectl
    operator_namespace: str
    namespace: str
    process: Child

    def entries(self) -> dict[str, list[str]]:
        """name -> sha256 hashes in the validation config, for this test namespace."""
        found: dict[str, list[str]] = {}
        for e in config_entries(self.kubectl, self.operator_namespace):
            if e.namespace == self.namespace:
                found.setdefault(e.name, []).append(e.sha256)
        return found

    def token(self, name: str) -> dict[str, object] | None:
        return static_token(self.kubectl, self.namespace, name)

    def ready(self, name: str) -> dict[str, object] | None:
        obj = self.token(name)
        return obj if condition(obj).get("status") == "True" else None

    def reason(self, name: str) -> str:
        return str(condition(self.token(name)).get("reason", ""))


@pytest.fixture(scope="module")
def env(
    dev_cluster: ClusterState, kubectl: Kubectl, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    suffix = uuid.uuid4().hex[:6]
    operator_namespace, namespace = f"kg-op-{suffix}", f"kg-apps-{suffix}"
    for ns in (operator_namespace, namespace):
        kubectl("create", "namespace", ns)
    log_file = tmp_path_factory.mktemp("operator") / "operator.log"
    with operator(
        kubeconfig=dev_cluster.kubeconfig,
        log_file=log_file,
        operator_namespace=operator_namespace,
        namespaces=[namespace],
        extra=["--no-bootstrap", "--secret-recheck-interval", "2s", "--config-write-delay", "0.05"],
    ) as process:
        yield Env(kubectl, operator_namespace, namespace, process)
        _assert_no_plaintext_leaked(kubectl, namespace, process)
    for ns in (operator_namespace, namespace):
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _assert_no_plaintext_leaked(kubectl: Kubectl, namespace: str, process: Child) -> None:
    """No token from any Secret of the namespace appears in the operator's log, in events or in status."""
    secrets = kubectl.json("get", "secrets", "-n", namespace)["items"]
    tokens = {
        base64.b64decode(v).decode(errors="replace")
        for s in secrets
        for k, v in (s.get("data") or {}).items()
        if k in ("token", "api-token")
    }
    tokens = {t for t in tokens if len(t) >= 16}
    assert tokens, "the test namespace should hold tokens to look for"
    visible = process.log() + json.dumps(kubectl.json("get", "events,statictokens", "-n", namespace))
    for token in tokens:
        assert token not in visible


def test_apply_gives_a_secret_a_ready_status_and_a_hash_in_the_config(env: Env) -> None:
    apply(env.kubectl, token_resource("basic", groups=["deployers"], metadata={"team": "a"}), namespace=env.namespace)
    obj = eventually(lambda: env.ready("basic"), timeout=30, what="StaticToken basic Ready")
    status = obj["status"]
    assert isinstance(status, dict)
    secret = env.kubectl.json("get", "secret", "-n", env.namespace, "basic")
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}=", token)  # 32 random bytes, as generate_token makes them
    assert base64.b64decode(secret["data"]["tokenId"]).decode() == status["tokenId"]
    assert status["secretName"] == "basic"
    assert status["observedGeneration"] == obj["metadata"]["generation"]  # type: ignore[index]
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("StaticToken", obj["metadata"]["uid"], True)  # type: ignore[index]
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubegate"

    hashes = eventually(lambda: env.entries().get("basic"), timeout=10, what="the hash in the validation config")
    assert hashes == [hash_token(token)]
    shards = env.kubectl.json("get", "secrets", "-n", env.operator_namespace)
    assert token not in json.dumps(shards)  # the plaintext is nowhere in the config ...
    entry = next(e for e in config_entries(env.kubectl, env.operator_namespace) if e.name == "basic")
    assert (entry.groups, entry.metadata, entry.token_id) == (("deployers",), {"team": "a"}, status["tokenId"])


def test_spec_changes_keep_the_token(env: Env) -> None:
    apply(env.kubectl, token_resource("keep", description="first"), namespace=env.namespace)
    eventually(lambda: env.ready("keep"), timeout=30, what="Ready")
    before = secret_token(env.kubectl, env.namespace, "keep")
    apply(env.kubectl, token_resource("keep", description="second", groups=["g2"]), namespace=env.namespace)

    def regrouped() -> bool:
        entry = next((e for e in config_entries(env.kubectl, env.operator_namespace) if e.name == "keep"), None)
        return entry is not None and entry.groups == ("g2",)

    eventually(regrouped, timeout=20, what="the new groups in the config")
    assert secret_token(env.kubectl, env.namespace, "keep") == before
    assert env.entries()["keep"] == [hash_token(before)]


def test_moving_the_secret_keeps_the_token(env: Env) -> None:
    apply(env.kubectl, token_resource("mover"), namespace=env.namespace)
    eventually(lambda: env.ready("mover"), timeout=30, what="Ready")
    before = secret_token(env.kubectl, env.namespace, "mover")
    apply(env.kubectl, token_resource("mover", secretName="mover-moved"), namespace=env.namespace)
    eventually(
        lambda: (env.token("mover") or {}).get("status", {}).get("secretName") == "mover-moved",  # type: ignore[union-attr]
        timeout=30,
        what="status.secretName to follow spec.secretName",
    )
    assert secret_token(env.kubectl, env.namespace, "mover-moved") == before
    assert env.kubectl("get", "secret", "-n", env.namespace, "mover", check=False).returncode != 0


def test_delete_removes_the_secret_and_the_hash(env: Env) -> None:
    apply(env.kubectl, token_resource("doomed"), namespace=env.namespace)
    eventually(lambda: env.ready("doomed"), timeout=30, what="Ready")
    eventually(lambda: "doomed" in env.entries(), timeout=10, what="hash published")
    env.kubectl("delete", "statictoken", "-n", env.namespace, "doomed", "--wait=true", "--timeout=60s")
    # No finalizer holds the resource (its creation costs no write for one): the watch tells the operator.
    eventually(lambda: "doomed" not in env.entries(), timeout=5, what="the hash out of the config")
    eventually(
        lambda: env.kubectl("get", "secret", "-n", env.namespace, "doomed", check=False).returncode != 0,
        timeout=60,
        what="the garbage collector to delete the owned Secret",
    )


def test_a_single_change_rewrites_one_shard(env: Env) -> None:
    apply(env.kubectl, token_resource("one-shard-a"), namespace=env.namespace)
    eventually(lambda: "one-shard-a" in env.entries(), timeout=30, what="first token published")
    before = shard_versions(env.kubectl, env.operator_namespace)
    apply(env.kubectl, token_resource("one-shard-b"), namespace=env.namespace)
    eventually(lambda: "one-shard-b" in env.entries(), timeout=30, what="second token published")
    after = shard_versions(env.kubectl, env.operator_namespace)
    changed = {name for name in after if before.get(name) != after[name]}
    assert len(changed) == 1, changed


def test_ttl_expiry_drops_the_hash_and_says_expired(env: Env) -> None:
    apply(env.kubectl, token_resource("short", ttl="4s"), namespace=env.namespace)
    obj = eventually(lambda: env.ready("short"), timeout=30, what="Ready")
    assert obj["status"]["expiresAt"]  # type: ignore[index]
    eventually(lambda: "short" in env.entries(), timeout=10, what="hash published")
    eventually(lambda: env.reason("short") == "Expired", timeout=20, what="reason Expired")
    assert condition(env.token("short"))["status"] == "False"
    assert "expired at" in condition(env.token("short"))["message"]
    eventually(lambda: "short" not in env.entries(), timeout=10, what="hash removed at expiry")
    assert any(e["reason"] == "Expired" for e in events(env.kubectl, env.namespace, "short"))


def _assert_stalled_expired(env: Env, name: str) -> dict[str, Any]:
    """kstatus reads Stalled=True as Failed, so Argo CD and Flux show the expired token as degraded."""
    obj = env.token(name)
    stalled = condition(obj, "Stalled")
    assert (stalled.get("status"), stalled.get("reason")) == ("True", "Expired"), obj
    assert stalled["observedGeneration"] == obj["metadata"]["generation"]  # type: ignore[index]
    return stalled


@pytest.mark.parametrize(
    ("name", "spec", "revived", "hint"),
    [
        ("stall-ttl", {"ttl": "4s"}, {"ttl": "1h"}, "set a longer spec.ttl, rotate it"),
        ("stall-at", {"expiresAt": "+6s"}, {"expiresAt": "+1h"}, "set a later spec.expiresAt, or delete"),
    ],
)
def test_an_expired_token_is_stalled_until_its_spec_gives_it_time_again(
    env: Env, name: str, spec: dict[str, str], revived: dict[str, str], hint: str
) -> None:
    apply(env.kubectl, token_resource(name, **_absolute(spec)), namespace=env.namespace)
    eventually(lambda: env.ready(name), timeout=30, what="Ready")
    token = secret_token(env.kubectl, env.namespace, name)
    eventually(lambda: env.reason(name) == "Expired", timeout=30, what="reason Expired")
    assert hint in _assert_stalled_expired(env, name)["message"]
    assert condition(env.token(name), "Reconciling") == {}

    apply(env.kubectl, token_resource(name, **_absolute(revived)), namespace=env.namespace)
    obj = eventually(lambda: env.ready(name), timeout=30, what="Ready again after the spec change")
    assert condition(obj, "Stalled") == {}
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]  # type: ignore[index]
    # The same token is valid again; none was generated in its place.
    assert secret_token(env.kubectl, env.namespace, name) == token
    eventually(lambda: env.entries().get(name) == [hash_token(token)], timeout=10, what="hash published again")


def _absolute(spec: dict[str, str]) -> dict[str, str]:
    """`expiresAt: +6s` as a timestamp that many seconds from now."""
    if not spec.get("expiresAt", "").startswith("+"):
        return spec
    at = datetime.now(UTC) + parse_duration(spec["expiresAt"][1:])
    return {**spec, "expiresAt": format_time(at)}


def test_expires_at_in_the_past_is_refused_without_a_token(env: Env) -> None:
    apply(env.kubectl, token_resource("past", expiresAt="2020-01-01T00:00:00Z"), namespace=env.namespace)
    eventually(lambda: env.reason("past") == "ExpiryInPast", timeout=30, what="reason ExpiryInPast")
    ready = condition(env.token("past"))
    assert ready["status"] == "False"
    assert "spec.expiresAt 2020-01-01T00:00:00Z is in the past" in ready["message"]
    assert condition(env.token("past"), "Stalled")["status"] == "True"
    assert env.kubectl("get", "secret", "-n", env.namespace, "past", check=False).returncode != 0
    assert any(e["reason"] == "ExpiryInPast" for e in events(env.kubectl, env.namespace, "past"))


def test_scheduled_rotation_keeps_the_previous_token_for_the_overlap(env: Env) -> None:
    apply(env.kubectl, token_resource("rotating", rotation={"every": "6s", "overlap": "4s"}), namespace=env.namespace)
    first = eventually(lambda: env.ready("rotating"), timeout=30, what="Ready")
    first_id = first["status"]["tokenId"]  # type: ignore[index]
    first_token = secret_token(env.kubectl, env.namespace, "rotating")

    rotated = eventually(
        lambda: (o := env.ready("rotating")) and o["status"]["tokenId"] != first_id and o,  # type: ignore[index]
        timeout=30,
        what="a scheduled rotation",
    )
    second_token = secret_token(env.kubectl, env.namespace, "rotating")
    assert second_token != first_token
    assert rotated["status"]["rotatedAt"]  # type: ignore[index]
    hashes = env.entries()["rotating"]
    # During the overlap both tokens are valid (unless the overlap already ended on a slow machine).
    assert hash_token(second_token) in hashes
    eventually(
        lambda: hash_token(first_token) not in env.entries().get("rotating", []),
        timeout=15,
        what="the previous token to leave the config after the overlap",
    )
    assert any(e["reason"] == "Rotated" for e in events(env.kubectl, env.namespace, "rotating"))


def test_overlap_is_observable_with_a_long_overlap(env: Env) -> None:
    apply(env.kubectl, token_resource("overlap", rotation={"every": "5s", "overlap": "4s"}), namespace=env.namespace)
    eventually(lambda: env.ready("overlap"), timeout=30, what="Ready")
    first = secret_token(env.kubectl, env.namespace, "overlap")
    eventually(
        lambda: len(env.entries().get("overlap", [])) == 2,
        timeout=20,
        what="two valid tokens during the overlap",
    )
    assert hash_token(first) in env.entries()["overlap"]


def test_annotation_rotates_on_demand_once_per_value(env: Env) -> None:
    apply(env.kubectl, token_resource("on-demand"), namespace=env.namespace)
    obj = eventually(lambda: env.ready("on-demand"), timeout=30, what="Ready")
    first_id = obj["status"]["tokenId"]  # type: ignore[index]
    first_token = secret_token(env.kubectl, env.namespace, "on-demand")
    env.kubectl("annotate", "statictoken", "-n", env.namespace, "on-demand", "kubegate.dev/rotate=one")
    second = eventually(
        lambda: (o := env.ready("on-demand")) and o["status"]["tokenId"] != first_id and o,  # type: ignore[index]
        timeout=30,
        what="rotation on the annotation",
    )
    second_token = secret_token(env.kubectl, env.namespace, "on-demand")
    assert second_token != first_token
    eventually(
        lambda: env.entries().get("on-demand") == [hash_token(second_token)],
        timeout=10,
        what="only the new token in the config (no overlap asked for)",
    )
    # Touching something else does not rotate again.
    env.kubectl("label", "statictoken", "-n", env.namespace, "on-demand", "touched=yes")
    env.kubectl("wait", "-n", env.namespace, "statictoken/on-demand", "--for=condition=Ready", "--timeout=10s")
    assert env.token("on-demand")["status"]["tokenId"] == second["status"]["tokenId"]  # type: ignore[index]
    assert env.token("on-demand")["status"]["handledRotateRequest"] == "one"  # type: ignore[index]


def test_bring_your_own_token_is_used_and_never_modified(env: Env) -> None:
    token = "byo-" + uuid.uuid4().hex
    env.kubectl("create", "secret", "generic", "-n", env.namespace, "my-token", f"--from-literal=api-token={token}")
    secret_before = env.kubectl.json("get", "secret", "-n", env.namespace, "my-token")
    apply(
        env.kubectl, token_resource("byo", secretRef={"name": "my-token", "key": "api-token"}), namespace=env.namespace
    )
    obj = eventually(lambda: env.ready("byo"), timeout=30, what="Ready")
    assert obj["status"]["secretName"] == "my-token"  # type: ignore[index]
    eventually(lambda: env.entries().get("byo") == [hash_token(token)], timeout=10, what="the brought token's hash")
    secret_after = env.kubectl.json("get", "secret", "-n", env.namespace, "my-token")
    assert secret_after["metadata"]["resourceVersion"] == secret_before["metadata"]["resourceVersion"]
    assert "ownerReferences" not in secret_after["metadata"]

    # A new value in the Secret is picked up by the periodic re-read.
    new_token = "byo-new-" + uuid.uuid4().hex
    patch = {"data": {"api-token": base64.b64encode(new_token.encode()).decode()}}
    env.kubectl("patch", "secret", "-n", env.namespace, "my-token", "--type=merge", "-p", json.dumps(patch))
    eventually(lambda: env.entries().get("byo") == [hash_token(new_token)], timeout=20, what="the new value's hash")


@pytest.mark.parametrize(
    ("name", "setup", "spec", "reason", "fragment"),
    [
        ("ref-missing", None, {"secretRef": {"name": "nowhere"}}, "SecretNotFound", "does not exist"),
        (
            "ref-nokey",
            {"other": "x" * 20},
            {"secretRef": {"name": "ref-nokey-s"}},
            "SecretKeyMissing",
            "has no key 'token'",
        ),
        ("ref-short", {"token": "short"}, {"secretRef": {"name": "ref-short-s"}}, "InvalidToken", "printable ASCII"),
        (
            "ref-spaces",
            {"token": "has spaces in the token value"},
            {"secretRef": {"name": "ref-spaces-s"}},
            "InvalidToken",
            "without spaces",
        ),
    ],
)
def test_bad_secret_refs_say_what_to_fix(  # noqa: PLR0917 - parametrized
    env: Env, name: str, setup: dict[str, str] | None, spec: dict[str, object], reason: str, fragment: str
) -> None:
    if setup is not None:
        literals = [f"--from-literal={k}={v}" for k, v in setup.items()]
        env.kubectl("create", "secret", "generic", "-n", env.namespace, f"{name}-s", *literals)
    apply(env.kubectl, token_resource(name, **spec), namespace=env.namespace)
    eventually(lambda: env.reason(name) == reason, timeout=30, what=f"reason {reason}")
    ready = condition(env.token(name))
    assert ready["status"] == "False"
    assert fragment in ready["message"]
    assert condition(env.token(name), "Stalled")["status"] == "True"
    assert name not in env.entries()
    assert any(e["reason"] == reason and e["type"] == "Warning" for e in events(env.kubectl, env.namespace, name))


def test_a_stalled_token_recovers_when_its_secret_appears(env: Env) -> None:
    apply(env.kubectl, token_resource("late", secretRef={"name": "late-secret"}), namespace=env.namespace)
    eventually(lambda: env.reason("late") == "SecretNotFound", timeout=30, what="SecretNotFound")
    token = "late-" + uuid.uuid4().hex
    env.kubectl("create", "secret", "generic", "-n", env.namespace, "late-secret", f"--from-literal=token={token}")
    eventually(lambda: env.ready("late"), timeout=40, what="Ready after the Secret appears (retry with backoff)")
    assert condition(env.token("late"), "Stalled") == {}
    eventually(lambda: env.entries().get("late") == [hash_token(token)], timeout=10, what="hash published")


def test_a_secret_owned_by_someone_else_is_never_touched(env: Env) -> None:
    env.kubectl(
        "create", "secret", "generic", "-n", env.namespace, "taken", "--from-literal=token=not-ours-at-all-12345"
    )
    before = env.kubectl.json("get", "secret", "-n", env.namespace, "taken")
    apply(env.kubectl, token_resource("claimer", secretName="taken"), namespace=env.namespace)
    eventually(lambda: env.reason("claimer") == "SecretConflict", timeout=30, what="reason SecretConflict")
    assert "does not belong to this StaticToken" in condition(env.token("claimer"))["message"]
    after = env.kubectl.json("get", "secret", "-n", env.namespace, "taken")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    # Other tokens are unaffected.
    apply(env.kubectl, token_resource("bystander"), namespace=env.namespace)
    eventually(lambda: env.ready("bystander"), timeout=30, what="another token still becomes Ready")


def test_the_operator_log_holds_no_plaintext(env: Env, tmp_path: Path) -> None:
    apply(env.kubectl, token_resource("logged"), namespace=env.namespace)
    eventually(lambda: env.ready("logged"), timeout=30, what="Ready")
    token = secret_token(env.kubectl, env.namespace, "logged")
    log = env.process.log()
    assert "generated token" in log  # the log does talk about tokens ...
    assert token not in log  # ... by id only
