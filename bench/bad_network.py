"""How fast new StaticTokens become Ready and usable when the operator's network to the API is bad.

    .venv/bin/python bench/bad_network.py --latency 2 --tokens 200
    .venv/bin/python bench/bad_network.py --drop-rate 0.2 --tokens 200

Starts its own dev cluster; the operator (with its default Lease) reaches the API only through a TCP
forwarder that adds `--latency` seconds to every chunk a client sends (so to every API call) or closes
`--drop-rate` of new connections at once; two auth servers reach the API directly. It creates the tokens
at once and polls every 0.5 s; printed: seconds from the first create until every token is Ready and until
every token verifies on both servers, the longest wait from Ready to verifying, and the Ready tokens a
server still refused 2 s after they were seen Ready (Ready must mean usable: this should be 0).
Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from kubegate.contracts.api_paths import path_for
from kubegate.devcluster import Kubectl, start_cluster, stop_cluster
from kubegate.devcluster.forwarder import Forwarder, forwarded_kubeconfig, port_of
from kubegate.devcluster.ports import pick_free_ports
from kubegate.devcluster.processes import Child, start_kubegate, stop_all, wait_ready
from kubegate.kube import KubeClient, NotFound, load_connection
from kubegate.resources import StaticToken

ROOT = Path(__file__).resolve().parents[1]
OPERATOR_NS, APPS_NS = "kubegate-system", "bench"
TOKENS = StaticToken.path(namespace=APPS_NS)
CATCH_UP = 2.0


def start(name: str, args: list[str], kubeconfig: Path, tmp: Path) -> Child:
    return start_kubegate(name, args, log_file=tmp / f"{name}.log", kubeconfig=kubeconfig)


async def verifies(http: aiohttp.ClientSession, urls: list[str], token: str) -> bool:
    for url in urls:
        try:
            async with http.get(f"{url}/auth/v1/verify", headers={"Authorization": f"Bearer {token}"}) as response:
                if response.status != 200:
                    return False
        except aiohttp.ClientError:
            return False
    return True


async def usable(client: KubeClient, http: aiohttp.ClientSession, urls: list[str], name: str) -> bool:
    try:
        secret = await client.get(path_for(plural="secrets", namespace=APPS_NS) + f"/{name}")
    except NotFound:
        return False
    value = (secret.get("data") or {}).get("token")
    return value is not None and await verifies(http, urls, base64.b64decode(value).decode())


async def measure(client: KubeClient, urls: list[str], count: int, timeout: float) -> None:
    ready_at: dict[str, float] = {}
    verified_at: dict[str, float] = {}
    refused_after_catch_up: set[str] = set()
    async with aiohttp.ClientSession() as http:
        for url in urls:
            await asyncio.to_thread(wait_ready, f"{url}/readyz", timeout=60)
        # The figures are for new tokens with the operator running, not for its start-up on a bad network.
        await client.create(TOKENS, {"metadata": {"name": "warm-up"}, "spec": {}} | KIND)
        warm_up = time.monotonic()
        while not await usable(client, http, urls, "warm-up"):
            if time.monotonic() - warm_up > timeout:
                raise SystemExit(f"the operator made no token usable within {timeout:.0f} s")
            await asyncio.sleep(0.5)
        print(f"operator started: a first token usable after {time.monotonic() - warm_up:.1f} s", flush=True)
        started = time.monotonic()
        await asyncio.gather(
            *(client.create(TOKENS, {"metadata": {"name": f"net-{i:04d}"}, "spec": {}} | KIND) for i in range(count))
        )
        while len(verified_at) < count and time.monotonic() - started < timeout:
            tokens, _ = await client.list_all(TOKENS)
            secrets, _ = await client.list_all(path_for(plural="secrets", namespace=APPS_NS))
            values = {s["metadata"]["name"]: (s.get("data") or {}).get("token") for s in secrets}
            now = time.monotonic() - started
            for token in tokens:
                name = token["metadata"]["name"]
                if name == "warm-up":
                    continue
                conditions = (token.get("status") or {}).get("conditions") or []
                if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                    ready_at.setdefault(name, now)
            for name, seen in ready_at.items():
                value = values.get(name)
                if name in verified_at or value is None:
                    continue
                if await verifies(http, urls, base64.b64decode(value).decode()):
                    verified_at[name] = time.monotonic() - started
                elif now - seen > CATCH_UP:
                    refused_after_catch_up.add(name)
            await asyncio.sleep(0.5)

    def last(times: dict[str, float]) -> str:
        return f"{max(times.values()):.1f} s" if len(times) == count else f"never ({len(times)} of {count})"

    lag = max((verified_at[n] - ready_at[n] for n in verified_at), default=0.0)
    print(f"all {count} Ready after {last(ready_at)}; all verify on both servers after {last(verified_at)}")
    print(f"longest wait from Ready to verifying: {lag:.1f} s (polled every 0.5 s)")
    print(f"Ready tokens a server refused {CATCH_UP:.0f} s after they were seen Ready: {len(refused_after_catch_up)}")


KIND = {"apiVersion": "kubegate.dev/v1alpha1", "kind": "StaticToken"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API call")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="fraction of new connections closed at once")
    parser.add_argument("--seed", type=int, default=None, help="which connections are dropped")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubegate-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        state = start_cluster(state_dir=tmp / "cluster", name="bench", die_with_parent=True)
        processes: list[Child] = []
        try:
            kubectl = Kubectl(state)
            kubectl.install_crds(ROOT / "crds")
            for ns in (OPERATOR_NS, APPS_NS):
                kubectl("create", "namespace", ns)
            target = port_of(state.apiserver_url)
            faults = Forwarder(target=target, latency=args.latency, drop_rate=args.drop_rate, seed=args.seed)
            with faults as forwarder:
                slow = forwarded_kubeconfig(state.kubeconfig, tmp / "forwarded.kubeconfig", forwarder.port)
                health, *ports = pick_free_ports(3)
                operator = ["operator", f"--operator-namespace={OPERATOR_NS}", f"--namespace={APPS_NS}"]
                processes.append(
                    start("operator", [*operator, "--no-bootstrap", f"--health-address=127.0.0.1:{health}"], slow, tmp)
                )
                for i, port in enumerate(ports):
                    server = ["server", "--insecure-http", f"--address=127.0.0.1:{port}", "--no-access-log"]
                    processes.append(
                        start(f"server-{i}", [*server, f"--operator-namespace={OPERATOR_NS}"], state.kubeconfig, tmp)
                    )
                os.environ["KUBECONFIG"] = str(state.kubeconfig)
                print(f"latency {args.latency} s, drop rate {args.drop_rate}, {args.tokens} tokens", flush=True)

                async def run() -> None:
                    async with KubeClient(load_connection(), max_connections=32) as client:
                        urls = [f"http://127.0.0.1:{port}" for port in ports]
                        await measure(client, urls, args.tokens, args.timeout)

                asyncio.run(run())
                print(f"operator connections: {forwarder.accepted}, dropped at once: {forwarder.dropped}")
        finally:
            stop_all(processes)
            stop_cluster(tmp / "cluster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
