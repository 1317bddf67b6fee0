"""Restarts and replicas: no token generated twice, nothing rewritten without a change, one leader at a time,
fail-over in seconds, and a new leader that publishes the cluster's truth."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import signal
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from kubegate.contracts.timestamps import parse_time
from kubegate.contracts.token_format import hash_token
from kubegate.devcluster import ClusterState, Kubectl
from kubegate.devcluster.processes import Child
from support import eventually
from support.kube import apply, config_entries, secret_token, shard_versions, token_resource
from support.processes import operator

pytestmark = pytest.mark.integration
GENERATED = re.compile(r"generated token (\S+) for StaticToken (\S+)/(\S+)")
LEASE = "kubegate-operator"
# Short lease settings where the test is about what happens, not how fast.
FAST_LEASE = ["--lease-duration", "4s", "--lease-renew-deadline", "3s", "--lease-retry-period", "1s"]
# Two shards: each write carries half the tokens, so any stale entry an operator keeps in memory would be
# published with the next one.
FEW_SHARDS = ["--config-shards", "2"]
# Hand-overs of each kind (graceful, kill -9) in the timing test.
HANDOVERS = 2


def _ready_names(kubectl: Kubectl, namespace: str) -> set[str]:
    items = kubectl.json("get", "statictokens", "-n", namespace)["items"]
    return {
        i["metadata"]["name"]
        for i in items
        if any(c["type"] == "Ready" and c["status"] == "True" for c in (i.get("status") or {}).get("conditions", []))
    }


def _generated(*logs: Path) -> Counter[str]:
    return Counter(m.group(3) for log in logs for m in GENERATED.finditer(log.read_text()))


def _reconciled(log: Path, namespace: str) -> set[str]:
    """The StaticTokens of `namespace` that the operator logged (DEBUG) as reconciled."""
    return set(re.findall(rf"StaticToken {re.escape(namespace)}/(\S+) reconciled", log.read_text()))


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
            lambda: _reconciled(second_log, apps) >= set(names),
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


def _holder(kubectl: Kubectl, operator_ns: str) -> str | None:
    result = kubectl("get", "lease", "-n", operator_ns, LEASE, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)["spec"].get("holderIdentity") or None


def _leader(kubectl: Kubectl, operator_ns: str, candidates: list[Child]) -> Child:
    """The candidate that holds the lease, by the identity its log says it acquired the lease as."""

    def holding() -> Child | None:
        holder = _holder(kubectl, operator_ns)
        found = [p for p in candidates if holder and f"acquired the lease {operator_ns}/{LEASE} as {holder}" in p.log()]
        return found[0] if len(found) == 1 else None

    return eventually(holding, timeout=60, what="one candidate to hold the lease")


def _time_to_ready(kubectl: Kubectl, apps: str, name: str, *, since: float) -> float:
    """Create a StaticToken now and return the seconds from `since` until it is Ready."""
    apply(kubectl, token_resource(name), namespace=apps)
    eventually(lambda: name in _ready_names(kubectl, apps), timeout=120, what=f"{name} Ready", interval=0.05)
    return time.monotonic() - since


def test_one_replica_acts_and_a_stand_by_takes_over_in_time(
    dev_cluster: ClusterState, kubectl: Kubectl, namespaces: tuple[str, str], tmp_path: Path
) -> None:
    """With the default lease settings: the holder acts alone; after a graceful stop a stand-by acts within
    5 s, after kill -9 within 15 s. Each hand-over starts a fresh stand-by for the next."""
    operator_ns, apps = namespaces
    run = {
        "kubeconfig": dev_cluster.kubeconfig,
        "operator_namespace": operator_ns,
        "namespaces": [apps],
        "standalone": False,
        "extra": ["--no-bootstrap"],
    }
    figures: dict[str, list[float]] = {"graceful": [], "kill -9": []}
    with contextlib.ExitStack() as stack:
        replicas = [stack.enter_context(operator(log_file=tmp_path / f"r{i}.log", **run)) for i in range(2)]  # type: ignore[arg-type]
        for handover, how in enumerate(["graceful", "kill -9"] * HANDOVERS):
            leader = _leader(kubectl, operator_ns, replicas)
            standby = next(p for p in replicas if p is not leader)
            eventually(lambda: "waiting for the lease" in standby.log(), timeout=30, what="the stand-by to wait")  # noqa: B023
            names = [f"h{handover}-{i}" for i in range(5)]
            apply(kubectl, *(token_resource(n) for n in names), namespace=apps)
            eventually(lambda: _ready_names(kubectl, apps) >= set(names), timeout=60, what="the tokens Ready")  # noqa: B023
            assert set(_generated(leader.log_file)) >= set(names)
            assert not set(_generated(standby.log_file)) & set(names), "the stand-by acted"

            since = time.monotonic()
            leader.send_signal(signal.SIGTERM if how == "graceful" else signal.SIGKILL)
            figures[how].append(_time_to_ready(kubectl, apps, f"after-{handover}", since=since))
            assert f"after-{handover}" in _generated(standby.log_file)
            leader.stop()
            replicas = [standby, stack.enter_context(operator(log_file=tmp_path / f"r{handover + 2}.log", **run))]  # type: ignore[arg-type]
    print("fail-over seconds:", {how: [round(f, 1) for f in values] for how, values in figures.items()})
    assert max(figures["graceful"]) < 5.0, figures
    assert max(figures["kill -9"]) < 15.0, figures


def test_a_leader_that_loses_the_lease_exits_at_once(
    dev_cluster: ClusterState, kubectl: Kubectl, namespaces: tuple[str, str], tmp_path: Path
) -> None:
    """Another holder in the Lease (as after a pause longer than the lease: a frozen VM, a partition) makes
    the leader exit with an error at its next renewal, without acting on anything more."""
    operator_ns, apps = namespaces
    extra = ["--no-bootstrap", *FAST_LEASE]
    run = {"kubeconfig": dev_cluster.kubeconfig, "operator_namespace": operator_ns, "namespaces": [apps]}
    with operator(log_file=tmp_path / "op.log", standalone=False, extra=extra, **run) as leader:  # type: ignore[arg-type]
        assert _leader(kubectl, operator_ns, [leader]) is leader
        lease = kubectl.json("get", "lease", "-n", operator_ns, LEASE)
        lease["spec"]["holderIdentity"] = "intruder"
        kubectl("replace", "-f", "-", stdin=json.dumps(lease))
        # kubectl's replace carries the resourceVersion it read: it fails rather than race a renewal.
        eventually(lambda: leader.returncode is not None, timeout=5, what="the leader to exit")
        assert leader.returncode == 1
        assert f"lost the lease {operator_ns}/{LEASE}" in leader.log()
        apply(kubectl, token_resource("after-loss"), namespace=apps)
        time.sleep(2)
        assert _ready_names(kubectl, apps) == set()
        assert _generated(leader.log_file) == Counter()


def test_a_new_leader_never_publishes_what_the_old_one_deleted_or_rotated(
    dev_cluster: ClusterState, kubectl: Kubectl, namespaces: tuple[str, str], tmp_path: Path
) -> None:
    """The hand-over of issue 11: B acts, A waits from before B's changes; B deletes and rotates tokens,
    then dies; A takes over. A must publish the cluster's truth, not what it saw when it started."""
    operator_ns, apps = namespaces
    run = {
        "kubeconfig": dev_cluster.kubeconfig,
        "operator_namespace": operator_ns,
        "namespaces": [apps],
        "standalone": False,
    }
    keep, gone, turn = ([f"{kind}-{i:02d}" for i in range(10)] for kind in ("keep", "gone", "turn"))
    apply(kubectl, *(token_resource(n) for n in keep + gone + turn), namespace=apps)
    extra = ["--no-bootstrap", *FAST_LEASE, *FEW_SHARDS]
    with operator(log_file=tmp_path / "b.log", extra=extra, **run) as b:  # type: ignore[arg-type]
        eventually(lambda: _ready_names(kubectl, apps) >= {*keep, *gone, *turn}, timeout=60, what="all Ready")
        eventually(lambda: len(config_entries(kubectl, operator_ns)) == 30, timeout=20, what="30 hashes published")
        old = {n: hash_token(secret_token(kubectl, apps, n)) for n in gone + turn}
        with operator(log_file=tmp_path / "a.log", extra=extra, **run) as a:  # type: ignore[arg-type]
            eventually(lambda: "waiting for the lease" in a.log(), timeout=30, what="A to wait for the lease")
            assert _leader(kubectl, operator_ns, [a, b]) is b

            kubectl("delete", "statictoken", "-n", apps, *gone, "--wait=true")
            for name in turn:
                kubectl("annotate", "statictoken", "-n", apps, name, "kubegate.dev/rotate=once")

            def b_published() -> bool:
                entries = {e.name: e.sha256 for e in config_entries(kubectl, operator_ns)}
                return set(entries) == {*keep, *turn} and all(entries[n] != old[n] for n in turn)

            eventually(b_published, timeout=60, what="B to publish the deletions and rotations")
            new = {n: hash_token(secret_token(kubectl, apps, n)) for n in turn}
            assert not set(_generated(a.log_file)), "the stand-by acted"

            b.stop(kill=True)
            since = time.monotonic()
            took = _time_to_ready(kubectl, apps, "after-kill", since=since)
            assert "after-kill" in _generated(a.log_file)
            eventually(
                lambda: _reconciled(a.log_file, apps) >= {*keep, *turn},
                timeout=30,
                what="A to reconcile every StaticToken on taking over",
            )
            time.sleep(2)  # let any write of those reconciliations land
            entries = {e.name: e.sha256 for e in config_entries(kubectl, operator_ns)}
            print(f"A took over and acted {took:.1f}s after B's death")
            assert sorted(set(entries) & set(gone)) == [], "deleted tokens published again"
            assert {n: entries.get(n) for n in turn} == new, "rotated tokens reverted"
            assert not set(entries.values()) & set(old.values())
            assert set(entries) == {*keep, *turn, "after-kill"}


