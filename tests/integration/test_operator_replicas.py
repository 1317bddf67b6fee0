"""Restarts and replicas: no token generated twice, nothing rewritten without a change, one active replica."""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from kubegate.devcluster import ClusterState, Kubectl
from support import eventually
from support.kube import apply, config_entries, shard_versions, token_resource
from support.processes import operator

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
GENERATED = re.compile(r"generated token (\S+) for StaticToken (\S+)/(\S+)")


@pytest.fixture
def namespaces(kubectl: Kubectl, crds: list[str]) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:6]
    names = (f"kg-op-{suffix}", f"kg-apps-{suffix}")
    for ns in names:
        kubectl("create", "namespace", ns)
    yield names
    for ns in names:
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _ready_names(kubectl: Kubectl, namespace: str) -> set[str]:
    items = kubectl.json("get", "statictokens", "-n", namespace)["items"]
    return {
        i["metadata"]["name"]
        for i in items
        if any(c["type"] == "Ready" and c["status"] == "True" for c in (i.get("status") or {}).get("conditions", []))
    }


def _generated(*logs: Path) -> Counter[str]:
    return Counter(m.group(3) for log in logs for m in GENERATED.finditer(log.read_text()))


def test_restart_in_the_middle_of_200_tokens(
    dev_cluster: ClusterState, kubectl: Kubectl, namespaces: tuple[str, str], tmp_path: Path
) -> None:
    operator_ns, apps = namespaces
    names = [f"bulk-{i:03d}" for i in range(200)]
    apply(kubectl, *(token_resource(n, groups=["bulk"]) for n in names), namespace=apps)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    run = {"kubeconfig": dev_cluster.kubeconfig, "operator_namespace": operator_ns, "namespaces": [apps]}
    with operator(log_file=first_log, **run) as process:  # type: ignore[arg-type]
        eventually(lambda: len(_generated(first_log)) >= 40, timeout=60, what="the first tokens")
        process.stop(kill=True)  # in the middle of the work, without any chance to tidy up
    done_before = len(_generated(first_log))
    assert done_before < 200, "the operator finished before it was killed; the test proves nothing"

    with operator(log_file=second_log, **run):  # type: ignore[arg-type]
        eventually(lambda: _ready_names(kubectl, apps) == set(names), timeout=120, what="all 200 tokens Ready")
        eventually(
            lambda: {e.name for e in config_entries(kubectl, operator_ns)} >= set(names),
            timeout=30,
            what="all 200 hashes in the config",
        )

    # A kill right after a Secret write loses that token's log line, never the token: the second run
    # adopts the Secret. So: at most one "generated" line per token, and every token's Secret, status
    # and config entry agree on one token id.
    generated = _generated(first_log, second_log)
    assert [n for n in names if generated[n] > 1] == []
    tokens = {i["metadata"]["name"]: i for i in kubectl.json("get", "statictokens", "-n", apps)["items"]}
    secrets = kubectl.json("get", "secrets", "-n", apps, "-l", "app.kubernetes.io/managed-by=kubegate")["items"]
    assert len(secrets) == 200
    assert {s["metadata"]["ownerReferences"][0]["name"] for s in secrets} == set(names)  # no orphan
    for secret in secrets:
        owner = secret["metadata"]["ownerReferences"][0]["name"]
        token_id = base64.b64decode(secret["data"]["tokenId"]).decode()
        assert tokens[owner]["status"]["tokenId"] == token_id
    entries = {e.name: e.token_id for e in config_entries(kubectl, operator_ns) if e.namespace == apps}
    assert entries == {n: tokens[n]["status"]["tokenId"] for n in names}


