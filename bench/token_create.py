"""Token creation through the API (`POST /auth/v1/method/token`): latency one at a time, rate with 16
clients, and how soon another replica accepts a new token.

    PYTHONPATH=operator .venv/bin/python bench/token_create.py [--sequential 200] [--total 1000] [--rounds 3]

Starts its own dev cluster (the control plane `make control-plane` built) in a temporary directory,
installs the CRDs, runs `kubegate operator` and two `kubegate server` replicas from this tree's source
(PYTHONPATH is set for them), reads the bootstrap token from the operator's log, and measures against
replica A, round after round:
- sequential: `--sequential` creates one after another: p50/p99 ms per token;
- concurrent: `--total` creates by `--clients` clients at once: tokens per second, p50/p99 ms;
- drained: the seconds from the end of the concurrent run until replica B accepts every token of it (B
  learns of a token from the operator's published validation config, so this is the operator's backlog);
- elsewhere: then, one at a time, for `--sample` new tokens, whether replica A accepts each on its answer,
  and the seconds until replica B does.
At the end it waits (bounded) until the operator made every StaticToken Ready, and prints how long that took.

Beside it, the same sequential and concurrent runs go to a Flipt-shaped stand-in: an aiohttp app that does
what Flipt's token creation does with its default SQLite storage (generate a token, hash it, insert a row,
answer). Flipt itself is not built here: see bench/README.md. Figures are min/median/max over the rounds.
Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web

from kubegate.devcluster import Kubectl, start_cluster, stop_cluster
from kubegate.devcluster.ports import pick_free_ports
from kubegate.devcluster.processes import Child, bootstrap_token, start_kubegate

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "kubegate-system"
CREATE_PATH = "/auth/v1/method/token"
READY_TIMEOUT = 60.0
ALL_READY_TIMEOUT = 600.0
ELSEWHERE_TIMEOUT = 20.0
POLL = 0.01


@dataclass
class Run:
    latencies: list[float]
    """Seconds per create."""
    seconds: float
    """Wall time of the whole run."""
    tokens: list[str]

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def p(self, q: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1] * 1000


Create = Callable[[aiohttp.ClientSession, int], Awaitable[str]]


async def run(http: aiohttp.ClientSession, create: Create, *, total: int, clients: int) -> Run:
    """`total` creates by `clients` clients at once (1: one after another)."""
    latencies: list[float] = []
    tokens: list[str] = []
    numbers = iter(range(total))

    async def client() -> None:
        for n in numbers:
            started = time.perf_counter()
            tokens.append(await create(http, n))
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return Run(latencies, time.perf_counter() - started, tokens)


def kubegate_create(url: str, admin: str) -> Create:
    headers = {"Authorization": f"Bearer {admin}"}

    async def create(http: aiohttp.ClientSession, n: int) -> str:
        async with http.post(url + CREATE_PATH, headers=headers, json={"name": f"bench-{n}"}) as response:
            body = await response.text()
            if response.status != 200:
                raise RuntimeError(f"create answered {response.status}: {body}")
            token: str = json.loads(body)["clientToken"]
            return token

    return create


async def accepted(http: aiohttp.ClientSession, url: str, token: str) -> bool:
    async with http.get(url + "/auth/v1/self", headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status == 200


async def drained(http: aiohttp.ClientSession, url: str, tokens: list[str]) -> float:
    """Seconds until the replica at `url` accepts every one of `tokens` (none is ever dropped again)."""
    started = time.perf_counter()
    for token in tokens:
        while not await accepted(http, url, token):
            if time.perf_counter() - started > ALL_READY_TIMEOUT:
                raise RuntimeError(f"replica B did not accept the burst's tokens within {ALL_READY_TIMEOUT:.0f}s")
            await asyncio.sleep(POLL * 10)
    return time.perf_counter() - started


async def elsewhere(http: aiohttp.ClientSession, create: Create, a: str, b: str, sample: int) -> list[float]:
    """Seconds from A's answer until B accepts the token, for `sample` tokens; A must accept it on its answer."""
    waits = []
    for n in range(sample):
        token = await create(http, n)
        answered = time.perf_counter()
        if not await accepted(http, a, token):
            raise RuntimeError("the replica that answered does not accept the token it returned")
        while not await accepted(http, b, token):
            if time.perf_counter() - answered > ELSEWHERE_TIMEOUT:
                raise RuntimeError(f"replica B did not accept a new token within {ELSEWHERE_TIMEOUT:.0f}s")
            await asyncio.sleep(POLL)
        waits.append(time.perf_counter() - answered)
    return waits


