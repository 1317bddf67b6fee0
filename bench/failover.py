"""Fail-over time of the operator: from the leader's death until the stand-by made a new StaticToken Ready.

    .venv/bin/python bench/failover.py --tries 5

Starts its own dev cluster (the control plane `make control-plane` built) in a temporary directory,
installs the CRDs and runs two `kubegate operator` replicas with the default lease settings. Then, for
each kind of death (kill -9, SIGTERM) and each try:
1. the leader is signalled, and a StaticToken is created right after the signal;
2. timed from the signal: until the token's hash is in the validation config, and until it is Ready;
3. the dead replica is replaced by a fresh one, which waits for the lease before the next try.
Printed: min / median / max seconds per kind, and the machine's load. Everything it starts is stopped at
the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubegate.devcluster import Kubectl, start_cluster, stop_cluster
from kubegate.devcluster.processes import Child, start_kubegate, stop_all
from kubegate.validation_config.shards import DATA_KEY, SHARD_LABEL, SHARD_LABEL_VALUE, decode_shard

ROOT = Path(__file__).resolve().parents[1]
OPERATOR_NS, APPS_NS = "kubegate-system", "bench"
LEASE = "kubegate-operator"
KINDS = {"kill -9": signal.SIGKILL, "SIGTERM": signal.SIGTERM}
TIMEOUT = 120.0


def until(check: Callable[[], Any], what: str, timeout: float = TIMEOUT, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return result


def replica(log: Path, kubeconfig: Path) -> Child:
    """One `kubegate operator` replica, its output in `log`."""
    args = [
        "operator",
        f"--operator-namespace={OPERATOR_NS}",
        f"--namespace={APPS_NS}",
        "--no-bootstrap",
        "--health-address=127.0.0.1:0",
    ]
    return start_kubegate(log.stem, args, log_file=log, kubeconfig=kubeconfig)


def leader(kubectl: Kubectl, replicas: list[Child]) -> Child:
    """The replica holding the Lease, by the identity its log says it acquired the lease as."""

    def holding() -> Child | None:
        result = kubectl("get", "lease", "-n", OPERATOR_NS, LEASE, "-o", "json", check=False)
        holder = json.loads(result.stdout)["spec"].get("holderIdentity") if result.returncode == 0 else None
        found = [r for r in replicas if holder and f"acquired the lease {OPERATOR_NS}/{LEASE} as {holder}" in r.log()]
        return found[0] if len(found) == 1 else None

    replica: Child = until(holding, "one replica to hold the lease")
    return replica


def ready(kubectl: Kubectl, name: str) -> bool:
    item = kubectl.json("get", "statictoken", "-n", APPS_NS, name)
    conditions = (item.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def published(kubectl: Kubectl, name: str) -> bool:
    shards = kubectl.json("get", "secrets", "-n", OPERATOR_NS, "-l", f"{SHARD_LABEL}={SHARD_LABEL_VALUE}")
    return any(
        e.name == name and e.namespace == APPS_NS for s in shards["items"] for e in decode_shard(s["data"][DATA_KEY])
    )


def hand_over(kubectl: Kubectl, dying: Child, how: signal.Signals, name: str) -> tuple[float, float]:
    """Signal the leader, create `name` at once; seconds until its hash is published and until it is Ready."""
    signalled = time.monotonic()
    dying.send_signal(how)
    body = {"apiVersion": "kubegate.dev/v1alpha1", "kind": "StaticToken", "metadata": {"name": name}, "spec": {}}
    kubectl("apply", "-n", APPS_NS, "-f", "-", stdin=json.dumps(body))
    at_publish = until(lambda: published(kubectl, name) and time.monotonic(), f"{name} published", interval=0.05)
    at_ready = until(lambda: ready(kubectl, name) and time.monotonic(), f"{name} Ready", interval=0.05)
    # Two reads a poll: each time is late by at most one round of them (about 0.1-0.2 s here).
    return at_publish - signalled, at_ready - signalled


def summary(values: list[float]) -> str:
    return f"min {min(values):.1f} s, median {statistics.median(values):.1f} s, max {max(values):.1f} s"


def measure(kubectl: Kubectl, tmp: Path, kubeconfig: Path, tries: int) -> dict[str, list[tuple[float, float]]]:
    started = [replica(tmp / f"r{i}.log", kubeconfig) for i in range(2)]
    replicas = list(started)
    figures: dict[str, list[tuple[float, float]]] = {kind: [] for kind in KINDS}
    try:
        for kind, how in KINDS.items():
            for i in range(tries):
                # The stand-by has been waiting long enough that the hand-over is the whole cost.
                dying = leader(kubectl, replicas)
                standby = next(r for r in replicas if r is not dying)
                until(lambda: "waiting for the lease" in standby.log(), "the stand-by to wait")  # noqa: B023
                taken = hand_over(kubectl, dying, how, f"{kind.replace(' ', '').replace('-', '')}-{i}".lower())
                figures[kind].append(taken)
                print(f"{kind} #{i + 1}: published after {taken[0]:.1f} s, Ready after {taken[1]:.1f} s", flush=True)
                dying.stop()
                fresh = replica(tmp / f"r{len(started)}.log", kubeconfig)
                started.append(fresh)
                replicas = [standby, fresh]
    finally:
        stop_all(started)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=5, help="hand-overs of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubegate-bench-") as tmp:
        state_dir = Path(tmp) / "cluster"
        cluster = start_cluster(state_dir=state_dir, name="bench", die_with_parent=True)
        try:
            kubectl = Kubectl(cluster)
            kubectl.install_crds(ROOT / "crds")
            for ns in (OPERATOR_NS, APPS_NS):
                kubectl("create", "namespace", ns)
            figures = measure(kubectl, Path(tmp), cluster.kubeconfig, args.tries)
        finally:
            stop_cluster(state_dir)
    print(f"load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
    for kind, values in figures.items():
        print(f"{kind}: published {summary([p for p, _ in values])}; Ready {summary([r for _, r in values])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