def test_a_leader_frozen_past_its_lease_wakes_up_and_publishes_nothing_stale(
    dev_cluster: ClusterState, kubectl: Kubectl, namespaces: tuple[str, str], tmp_path: Path
) -> None:
    """The pause of issue 11: B acts and holds every token in memory; B freezes (SIGSTOP, as a stopped VM
    or a long pause looks from outside) and A takes over, deletes and rotates tokens; B wakes up. B must not
    publish what it remembers: it exits. When A dies, a restarted B publishes the cluster's truth."""
    operator_ns, apps = namespaces
    run = {
        "kubeconfig": dev_cluster.kubeconfig,
        "operator_namespace": operator_ns,
        "namespaces": [apps],
        "standalone": False,
        "extra": ["--no-bootstrap", *FAST_LEASE, *FEW_SHARDS],
    }
    keep, gone, turn = ([f"{kind}-{i:02d}" for i in range(10)] for kind in ("keep", "gone", "turn"))
    apply(kubectl, *(token_resource(n) for n in keep + gone + turn), namespace=apps)
    with contextlib.ExitStack() as stack:
        b = stack.enter_context(operator(log_file=tmp_path / "b.log", **run))  # type: ignore[arg-type]
        eventually(lambda: _ready_names(kubectl, apps) >= {*keep, *gone, *turn}, timeout=60, what="all Ready")
        eventually(lambda: len(config_entries(kubectl, operator_ns)) == 30, timeout=20, what="30 hashes published")
        old = {n: hash_token(secret_token(kubectl, apps, n)) for n in gone + turn}
        a = stack.enter_context(operator(log_file=tmp_path / "a.log", **run))  # type: ignore[arg-type]
        assert _leader(kubectl, operator_ns, [a, b]) is b

        b.send_signal(signal.SIGSTOP)
        try:
            eventually(lambda: _leader(kubectl, operator_ns, [a, b]) is a, timeout=120, what="A to take over")
            kubectl("delete", "statictoken", "-n", apps, *gone, "--wait=true")
            for name in turn:
                kubectl("annotate", "statictoken", "-n", apps, name, "kubegate.dev/rotate=once")

            def truth_published() -> bool:
                entries = {e.name: e.sha256 for e in config_entries(kubectl, operator_ns)}
                return set(entries) == {*keep, *turn} and all(entries[n] != old[n] for n in turn)

            eventually(truth_published, timeout=60, what="A to publish the deletions and rotations")
            new = {n: hash_token(secret_token(kubectl, apps, n)) for n in turn}
        finally:
            b.send_signal(signal.SIGCONT)

        def published() -> dict[str, str]:
            return {e.name: e.sha256 for e in config_entries(kubectl, operator_ns)}

        time.sleep(3)  # B has woken up; whatever it would write is written by now
        entries = published()
        assert sorted(set(entries) & set(gone)) == [], "deleted tokens published again"
        assert {n: entries.get(n) for n in turn} == new, "rotated tokens reverted"
        assert not set(entries.values()) & set(old.values())
        eventually(lambda: b.returncode is not None, timeout=5, what="B to exit")
        assert b.returncode == 1
        assert f"lost the lease {operator_ns}/{LEASE}" in b.log()

        a.stop(kill=True)
        restarted = stack.enter_context(operator(log_file=tmp_path / "b2.log", **run))  # type: ignore[arg-type]
        _time_to_ready(kubectl, apps, "after-restart", since=time.monotonic())
        assert "after-restart" in _generated(restarted.log_file)
        time.sleep(2)  # the restarted B reconciles every StaticToken on taking over; let its writes land
        entries = published()
        assert set(entries) == {*keep, *turn, "after-restart"}
        assert {n: entries[n] for n in turn} == new


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
        deleted_at, expired_at = parse_time(events[0]["firstTimestamp"]), parse_time(expires)
        assert deleted_at is not None
        assert expired_at is not None
        assert deleted_at >= expired_at + timedelta(seconds=3)
    assert _ready_names(kubectl, apps) == {"long-lived"}