def test_restart_with_nothing_changed_writes_nothing(
    dev_cluster: ClusterState, kubectl: Kubectl, namespaces: tuple[str, str], tmp_path: Path
) -> None:
    operator_ns, apps = namespaces
    names = [f"calm-{i}" for i in range(20)]
    apply(kubectl, *(token_resource(n) for n in names), namespace=apps)
    run = {"kubeconfig": dev_cluster.kubeconfig, "operator_namespace": operator_ns, "namespaces": [apps]}
    with operator(log_file=tmp_path / "first.log", **run):  # type: ignore[arg-type]
        eventually(lambda: _ready_names(kubectl, apps) == set(names), timeout=60, what="all Ready")
        eventually(lambda: len(config_entries(kubectl, operator_ns)) >= 21, timeout=20, what="hashes published")
    shards = shard_versions(kubectl, operator_ns)
    tokens = {
        i["metadata"]["name"]: i["metadata"]["resourceVersion"]
        for i in kubectl.json("get", "statictokens", "-n", apps)["items"]
    }

    second_log = tmp_path / "second.log"
    with operator(log_file=second_log, **run):  # type: ignore[arg-type]
        eventually(
            lambda: second_log.read_text().count("Resuming is processed") >= len(names),
            timeout=60,
            what="every token resumed",
        )
        time.sleep(2)  # longer than the write delay: a write would have happened by now
        assert shard_versions(kubectl, operator_ns) == shards
        after = {
            i["metadata"]["name"]: i["metadata"]["resourceVersion"]
            for i in kubectl.json("get", "statictokens", "-n", apps)["items"]
        }
        assert after == tokens
    assert _generated(second_log) == Counter()


def test_two_replicas_one_acts_the_other_takes_over(
    dev_cluster: ClusterState, kubectl: Kubectl, namespaces: tuple[str, str], tmp_path: Path
) -> None:
    kubectl("apply", "-f", str(ROOT / "manifests" / "peering.yaml"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/kopfpeerings.kopf.dev")
    operator_ns, apps = namespaces
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    run = {
        "kubeconfig": dev_cluster.kubeconfig,
        "operator_namespace": operator_ns,
        "namespaces": [apps],
        "standalone": False,
        "extra": ["--no-bootstrap"],
    }
    with operator(log_file=logs[0], **run) as a, operator(log_file=logs[1], **run) as b:  # type: ignore[arg-type]
        eventually(
            lambda: len(kubectl.json("get", "kopfpeering", "-n", apps, "kubegate").get("status") or {}) == 2,
            timeout=60,
            what="both replicas in the peering object",
        )
        time.sleep(3)  # let the lower priority replica notice the higher one and pause
        first = [f"peer-{i}" for i in range(10)]
        apply(kubectl, *(token_resource(n) for n in first), namespace=apps)
        eventually(lambda: _ready_names(kubectl, apps) >= set(first), timeout=60, what="the first tokens Ready")
        per_log = [_generated(log) for log in logs]
        assert sum(per_log, Counter()) == Counter(dict.fromkeys(first, 1))
        active_index = 0 if per_log[0] else 1
        assert not per_log[1 - active_index], "both replicas generated tokens"

        (a if active_index == 0 else b).stop()  # graceful: it leaves the peering at once
        second = [f"after-{i}" for i in range(5)]
        apply(kubectl, *(token_resource(n) for n in second), namespace=apps)
        eventually(lambda: _ready_names(kubectl, apps) >= set(second), timeout=90, what="the standby to take over")
        assert set(_generated(logs[1 - active_index])) == set(second)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_expired_tokens_are_deleted_after_the_grace_period_when_asked(
    dev_cluster: ClusterState, kubectl: Kubectl, namespaces: tuple[str, str], tmp_path: Path
) -> None:
    operator_ns, apps = namespaces
    apply(kubectl, token_resource("short-lived", ttl="3s"), token_resource("long-lived", ttl="1h"), namespace=apps)
    run = {"kubeconfig": dev_cluster.kubeconfig, "operator_namespace": operator_ns, "namespaces": [apps]}
    with operator(log_file=tmp_path / "op.log", extra=["--no-bootstrap", "--delete-expired-after", "3s"], **run):  # type: ignore[arg-type]
        eventually(lambda: _ready_names(kubectl, apps) >= {"short-lived", "long-lived"}, timeout=30, what="Ready")
        expires = kubectl.json("get", "statictoken", "-n", apps, "short-lived")["status"]["expiresAt"]
        eventually(
            lambda: kubectl("get", "statictoken", "-n", apps, "short-lived", check=False).returncode != 0,
            timeout=30,
            what="the expired StaticToken to be deleted",
        )
        events = [e for e in kubectl.json("get", "events", "-n", apps)["items"] if e["reason"] == "DeletingExpired"]
        assert [e["involvedObject"]["name"] for e in events] == ["short-lived"]
        # Deleted no sooner than the grace period after expiry (timestamps have whole seconds).
        assert _time(events[0]["firstTimestamp"]) >= _time(expires) + timedelta(seconds=3)
    assert _ready_names(kubectl, apps) == {"long-lived"}