# --- the Flipt-shaped stand-in ------------------------------------------------------------------------------


def flipt_shaped_app(database: Path) -> web.Application:
    """What Flipt's CreateToken does with its SQLite store: a random token, its SHA-256, one INSERT, the
    answer. One connection, as SQLite serialises writers anyway; the INSERT runs off the event loop."""
    connection = sqlite3.connect(database, check_same_thread=False, isolation_level=None)
    connection.execute(
        "CREATE TABLE authentications (id TEXT PRIMARY KEY, method INTEGER, hashed_client_token TEXT UNIQUE, "
        "metadata TEXT, expires_at TEXT, created_at TEXT, updated_at TEXT)"
    )
    lock = asyncio.Lock()

    def insert(row: tuple[str, ...]) -> None:
        connection.execute("INSERT INTO authentications VALUES (?, 1, ?, ?, NULL, ?, ?)", row)

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        token = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        hashed = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).decode()
        now = datetime.now(UTC).isoformat()
        metadata = {"io.flipt.auth.token.name": body["name"], "io.flipt.auth.token.description": ""}
        token_id = str(uuid.uuid4())
        async with lock:
            await asyncio.to_thread(insert, (token_id, hashed, json.dumps(metadata), now, now))
        authentication = {"id": token_id, "method": "METHOD_TOKEN", "metadata": metadata, "createdAt": now}
        return web.json_response({"clientToken": token, "authentication": authentication})

    app = web.Application()
    app.router.add_post(CREATE_PATH, create)
    app.on_cleanup.append(lambda _: asyncio.to_thread(connection.close))
    return app


