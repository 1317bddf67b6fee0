"""Service-account exchanges per second (cached and fresh), client-token verifications per second, and
how many TokenReviews the API server received.

    .venv/bin/python bench/exchange_throughput.py [--seconds 10] [--fresh 2000]

Needs `wrk` (Debian: apt-get install wrk). Starts its own dev cluster, the operator (for the signing keys)
and `kubegate server` (plain HTTP on loopback, pinned to CPU 1), creates 100 service accounts, and runs:
1. cached: 100 distinct service-account tokens exchanged over and over (wrk, 64 connections, CPU 0);
2. fresh: `--fresh` tokens never seen before, each exchanged once (32 in flight), so one TokenReview each;
3. verify: the client tokens from (1) on /auth/v1/verify (wrk, 64 connections).
The TokenReview count is read from kube-apiserver's own metrics before and after each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import ssl
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

from kubegate.contracts.api_paths import path_for
from kubegate.devcluster import ClusterState, Kubectl, start_cluster, stop_cluster
from kubegate.devcluster.processes import start_kubegate, stop_all
from kubegate.kube import KubeClient, load_connection

sys.path.insert(0, str(Path(__file__).parent))
from verify_throughput import READY_TIMEOUT, SERVER_CPU, Result, run_wrk

OPERATOR_NS, APPS_NS, AUDIENCE = "kubegate-system", "bench", "kubegate-bench"
ACCOUNTS = 100
EXCHANGE = "/auth/v1/method/kubernetes/serviceaccount"
WRK_EXCHANGE = """
tokens = {}
for line in io.lines("%(tokens)s") do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i %% #tokens + 1
  local body = '{"serviceAccountToken":"' .. tokens[i] .. '"}'
  return wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json"}, body)
