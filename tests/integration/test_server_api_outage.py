"""Through a 60 s Kubernetes API outage the servers answer every request from memory, and when the API
returns, the operator and both servers catch up within 2 s.

The operator and two servers reach their API server through a forwarder, as through a Service: the
apiserver behind it is stopped for real, and a new one (on the same etcd) takes its place at the same
address. Meanwhile kubectl changes things through the cluster's main apiserver, which stays up.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from kubegate.devcluster import ClusterState, Kubectl, start_apiserver, stop_apiserver
from kubegate.devcluster.forwarder import Forwarder, forwarded_kubeconfig, port_of
from kubegate.devcluster.ports import pick_free_ports
from kubegate.devcluster.processes import bootstrap_token, start_kubegate
from support.kube import apply_static_token, read_token
from support.processes import ServerProcess, start_server

pytestmark = pytest.mark.integration

OUTAGE = 60.0
# The target is 2 s (issue 11), measured by bench/api_outage.py; a timed test on a shared machine only
# checks that the catch-up does not wait for a backoff (the old one reached 10 s for the servers, 21 s
# for the operator's watches).
CATCH_UP = 6.0


async def status(http: aiohttp.ClientSession, url: str, token: str) -> int:
    async with http.get(url + "/auth/v1/verify", headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status


async def config_age(http: aiohttp.ClientSession, url: str) -> float:
    text = await (await http.get(url + "/metrics")).text()
    match = re.search(r"^kubegate_config_age_seconds (\S+)$", text, re.MULTILINE)
    assert match
    return float(match.group(1))


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float, what: str) -> float:
    """Seconds until `check` holds; fails after `timeout`."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout, f"timed out after {timeout:.0f}s waiting for {what}"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def everywhere(http: aiohttp.ClientSession, servers: list[ServerProcess], token: str, expected: int) -> bool:
    return all([await status(http, s.url, token) == expected for s in servers])


async def load(
    http: aiohttp.ClientSession, servers: list[ServerProcess], token: str, stop: asyncio.Event
) -> Counter[int | str]:
    """Verify `token` on every server in turn from four loops until `stop`: what they answered."""
    answers: Counter[int | str] = Counter()

    async def loop() -> None:
        while not stop.is_set():
            for server in servers:
                try:
                    answers[await status(http, server.url, token)] += 1
                except aiohttp.ClientError as exc:
                    answers[type(exc).__name__] += 1

    await asyncio.gather(*(loop() for _ in range(4)))
    return answers


async def test_a_minute_without_the_api_server(
    dev_cluster: ClusterState, kubectl: Kubectl, crds: list[str], namespace: str, tmp_path: Path
) -> None:
    first, second = f"outage-{uuid.uuid4().hex[:5]}", f"outage-{uuid.uuid4().hex[:5]}"
    apiserver = start_apiserver(dev_cluster.state_dir, name=first, die_with_parent=True)
    started = [first]
    processes = []
    try:
        with Forwarder(target=port_of(apiserver.url)) as forwarder:
            kubeconfig = forwarded_kubeconfig(apiserver.kubeconfig, tmp_path / "forwarded.kubeconfig", forwarder.port)
            (health,) = pick_free_ports(1)
            operator = start_kubegate(
                "operator",
                [
                    "operator",
                    f"--operator-namespace={namespace}",
                    f"--namespace={namespace}",
                    f"--health-address=127.0.0.1:{health}",
                ],
                kubeconfig=kubeconfig,
                log_file=tmp_path / "operator.log",
            )
            processes.append(operator)
            servers = [
                start_server(f"server-{i}", kubeconfig=kubeconfig, operator_namespace=namespace, log_dir=tmp_path)
                for i in range(2)
            ]
            processes += [s.process for s in servers]
            for server in servers:
                await asyncio.to_thread(server.wait_ready)
            apply_static_token(kubectl, namespace, "before")
            before = read_token(kubectl, namespace, "before")
            apply_static_token(kubectl, namespace, "known")
            known = read_token(kubectl, namespace, "known")
            admin = bootstrap_token(operator.log_file)
            async with aiohttp.ClientSession() as http:
                for token in (before, known):
                    await eventually(lambda t=token: everywhere(http, servers, t, 200), timeout=30, what="the tokens")

                stop = asyncio.Event()
                answering = asyncio.create_task(load(http, servers, known, stop))
                stop_apiserver(dev_cluster.state_dir, name=first)
                forwarder.drop_connections()
                down = time.monotonic()
                # Changes made meanwhile through the main apiserver, on the same etcd.
                await asyncio.to_thread(apply_static_token, kubectl, namespace, "during")
                await asyncio.to_thread(kubectl, "delete", "statictoken", "before", "-n", namespace, "--wait=false")
                assert await everywhere(http, servers, before, 200)  # from memory
                assert (await http.get(servers[0].url + "/readyz")).status == 200
                created = await http.post(
                    servers[0].url + "/auth/v1/method/token",
                    headers={"Authorization": f"Bearer {admin}"},
                    json={"name": "x"},
                )
                assert created.status == 503, await created.text()
                assert created.headers["Retry-After"]
                assert "clientToken" not in await created.text()
                # ... and leaves nothing behind: no StaticToken whose token nobody holds.
                made = await asyncio.to_thread(
                    kubectl.json,
                    "get",
                    "statictokens",
                    "-n",
                    namespace,
                    "-l",
                    "kubegate.dev/created-by=kubegate-server",
                )
                assert made["items"] == []
                await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - down)))
                assert await config_age(http, servers[0].url) >= OUTAGE - 5
                # The load ends with the outage: from here on the test's own loop only measures the catch-up.
                stop.set()
                answers = await answering

                replacement = await asyncio.to_thread(
                    start_apiserver, dev_cluster.state_dir, name=second, die_with_parent=True
                )
                started.append(second)
                forwarder.target = port_of(replacement.url)
                await asyncio.to_thread(apply_static_token, kubectl, namespace, "after")
                applied = time.monotonic()
                after = await asyncio.to_thread(read_token, kubectl, namespace, "after")
                secret_after = time.monotonic() - applied
                await eventually(
                    lambda: everywhere(http, servers, after, 200), timeout=30, what="the new token on both servers"
                )
                took = time.monotonic() - applied
                during = await asyncio.to_thread(read_token, kubectl, namespace, "during")
                await eventually(lambda: everywhere(http, servers, during, 200), timeout=10, what="catch-up")
                await eventually(lambda: everywhere(http, servers, before, 401), timeout=10, what="the deletion")
                print(f"answers during a {OUTAGE:.0f}s outage: {dict(answers)}")
                print(f"new token on both servers {took:.2f}s after it was applied (its Secret: {secret_after:.2f}s)")
                assert set(answers) == {200}, answers  # every request for a known token answered
                assert took <= CATCH_UP, f"the new token reached both servers {took:.2f}s after it was applied"
                await eventually(lambda: _younger(http, servers[0]), timeout=10, what="the config age to reset")
        # One line when the outage starts, one a minute, one when it ends: no storm.
        for process in processes:
            log = process.log()
            assert log.count("still failing after") <= 2 * 3, process.name
            assert log.count("Request attempt") <= 3, process.name
    finally:
        for process in processes:
            process.stop()
        for name in started:
            stop_apiserver(dev_cluster.state_dir, name=name)


async def _younger(http: aiohttp.ClientSession, server: ServerProcess) -> bool:
    return await config_age(http, server.url) == 0
