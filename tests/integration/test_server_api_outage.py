"""The server keeps answering from memory while the Kubernetes API is stopped, and catches up after it
returns. The server reaches its API server through a forwarder, as through a Service: the apiserver
behind it is stopped for real, and a new one (on the same etcd) takes its place at the same address."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from server_processes import (
    KubegateProcess,
    ServerProcess,
    apply_static_token,
    bootstrap_token,
    read_token,
    start_server,
    wait_ready,
)

from kubegate.devcluster import ClusterState, Kubectl, start_apiserver, stop_apiserver
from kubegate.devcluster.forwarder import Forwarder, forwarded_kubeconfig, port_of

pytestmark = pytest.mark.integration

CATCH_UP_TIMEOUT = 30.0  # the watcher retries at least every 10 s


async def status(http: aiohttp.ClientSession, url: str, token: str) -> int:
    async with http.get(url + "/auth/v1/verify", headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status


async def config_age(http: aiohttp.ClientSession, url: str) -> float:
    text = await (await http.get(url + "/metrics")).text()
    match = re.search(r"^kubegate_config_age_seconds (\S+)$", text, re.MULTILINE)
    assert match
    return float(match.group(1))


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        await asyncio.sleep(0.2)


async def test_serves_from_memory_while_the_api_is_down_and_catches_up(
    dev_cluster: ClusterState, kubectl: Kubectl, namespace: str, operator: KubegateProcess, tmp_path: Path
) -> None:
    first, second = f"outage-{uuid.uuid4().hex[:5]}", f"outage-{uuid.uuid4().hex[:5]}"
    apiserver = start_apiserver(dev_cluster.state_dir, name=first, die_with_parent=True)
    started = [first]
    server: ServerProcess | None = None
    try:
        with Forwarder(target=port_of(apiserver.url)) as forwarder:
            kubeconfig = forwarded_kubeconfig(apiserver.kubeconfig, tmp_path / "forwarded.kubeconfig", forwarder.port)
            server = start_server("server", kubeconfig=kubeconfig, operator_namespace=namespace, log_dir=tmp_path)
            await wait_ready(server)
            apply_static_token(kubectl, namespace, "before")
            before = read_token(kubectl, namespace, "before")
            admin = bootstrap_token(operator)
            async with aiohttp.ClientSession() as http:
                await eventually(lambda: _is(http, server, before, 200), timeout=30, what="the first token")

                stop_apiserver(dev_cluster.state_dir, name=first)
                forwarder.drop_connections()
                down = time.monotonic()
                # The operator still runs against the main apiserver, on the same etcd: changes happen meanwhile.
                apply_static_token(kubectl, namespace, "during")
                during = read_token(kubectl, namespace, "during")
                kubectl("delete", "statictoken", "before", "-n", namespace)

                assert await status(http, server.url, before) == 200  # from memory
                assert await status(http, server.url, during) == 401  # not learnt yet
                assert (await http.get(server.url + "/readyz")).status == 200
                created = await http.post(
                    server.url + "/auth/v1/method/token",
                    headers={"Authorization": f"Bearer {admin}"},
                    json={"name": "x"},
                )
                assert created.status == 503, await created.text()
                assert created.headers["Retry-After"]
                await eventually(lambda: _older(http, server, 5.0), timeout=30, what="the config age to grow")
                print(f"served from memory for {time.monotonic() - down:.1f}s while the API server was down")

                replacement = start_apiserver(dev_cluster.state_dir, name=second, die_with_parent=True)
                started.append(second)
                forwarder.target = port_of(replacement.url)
                back = time.monotonic()
                await eventually(lambda: _is(http, server, during, 200), timeout=CATCH_UP_TIMEOUT, what="catch-up")
                await eventually(lambda: _is(http, server, before, 401), timeout=10, what="the deleted token")
                print(f"caught up {time.monotonic() - back:.1f}s after the API server returned")
                await eventually(lambda: _younger(http, server), timeout=30, what="the config age to reset")
    finally:
        if server is not None:
            server.stop()
        for name in started:
            stop_apiserver(dev_cluster.state_dir, name=name)


async def _is(http: aiohttp.ClientSession, server: ServerProcess | None, token: str, expected: int) -> bool:
    assert server is not None
    return await status(http, server.url, token) == expected


async def _older(http: aiohttp.ClientSession, server: ServerProcess | None, seconds: float) -> bool:
    assert server is not None
    return await config_age(http, server.url) >= seconds


async def _younger(http: aiohttp.ClientSession, server: ServerProcess | None) -> bool:
    assert server is not None
    return await config_age(http, server.url) == 0
