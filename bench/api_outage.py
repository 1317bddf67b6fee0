"""How kubegate rides out a Kubernetes API outage and how fast it catches up when the API returns.

    .venv/bin/python bench/api_outage.py --outage 60

Starts its own dev cluster and a second kube-apiserver on the same etcd behind a TCP forwarder (as behind
a Service). The operator and two auth servers reach the API only through the forwarder. Then:
1. a StaticToken `known` works on both servers;
2. the second apiserver is stopped for `--outage` seconds while a client verifies `known` on both servers
   (every response counted); meanwhile StaticToken `during` is applied through the first apiserver;
3. a replacement apiserver takes the forwarder's target; StaticToken `after` is applied at once;
4. printed: the answers during the outage, the seconds from the API's return until `during` and `after`
   verify on both servers, and the log lines each process wrote during the outage.
Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from kubegate.devcluster import Kubectl, start_apiserver, start_cluster, stop_apiserver, stop_cluster
from kubegate.devcluster.forwarder import Forwarder, forwarded_kubeconfig, port_of
from kubegate.devcluster.ports import pick_free_ports
from kubegate.devcluster.processes import Child, start_kubegate, stop_all

ROOT = Path(__file__).resolve().parents[1]
OPERATOR_NS, APPS_NS = "kubegate-system", "bench"


def static_token(name: str) -> str:
    return json.dumps(
        {
            "apiVersion": "kubegate.dev/v1alpha1",
            "kind": "StaticToken",
            "metadata": {"name": name, "namespace": APPS_NS},
            "spec": {},
        }
    )


def read_token(kubectl: Kubectl, name: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = kubectl("get", "secret", "-n", APPS_NS, name, "-o", "jsonpath={.data.token}", check=False)
        if result.returncode == 0 and result.stdout:
            return base64.b64decode(result.stdout).decode()
        time.sleep(0.2)
    raise SystemExit(f"StaticToken {name} got no Secret within {timeout:.0f}s")


async def verify(http: aiohttp.ClientSession, url: str, token: str) -> int:
    try:
        async with http.get(f"{url}/auth/v1/verify", headers={"Authorization": f"Bearer {token}"}) as response:
            return response.status
    except aiohttp.ClientError:
        return 0


async def until_verified(http: aiohttp.ClientSession, urls: list[str], token: str, timeout: float) -> float | None:
    """Seconds until `token` verifies on every server, or None."""
    started = time.monotonic()
    pending = set(urls)
    while pending and time.monotonic() - started < timeout:
        for url in list(pending):
            if await verify(http, url, token) == 200:
                pending.discard(url)
        await asyncio.sleep(0.02)
    return None if pending else time.monotonic() - started


async def load(http: aiohttp.ClientSession, urls: list[str], token: str, stop: asyncio.Event) -> Counter[int]:
    """Verify `token` on each server in turn, 10 concurrent loops, until `stop` is set."""
    answers: Counter[int] = Counter()

    async def loop() -> None:
        while not stop.is_set():
            for url in urls:
                answers[await verify(http, url, token)] += 1

    await asyncio.gather(*(loop() for _ in range(10)))
    return answers


async def verified_since(
    http: aiohttp.ClientSession, kubectl: Kubectl, urls: list[str], name: str, since: float
) -> float | None:
    """Seconds from `since` until StaticToken `name` has a token that verifies on every server, or None."""
    token = await asyncio.to_thread(read_token, kubectl, name, 120.0)
    if await until_verified(http, urls, token, timeout=120) is None:
        return None
    return time.monotonic() - since


def seconds(value: float | None) -> str:
    return "never (120 s)" if value is None else f"{value:.2f} s"


def line_count(path: Path) -> int:
    return len(path.read_text(errors="replace").splitlines()) if path.exists() else 0


def new_lines(path: Path, skip: int) -> list[str]:
    return path.read_text(errors="replace").splitlines()[skip:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=60.0, help="seconds the API server stays away")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubegate-bench-") as tmp:
        state_dir = Path(tmp) / "cluster"
        cluster = start_cluster(state_dir=state_dir, name="bench", die_with_parent=True)
        processes: list[Child] = []
        try:
            kubectl = Kubectl(cluster)
            kubectl.install_crds(ROOT / "crds")
            for ns in (OPERATOR_NS, APPS_NS):
                kubectl("create", "namespace", ns)
            first = start_apiserver(cluster.state_dir, name="outage-a", die_with_parent=True)
            with Forwarder(target=port_of(first.url)) as forwarder:
                kubeconfig = forwarded_kubeconfig(first.kubeconfig, Path(tmp) / "forwarded.kubeconfig", forwarder.port)
                urls, logs = start_all(kubeconfig, Path(tmp), processes)
                return asyncio.run(
                    measure(
                        state_dir=cluster.state_dir,
                        kubectl=kubectl,
                        forwarder=forwarder,
                        urls=urls,
                        logs=logs,
                        outage=args.outage,
                    )
                )
        finally:
            stop_all(processes)
            stop_cluster(state_dir)


def start_all(kubeconfig: Path, tmp: Path, processes: list[Child]) -> tuple[list[str], dict[str, Path]]:
    """The operator and two servers, reaching the API through the forwarder; their URLs and log files."""
    health, *ports = pick_free_ports(3)
    logs = {name: tmp / f"{name}.log" for name in ("operator", "server-0", "server-1")}
    commands = {
        "operator": ["operator", f"--operator-namespace={OPERATOR_NS}", f"--health-address=127.0.0.1:{health}"],
        **{
            f"server-{i}": [
                "server",
                "--insecure-http",
                f"--address=127.0.0.1:{port}",
                f"--operator-namespace={OPERATOR_NS}",
                "--no-access-log",
            ]
            for i, port in enumerate(ports)
        },
    }
    for name, command in commands.items():
        processes.append(start_kubegate(name, command, log_file=logs[name], kubeconfig=kubeconfig))
    return [f"http://127.0.0.1:{port}" for port in ports], logs


async def measure(
    *, state_dir: Path, kubectl: Kubectl, forwarder: Forwarder, urls: list[str], logs: dict[str, Path], outage: float
) -> int:
    await asyncio.to_thread(kubectl, "apply", "-f", "-", stdin=static_token("known"))
    known = await asyncio.to_thread(read_token, kubectl, "known")
    async with aiohttp.ClientSession() as http:
        if await until_verified(http, urls, known, timeout=60) is None:
            print("the first token never verified on both servers", file=sys.stderr)
            return 1
        before = {name: line_count(path) for name, path in logs.items()}
        stop = asyncio.Event()
        answering = asyncio.create_task(load(http, urls, known, stop))
        await asyncio.to_thread(stop_apiserver, state_dir, name="outage-a")
        forwarder.drop_connections()
        down = time.monotonic()
        # Applied through the first apiserver; the operator sees it only when its API returns.
        await asyncio.to_thread(kubectl, "apply", "-f", "-", stdin=static_token("during"))
        await asyncio.sleep(max(0.0, outage - (time.monotonic() - down)))
        during_outage = {name: new_lines(path, before[name]) for name, path in logs.items()}
        replacement = await asyncio.to_thread(start_apiserver, state_dir, name="outage-b", die_with_parent=True)
        forwarder.target = port_of(replacement.url)
        back = time.monotonic()
        await asyncio.to_thread(kubectl, "apply", "-f", "-", stdin=static_token("after"))
        applied = time.monotonic()
        caught_up, new = await asyncio.gather(
            verified_since(http, kubectl, urls, "during", back),
            verified_since(http, kubectl, urls, "after", applied),
        )
        stop.set()
        answers = await answering
        await asyncio.to_thread(stop_apiserver, state_dir, name="outage-b")
    minutes = outage / 60
    print(f"outage: {outage:.0f} s; answers for a known token during it: {dict(sorted(answers.items()))}")
    print(f"token applied during the outage verifies on both servers {seconds(caught_up)} after the API returned")
    print(f"token applied after the API returned verifies on both servers {seconds(new)} after it was applied")
    for name, lines in during_outage.items():
        print(f"log lines written during the outage by {name}: {len(lines)} ({len(lines) / minutes:.1f} a minute)")
        # Which messages: level, logger and the start of the message, without the time stamp.
        kinds = Counter(" ".join(line.split(" ")[2:5])[:100] for line in lines)
        for kind, count in kinds.most_common(5):
            print(f"    {count:4d} x {kind}")
    return 0 if caught_up is not None and new is not None else 1


if __name__ == "__main__":
    sys.exit(main())