end
"""


def token_reviews(state: ClusterState) -> int:
    """POSTs to tokenreviews that kube-apiserver counted, from its /metrics."""
    context = ssl.create_default_context(cafile=str(state.state_dir / "pki" / "ca.crt"))
    context.load_cert_chain(str(state.state_dir / "pki" / "admin.crt"), str(state.state_dir / "pki" / "admin.key"))
    with urllib.request.urlopen(f"{state.apiserver_url}/metrics", context=context) as response:
        text = response.read().decode()
    pattern = re.compile(
        r'^apiserver_request_total\{(?=[^}]*resource="tokenreviews")(?=[^}]*verb="POST")[^}]*\} (\S+)$', re.M
    )
    return int(sum(float(m.group(1)) for m in pattern.finditer(text)))


async def request_tokens(count_per_account: int) -> list[str]:
    async with KubeClient(load_connection()) as client:
        sem = asyncio.Semaphore(16)

        async def one(i: int) -> str:
            async with sem:
                path = path_for(plural="serviceaccounts", namespace=APPS_NS, name=f"sa-{i % ACCOUNTS:03d}")
                body = {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenRequest",
                    "spec": {"audiences": [AUDIENCE], "expirationSeconds": 3600},
                }
                answer = await client.create(path + "/token", body)
                return str(answer["status"]["token"])

        return await asyncio.gather(*(one(i) for i in range(ACCOUNTS * count_per_account)))


async def exchange_each_once(url: str, tokens: list[str], in_flight: int = 32) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[str] = asyncio.Queue()
    for token in tokens:
        queue.put_nowait(token)
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            nonlocal failures
            while not queue.empty():
                token = queue.get_nowait()
                started = time.perf_counter()
                async with session.post(url + EXCHANGE, json={"serviceAccountToken": token}) as response:
                    await response.read()
                    failures += response.status != 200
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return time.perf_counter() - started, latencies, failures


async def client_tokens(url: str, sa_tokens: list[str]) -> list[str]:
    async with aiohttp.ClientSession() as session:
        out = []
        for token in sa_tokens:
            async with session.post(url + EXCHANGE, json={"serviceAccountToken": token}) as response:
                out.append((await response.json())["clientToken"])
        return out


def operator_args() -> list[str]:
    return ["operator", "--standalone", "--no-bootstrap",
            "--operator-namespace", OPERATOR_NS, "--namespace", OPERATOR_NS,
            "--health-address", "127.0.0.1:0", "--log-level", "WARNING"]  # fmt: skip


def server_args(port: int, url: str, bindings: Path) -> list[str]:
    return ["server", "--insecure-http", "--address", f"127.0.0.1:{port}",
            "--operator-namespace", OPERATOR_NS, "--issuer-url", url, "--no-access-log",
            "--serviceaccount-bindings-file", str(bindings), "--serviceaccount-audiences", AUDIENCE,
            # wrk's 64 connections must not meet the default bound of 32 reviews in flight (503s).
            "--serviceaccount-max-concurrent-reviews", "64",
            "--log-level", "WARNING"]  # fmt: skip


def report(phases: list[tuple[Result, int | None]], *, seconds: int) -> None:
    """The table of phases (each with the TokenReviews it needed, if counted); the first is the cached one."""
    print(f"\n{'phase':36} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'TokenReviews':>13}")
    for result, reviews in phases:
        count = "-" if reviews is None else str(reviews)
        print(
            f"{result.name:36} {result.rps:9.0f} {result.p50_ms:8.2f} {result.p99_ms:8.2f} "
            f"{result.non_2xx:8d} {count:>13}"
        )
    cached, cached_reviews = phases[0]
    print(f"\ncached phase: ~{int(cached.rps * seconds)} exchanges needed {cached_reviews} TokenReviews")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--fresh", type=int, default=2000, help="fresh service-account tokens, each exchanged once")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="kubegate-bench-") as tmp_name:
        tmp = Path(tmp_name)
        state = start_cluster(state_dir=tmp / "cluster", name="bench", die_with_parent=True)
        try:
            kubectl = Kubectl(state)
            kubectl("apply", "-f", str(Path(__file__).resolve().parents[1] / "crds"))
            for ns in (OPERATOR_NS, APPS_NS):
                kubectl("create", "namespace", ns)
            kubectl("create", "-n", APPS_NS, "-f", "-", stdin="\n---\n".join(
                json.dumps({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": f"sa-{i:03d}"}})
                for i in range(ACCOUNTS)
            ))  # fmt: skip
            os.environ["KUBECONFIG"] = str(state.kubeconfig)
            bindings = tmp / "bindings.yaml"
            bindings.write_text(f"- namespaces: ['{APPS_NS}']\n  serviceAccounts: ['sa-*']\n  groups: ['bench']\n")
            port = 18543
            url = f"http://127.0.0.1:{port}"
            operator = start_kubegate("operator", operator_args(), log_file=tmp / "operator.log", cpus=SERVER_CPU)
            server = start_kubegate(
                "server", server_args(port, url, bindings), log_file=tmp / "server.log", cpus=SERVER_CPU
            )
            try:
                server.wait_ready(f"{url}/readyz", timeout=READY_TIMEOUT)
                # the operator has published its keys
                server.wait_ready(f"{url}/.well-known/jwks.json", timeout=READY_TIMEOUT)
                cached_tokens = asyncio.run(request_tokens(1))
                (tmp / "sa-tokens.txt").write_text("\n".join(cached_tokens) + "\n")
                script = tmp / "exchange.lua"
                script.write_text(WRK_EXCHANGE % {"tokens": tmp / "sa-tokens.txt", "path": EXCHANGE})

                before = token_reviews(state)
                cached = run_wrk("exchange, 100 tokens repeated", url, script, args.seconds, server_pid=server.pid)
                cached_reviews = token_reviews(state) - before

                fresh_tokens = asyncio.run(request_tokens(max(1, args.fresh // ACCOUNTS)))
                before = token_reviews(state)
                elapsed, latencies, failures = asyncio.run(exchange_each_once(url, fresh_tokens))
                fresh_reviews = token_reviews(state) - before
                latencies.sort()
                fresh = Result(
                    f"exchange, {len(fresh_tokens)} fresh tokens",
                    len(fresh_tokens) / elapsed,
                    statistics.median(latencies) * 1000,
                    latencies[int(len(latencies) * 0.99) - 1] * 1000,
                    failures,
                )

                issued = asyncio.run(client_tokens(url, cached_tokens))
                (tmp / "client-tokens.txt").write_text("\n".join(issued) + "\n")
                verify_script = tmp / "verify.lua"
                verify_script.write_text(
                    WRK_EXCHANGE.replace('local body = \'{"serviceAccountToken":"\' .. tokens[i] .. \'"}\'', "")
                    .replace('wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json"}, body)',
                             'wrk.format("GET", "/auth/v1/verify", {["Authorization"] = "Bearer " .. tokens[i]})')
                    % {"tokens": tmp / "client-tokens.txt", "path": ""}
                )  # fmt: skip
                verify = run_wrk("verify, client tokens", url, verify_script, args.seconds, server_pid=server.pid)
            finally:
                stop_all([server, operator], timeout=30)

            report([(cached, cached_reviews), (fresh, fresh_reviews), (verify, None)], seconds=args.seconds)
        finally:
            stop_cluster(tmp / "cluster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