@contextlib.asynccontextmanager
async def flipt_shaped(tmp: Path) -> AsyncIterator[str]:
    (port,) = pick_free_ports(1)
    runner = web.AppRunner(flipt_shaped_app(tmp / "flipt.db"), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def flipt_create(url: str) -> Create:
    async def create(http: aiohttp.ClientSession, n: int) -> str:
        async with http.post(url + CREATE_PATH, json={"name": f"bench-{n}"}) as response:
            response.raise_for_status()
            token: str = (await response.json())["clientToken"]
            return token

    return create


# --- the measurement ----------------------------------------------------------------------------------------


def spread(values: list[float], fmt: str) -> str:
    return f"{format(min(values), fmt)} / {format(statistics.median(values), fmt)} / {format(max(values), fmt)}"


async def all_ready(kubectl: Kubectl, expected: int) -> tuple[int, float]:
    started = time.monotonic()
    while True:
        items = (await asyncio.to_thread(kubectl.json, "get", "statictokens", "-n", NAMESPACE))["items"]
        ready = sum(
            1
            for i in items
            if i["metadata"]["name"].startswith("token-")
            and any(
                c["type"] == "Ready" and c["status"] == "True" for c in (i.get("status") or {}).get("conditions") or []
            )
        )
        if ready >= expected or time.monotonic() - started > ALL_READY_TIMEOUT:
            return ready, time.monotonic() - started
        await asyncio.sleep(2.0)


async def measure(args: argparse.Namespace, urls: tuple[str, str], admin: str, kubectl: Kubectl, tmp: Path) -> None:
    a, b = urls
    results: dict[str, dict[str, list[float]]] = {}

    def note(system: str, mode: str, result: Run) -> None:
        figures = results.setdefault(f"{system} {mode}", {"p50": [], "p99": [], "rate": []})
        figures["p50"].append(result.p(50))
        figures["p99"].append(result.p(99))
        figures["rate"].append(result.rate)
        print(
            f"  {system:<13} {mode:<10} {len(result.latencies):5d} tokens: p50 {result.p(50):6.1f} ms, "
            f"p99 {result.p(99):6.1f} ms, {result.rate:6.1f} tokens/s",
            flush=True,
        )

    connector = aiohttp.TCPConnector(limit=args.clients)
    async with aiohttp.ClientSession(connector=connector) as http, flipt_shaped(tmp) as flipt_url:
        systems = {"kubegate": kubegate_create(a, admin), "flipt-shaped": flipt_create(flipt_url)}
        while not await accepted(http, a, admin):  # noqa: ASYNC110 - polling another process
            await asyncio.sleep(0.2)
        for create in systems.values():
            await run(http, create, total=10, clients=1)  # warm-up: connections, caches
        created = 10
        waits: list[float] = []
        backlogs: list[float] = []
        for round_ in range(1, args.rounds + 1):
            print(f"round {round_}/{args.rounds}", flush=True)
            for system, create in systems.items():
                note(system, "sequential", await run(http, create, total=args.sequential, clients=1))
                burst = await run(http, create, total=args.total, clients=args.clients)
                note(system, f"{args.clients} clients", burst)
                if system == "kubegate":
                    backlogs.append(await drained(http, b, burst.tokens))
                    print(f"  replica B accepted all {args.total} {backlogs[-1]:.1f}s after the burst", flush=True)
            waits += await elsewhere(http, systems["kubegate"], a, b, args.sample)
            created += args.sequential + args.total + args.sample
        ready, took = await all_ready(kubectl, created)

    print(f"\nload: {os.getloadavg()}")
    print(f"figures: min / median / max over {args.rounds} rounds")
    for key, figures in results.items():
        print(
            f"RESULT {key:<26} p50 ms {spread(figures['p50'], '.1f'):<20} p99 ms {spread(figures['p99'], '.1f'):<20} "
            f"tokens/s {spread(figures['rate'], '.1f')}"
        )
    print(
        f"RESULT replica B accepts every token of a {args.clients}-client burst of {args.total}: "
        f"{spread(backlogs, '.1f')} s after the burst"
    )
    quantiles = statistics.quantiles(waits, n=100, method="inclusive")
    print(
        f"RESULT replica B accepts a token created alone (n={len(waits)}; A accepted each on its answer): "
        f"p50 {quantiles[49]:.2f}s, p99 {quantiles[98]:.2f}s, max {max(waits):.2f}s"
    )
    print(f"RESULT operator made {ready}/{created} API-created StaticTokens Ready {took:.0f}s after the last create")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=200, help="creates one after another per round")
    parser.add_argument("--total", type=int, default=1000, help="creates by the concurrent clients per round")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--sample", type=int, default=20, help="tokens per round checked on replica B")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubegate-bench-") as tmp_name:
        tmp = Path(tmp_name)
        state_dir = tmp / "cluster"
        state = start_cluster(state_dir=state_dir, name="bench", die_with_parent=True, progress=print)
        children: list[Child] = []
        try:
            kubectl = Kubectl(state)
            kubectl.install_crds(ROOT / "crds")
            kubectl("create", "namespace", NAMESPACE)
            env = {"KUBECONFIG": str(state.kubeconfig), "PYTHONPATH": str(ROOT / "operator")}
            os.environ["KUBECONFIG"] = env["KUBECONFIG"]
            operator_log = tmp / "operator.log"
            children.append(
                start_kubegate(
                    "operator",
                    ["operator", "--standalone", "--operator-namespace", NAMESPACE, "--health-address", "127.0.0.1:0"],
                    log_file=operator_log,
                    env=env,
                )
            )
            ports = pick_free_ports(2)
            urls = tuple(f"http://127.0.0.1:{port}" for port in ports)
            for name, port in zip("ab", ports, strict=True):
                server_args = [
                    "server",
                    "--insecure-http",
                    f"--address=127.0.0.1:{port}",
                    f"--operator-namespace={NAMESPACE}",
                    f"--token-namespace={NAMESPACE}",
                    "--no-access-log",
                ]
                children.append(
                    start_kubegate(f"server-{name}", server_args, log_file=tmp / f"server-{name}.log", env=env)
                )
            for child, url in zip(children[1:], urls, strict=True):
                child.wait_ready(url + "/readyz", timeout=READY_TIMEOUT)
            admin = bootstrap_token(operator_log)
            asyncio.run(measure(args, (urls[0], urls[1]), admin, kubectl, tmp))
        finally:
            for child in children:
                child.stop(timeout=30)
            stop_cluster(state_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
