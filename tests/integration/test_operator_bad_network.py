"""The operator on a bad network (issue 11): it reaches the API only through a forwarder that adds latency or
drops connections; two servers reach the API directly, as servers near the API would.

With 2 s added to every API call, Ready still means usable: every token seen Ready verifies on both servers
within CATCH_UP seconds (the servers' own delay: they watch the config directly), and the leader never
stops writing for want of a Lease renewal. With 20% of new connections dropped, 200 new tokens are Ready
and verify within 60 s. The operator runs with its default Lease, so leader election is under the same
network.

KUBEGATE_BAD_NETWORK_TOKENS sets the number of tokens of the latency test (default 100).
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubegate.devcluster import ClusterState, Kubectl
from kubegate.devcluster.forwarder import Forwarder, forwarded_kubeconfig, port_of
from support.http import get
from support.kube import apply, token_resource
from support.processes import ServerProcess, operator

pytestmark = pytest.mark.integration
LATENCY_TOKENS = int(os.environ.get("KUBEGATE_BAD_NETWORK_TOKENS", "100"))
CATCH_UP = 2.0
"""Seconds a server gets to see a config change after a token is seen Ready (it watches the config)."""


@dataclass
class Progress:
    """Polls statuses and Secrets; verifies each token CATCH_UP seconds after it was first seen Ready."""

    kubectl: Kubectl
    namespace: str
    servers: list[ServerProcess]
    names: set[str]
    started: float = field(default_factory=time.monotonic)
    ready_at: dict[str, float] = field(default_factory=dict)
    verified_at: dict[str, float] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    """Tokens Ready whose value a server refused CATCH_UP seconds later, or Ready with no token in the Secret."""
    _due: list[tuple[float, str, str]] = field(default_factory=list)

    def sample(self) -> None:
        tokens = self.kubectl.json("get", "statictokens", "-n", self.namespace)["items"]
        ready = {t["metadata"]["name"] for t in tokens if _ready(t)} & self.names
        secrets = self.kubectl.json("get", "secrets", "-n", self.namespace)["items"]
        values = {s["metadata"]["name"]: s.get("data", {}).get("token") for s in secrets}
        now = time.monotonic()
        for name in sorted(ready - self.ready_at.keys()):
            self.ready_at[name] = now - self.started
            value = values.get(name)
            if value is None:
                self.violations.append(f"{name}: Ready, but its Secret holds no token")
                continue
            self._due.append((now + CATCH_UP, name, base64.b64decode(value).decode()))
        while self._due and self._due[0][0] <= time.monotonic():
            _, name, value = self._due.pop(0)
            refused = [s.process.name for s in self.servers if get(s.url + "/auth/v1/verify", token=value)[0] != 200]
            if refused:
                self.violations.append(f"{name}: Ready, refused {CATCH_UP:.0f} s later by {', '.join(refused)}")
            else:
                self.verified_at[name] = time.monotonic() - self.started

    def run(self, *, timeout: float) -> None:
        deadline = self.started + timeout
        while len(self.verified_at) + len(self.violations) < len(self.names) and time.monotonic() < deadline:
            self.sample()
            time.sleep(0.3)

    def figures(self) -> str:
        def last(times: dict[str, float]) -> str:
            return f"{max(times.values()):.1f} s" if len(times) == len(self.names) else f"{len(times)} by the end"

        return (
            f"{len(self.names)} tokens: all Ready after {last(self.ready_at)}, all verified after "
            f"{last(self.verified_at)}; violations: {len(self.violations)}"
        )


def _ready(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def run_on_bad_network(
    forwarder: Forwarder,
    *,
    count: int,
    timeout: float,
    dev_cluster: ClusterState,
    kubectl: Kubectl,
    namespaces: tuple[str, str],
    servers: list[ServerProcess],
    tmp_path: Path,
) -> Progress:
    operator_ns, apps = namespaces
    kubeconfig = forwarded_kubeconfig(dev_cluster.kubeconfig, tmp_path / "forwarded.kubeconfig", forwarder.port)
    log_file = tmp_path / "operator.log"
    with operator(
        kubeconfig=kubeconfig,
        log_file=log_file,
        operator_namespace=operator_ns,
        namespaces=[apps],
        standalone=False,
        extra=["--no-bootstrap"],
    ):
        # The figures are for new tokens, with the operator already running: its start-up on a bad network
        # is not what the targets are about.
        warm_up = Progress(kubectl, apps, servers, {"warm-up"})
        apply(kubectl, token_resource("warm-up"), namespace=apps)
        warm_up.run(timeout=90)
        assert warm_up.verified_at, f"the operator made no token usable within 90 s: {log_file}"
        names = [f"net-{i:03d}" for i in range(count)]
        progress = Progress(kubectl, apps, servers, set(names))
        apply(kubectl, *(token_resource(n) for n in names), namespace=apps)
        progress.run(timeout=timeout)
    print(f"\n{progress.figures()}; connections {forwarder.accepted}, dropped {forwarder.dropped}")
    print(f"operator log: {log_file}")
    return progress


def test_with_2s_latency_ready_means_usable(
    dev_cluster: ClusterState,
    kubectl: Kubectl,
    namespaces: tuple[str, str],
    servers: list[ServerProcess],
    tmp_path: Path,
) -> None:
    with Forwarder(target=port_of(dev_cluster.apiserver_url), latency=2.0) as forwarder:
        progress = run_on_bad_network(
            forwarder,
            count=LATENCY_TOKENS,
            timeout=110,
            dev_cluster=dev_cluster,
            kubectl=kubectl,
            namespaces=namespaces,
            servers=servers,
            tmp_path=tmp_path,
        )
    assert progress.violations == []
    assert len(progress.verified_at) == LATENCY_TOKENS, progress.figures()
    # The leader renewed its Lease in time throughout: it never refused itself a write.
    assert "may not write" not in (tmp_path / "operator.log").read_text()


def test_with_20_percent_of_connections_dropped_200_tokens_work_within_60s(
    dev_cluster: ClusterState,
    kubectl: Kubectl,
    namespaces: tuple[str, str],
    servers: list[ServerProcess],
    tmp_path: Path,
) -> None:
    with Forwarder(target=port_of(dev_cluster.apiserver_url), drop_rate=0.2, seed=11) as forwarder:
        progress = run_on_bad_network(
            forwarder,
            count=200,
            timeout=60 + CATCH_UP,
            dev_cluster=dev_cluster,
            kubectl=kubectl,
            namespaces=namespaces,
            servers=servers,
            tmp_path=tmp_path,
        )
    assert progress.violations == []
    assert len(progress.verified_at) == 200, progress.figures()
    assert max(progress.ready_at.values()) <= 60
    assert forwarder.dropped > 0
