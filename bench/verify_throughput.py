"""Throughput and latency of /auth/v1/verify and the TokenReview webhook, next to bare aiohttp and Go endpoints.

    .venv/bin/python bench/verify_throughput.py [--tokens 10000] [--memory-tokens 50000] [--rounds 5]
        [--seconds 2] [--pairs 7] [--pair-seconds 3] [--connections 64]

Needs `wrk` (Debian: apt-get install wrk). Starts its own dev cluster, writes the validation config for
N valid static tokens straight into its Secrets (as the operator would), and runs side by side, all pinned
to CPU 1: a bare aiohttp app answering 200, a bare Go net/http endpoint doing the same (`bench/bare_go`,
built once per source into ~/.cache/kubegate/bench; GOMAXPROCS=1), `kubegate server` (plain HTTP on
loopback), and a second one with its access log on. wrk runs on CPU 0 with `--connections` connections
(64; issue 14 also asks for 8), every request a different token. Two measurements follow:

- Alone, in turns: wrk loads one server at a time for `--seconds`, round after round (the order rotates
  each round). This gives each server's requests/s and p50/p99 latency, as the medians over the rounds.
- In pairs, at once ("vs bare"): the bare app and one kubegate server are loaded together for
  `--pair-seconds`, by two wrk processes, while they share CPU 1. The scheduler gives both the same CPU
  time, so the ratio of the requests each answered is the ratio of their throughputs, measured in the same
  seconds. On a shared VM, whose speed moves by 2x between minutes (and by 30% between the seconds of one
  round), this cancels the drift that turns cannot: the ratio printed is the median over `--pairs` pairs.
  Each kubegate server is paired with the bare Go endpoint the same way ("vs Go").

With `--baseline-tree DIR` (a checkout of another commit, e.g. made with `git worktree add`), a fourth
server runs kubegate from that tree's source, and each pair round also loads it together with this tree's
server: "vs baseline" is this tree's throughput over the baseline's, measured in the same seconds, which is
how a change is shown to cost nothing beyond noise.

Then it prints the server's resident memory with --memory-tokens tokens loaded. Everything it starts is
stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kubegate.contracts.api_paths import path_for
from kubegate.contracts.token_format import generate_token, hash_token, new_token_id
from kubegate.devcluster import Kubectl, start_cluster, stop_cluster
from kubegate.devcluster.processes import Child, start_child, start_kubegate, stop_all
from kubegate.kube import KubeClient, load_connection
from kubegate.validation_config.model import TokenEntry
from kubegate.validation_config.registry import Registry
from kubegate.validation_config.shards import (
    DATA_KEY,
    DIGEST_ANNOTATION,
    SHARD_INDEX_ANNOTATION,
    SHARD_LABEL,
    SHARD_LABEL_VALUE,
    encode_shard,
)

NAMESPACE = "kubegate-system"
SHARDS = 64
BARE_APP = """
import hashlib, sys
from aiohttp import web
table = {hashlib.sha256(str(i).encode()).digest(): i for i in range(10000)}
async def ok(request):
    # A POST's body is read, as any endpoint that answers from its body must: the same work kubegate does.
    if request.can_read_body:
        await request.read()
    return web.Response(text="ok")
app = web.Application()
app.router.add_route("*", "/{tail:.*}", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""
WRK_SCRIPT = """
tokens = {}
for line in io.lines("%(tokens)s") do tokens[#tokens + 1] = line end
local i = 0
local mode = "%(mode)s"
request = function()
  i = i %% #tokens + 1
  if mode == "review" then
    local body = '{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"' .. tokens[i] .. '"}}'
    local headers = {["Content-Type"] = "application/json"}
    return wrk.format("POST", "/apis/authentication.k8s.io/v1/tokenreviews", headers, body)
  end
  return wrk.format("GET", "/auth/v1/verify", {["Authorization"] = "Bearer " .. tokens[i]})
end
"""


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    cpu_us: float = float("nan")
    """Server CPU time (user + system) per request, in microseconds: steadier than req/s on a shared VM."""
    requests: int = 0
    """Requests completed in the run."""


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_wrk(url: str, script: Path, seconds: int, *, connections: int = 64) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["taskset", "-c", "0", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        stdout=subprocess.PIPE,
        text=True,
    )


def wrk_result(name: str, wrk: subprocess.Popen[str], cpu_before: float, pid: int) -> Result:
    out, _ = wrk.communicate()
    if wrk.returncode != 0:
        raise RuntimeError(f"wrk failed against {name}: {out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    cpu = (cpu_seconds(pid) - cpu_before) / total * 1e6
    return Result(name, rps, p50, p99, int(bad.group(1)) if bad else 0, cpu, total)


def run_wrk(name: str, url: str, script: Path, seconds: int, *, server_pid: int, connections: int = 64) -> Result:
    """Load one server alone."""
    cpu_before = cpu_seconds(server_pid)
    return wrk_result(name, start_wrk(url, script, seconds, connections=connections), cpu_before, server_pid)


def run_pair(
    servers: dict[str, tuple[str, int]], names: tuple[str, str], script: Path, seconds: int, *, connections: int = 64
) -> tuple[Result, Result]:
    """Load two servers at once; they share one CPU, so each gets half of it."""
    cpu_before = {name: cpu_seconds(servers[name][1]) for name in names}
    started = {name: start_wrk(servers[name][0], script, seconds, connections=connections) for name in names}
    first, second = (wrk_result(name, started[name], cpu_before[name], servers[name][1]) for name in names)
    return first, second


async def write_config(count: int) -> list[str]:
    """Write `count` valid tokens into the validation config the way the operator lays it out."""
    tokens = [generate_token() for _ in range(count)]
    registry = Registry(SHARDS)
    now = datetime.now(UTC)
    for i, token in enumerate(tokens):
        entry = TokenEntry(
            sha256=hash_token(token),
            token_id=new_token_id(),
            name=f"bench-{i:06d}",
            namespace="bench",
            groups=("bench",),
            metadata={"io.kubegate.auth.token.name": f"bench_{i}"},
            created_at=now,
        )
        registry.set(("bench", entry.name), [entry])
    async with KubeClient(load_connection()) as client:
        collection = path_for(plural="secrets", namespace=NAMESPACE)
        existing, _ = await client.list_all(collection, label_selector=f"{SHARD_LABEL}={SHARD_LABEL_VALUE}")
        for secret in existing:
            await client.delete(f"{collection}/{secret['metadata']['name']}")
        for shard in range(SHARDS):
            encoded = encode_shard(registry.shard_entries(shard))
            await client.create(
                collection,
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {
                        "name": f"kubegate-static-tokens-{SHARDS}-{shard:03d}",
                        "labels": {SHARD_LABEL: SHARD_LABEL_VALUE},
                        "annotations": {SHARD_INDEX_ANNOTATION: f"{shard}/{SHARDS}", DIGEST_ANNOTATION: encoded.digest},
                    },
                    "data": {DATA_KEY: encoded.data},
                },
            )
    return tokens


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


SERVER_CPU = "1"
"""Every server measured runs on this CPU; wrk on CPU 0."""
READY_TIMEOUT = 120.0


def server_args(port: int, *, access_log: bool) -> list[str]:
    return [
        "server", "--insecure-http", "--address", f"127.0.0.1:{port}",
        "--operator-namespace", NAMESPACE, "--log-level", "WARNING",
        "--access-log" if access_log else "--no-access-log",
    ]  # fmt: skip


ENDPOINTS = (("verify", "/auth/v1/verify"), ("review", "TokenReview"))


def measure(
    servers: dict[str, tuple[str, int]], scripts: dict[str, Path], *, rounds: int, seconds: int, connections: int
) -> dict[tuple[str, str], list[Result]]:
    """`servers` by name: (URL, pid). Each round loads each server alone with each endpoint's requests."""
    for url, pid in servers.values():
        for script in scripts.values():
            # The first requests fill caches; not measured.
            run_wrk("warm-up", url, script, 2, server_pid=pid, connections=connections)
    results: dict[tuple[str, str], list[Result]] = {(n, m): [] for n in servers for m, _ in ENDPOINTS}
    names = list(servers)
    for round_number in range(rounds):
        turn = round_number % len(names)
        for mode, _ in ENDPOINTS:
            for name in names[turn:] + names[:turn]:
                url, pid = servers[name]
                result = run_wrk(name, url, scripts[mode], seconds, server_pid=pid, connections=connections)
                results[(name, mode)].append(result)
    return results


def wrk_scripts(directory: Path, tokens: list[str]) -> dict[str, Path]:
    """wrk's Lua script for each endpoint, sending `tokens` in turn (written to `directory`/tokens.txt)."""
    (directory / "tokens.txt").write_text("\n".join(tokens) + "\n")
    scripts = {}
    for mode, _ in ENDPOINTS:
        scripts[mode] = directory / f"{mode}.lua"
        scripts[mode].write_text(WRK_SCRIPT % {"tokens": directory / "tokens.txt", "mode": mode})
    return scripts


BASELINE = "kubegate-baseline"
VERSUS_BASELINE = "kubegate-vs-baseline"
BARE_GO = "bare-go"
GO = ":go"
"""Suffix of a ratio's endpoint key when the pair was with the bare Go endpoint."""
BARES = ("bare", BARE_GO)


def measure_pairs(
    servers: dict[str, tuple[str, int]],
    scripts: dict[str, Path],
    *,
    pairs: int,
    seconds: int,
    connections: int,
    runs: dict[tuple[str, str], list[Result]] | None = None,
) -> dict[tuple[str, str], list[float]]:
    """Per kubegate server and endpoint: its throughput over the bare aiohttp app's and over the bare Go
    endpoint's (under `mode + GO`), in each pair; with a baseline server, also this tree's server over the
    baseline's (under VERSUS_BASELINE). `runs`, if given, collects each paired wrk run's `Result` under the
    same keys, and the bare endpoints' under (bare name, mode)."""
    ratios: dict[tuple[str, str], list[float]] = {}
    for _ in range(pairs):
        for mode, _ in ENDPOINTS:
            for name in servers:
                if name in BARES:
                    continue
                for bare_name, key in (("bare", mode), (BARE_GO, mode + GO)):
                    if bare_name in servers:
                        bare, server = run_pair(
                            servers, (bare_name, name), scripts[mode], seconds, connections=connections
                        )
                        ratios.setdefault((name, key), []).append(server.rps / bare.rps)
                        if runs is not None:
                            runs.setdefault((name, key), []).append(server)
                            runs.setdefault((bare_name, mode), []).append(bare)
            if BASELINE in servers:
                baseline, server = run_pair(
                    servers, (BASELINE, "kubegate"), scripts[mode], seconds, connections=connections
                )
                ratios.setdefault((VERSUS_BASELINE, mode), []).append(server.rps / baseline.rps)
    return ratios


NAMES = {
    "bare": "bare aiohttp 200 ({requests} requests)",
    BARE_GO: "bare Go net/http 200 ({requests} requests)",
    "kubegate": "{endpoint}",
    "kubegate-access-log": "{endpoint} (access log on)",
    BASELINE: "{endpoint} (baseline tree)",
}


def report(
    results: dict[tuple[str, str], list[Result]],
    ratios: dict[tuple[str, str], list[float]],
    *,
    tokens: int,
    rounds: int,
    seconds: int,
    pairs: int,
    pair_seconds: int,
    connections: int,
) -> None:
    print(
        f"\n{tokens} valid static tokens loaded; wrk -t1 -c{connections}, a new token each request.\n"
        f"Alone: {rounds} rounds of {seconds} s per server and endpoint, medians over the rounds.\n"
        f"vs bare: {pairs} pairs of {pair_seconds} s, the server and the bare app loaded at once on one CPU; "
        "the median ratio of their requests/s, and its range; vs Go: the same with the bare Go endpoint."
    )
    print(
        f"{'endpoint':40} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/req':>11} {'non-2xx':>8} "
        f"{'vs bare':>8} {'(range)':>11} {'vs Go':>6} {'(range)':>11}"
    )
    for mode, endpoint in ENDPOINTS:
        for server, label in NAMES.items():
            if (server, mode) not in results:
                continue
            runs = results[(server, mode)]
            versus = ratios.get((server, mode), [1.0])
            go = ratios.get((server, mode + GO))
            go_text = f"{statistics.median(go):6.2f} {f'{min(go):.2f}-{max(go):.2f}':>11}" if go else ""
            print(
                f"{label.format(requests=mode, endpoint=endpoint):40} "
                f"{statistics.median(r.rps for r in runs):8.0f} {statistics.median(r.p50_ms for r in runs):7.2f} "
                f"{statistics.median(r.p99_ms for r in runs):7.2f} {statistics.median(r.cpu_us for r in runs):11.1f} "
                f"{sum(r.non_2xx for r in runs):8d} {statistics.median(versus):8.2f} "
                f"{f'{min(versus):.2f}-{max(versus):.2f}':>11} {go_text}"
            )
    for mode, endpoint in ENDPOINTS:
        baseline = ratios.get((VERSUS_BASELINE, mode))
        if baseline:
            print(
                f"{endpoint}: this tree over the baseline tree, loaded at once: "
                f"median {statistics.median(baseline):.2f}, min {min(baseline):.2f}, max {max(baseline):.2f} "
                f"({len(baseline)} pairs)"
            )


BARE_GO_SOURCE = Path(__file__).parent / "bare_go"


def bare_go_binary() -> Path:
    """The bare Go endpoint, built from `bench/bare_go` once per version of its source into ~/.cache/kubegate."""
    digest = hashlib.sha256()
    for name in ("go.mod", "main.go"):
        digest.update((BARE_GO_SOURCE / name).read_bytes())
    binary = Path.home() / ".cache" / "kubegate" / "bench" / f"bare-go-{digest.hexdigest()[:12]}" / "bare-go"
    if not binary.exists():
        print(f"building the bare Go endpoint into {binary} ...", flush=True)
        binary.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["go", "build", "-o", str(binary), "."],
            cwd=BARE_GO_SOURCE,
            check=True,
            env={**os.environ, "CGO_ENABLED": "0"},
        )
    return binary


def start_bare(tmp: Path, port: int) -> Child:
    """The bare aiohttp app on CPU 1, its log in `tmp`; not yet ready."""
    return start_child("bare", [sys.executable, "-c", BARE_APP, str(port)], log_file=tmp / "bare.log", cpus=SERVER_CPU)


def start_bare_go(tmp: Path, port: int) -> Child:
    """The bare Go endpoint on CPU 1 (GOMAXPROCS=1), its log in `tmp`; not yet ready."""
    return start_child(
        BARE_GO,
        [str(bare_go_binary()), str(port)],
        log_file=tmp / "bare-go.log",
        env={"GOMAXPROCS": "1"},
        cpus=SERVER_CPU,
    )


def start_servers(tmp: Path, port: int, baseline_tree: Path | None) -> tuple[list[Child], dict[str, tuple[str, int]]]:
    """The bare endpoints and the kubegate servers on CPU 1, by name: (URL, pid); not yet ready."""
    children = [
        start_bare(tmp, port + 1),
        start_kubegate("kubegate", server_args(port, access_log=False), log_file=tmp / "server.log", cpus=SERVER_CPU),
        start_kubegate(
            "kubegate-access-log",
            server_args(port + 2, access_log=True),
            log_file=tmp / "server-access-log.log",
            cpus=SERVER_CPU,
        ),
    ]
    ports = [port + 1, port, port + 2]
    children.append(start_bare_go(tmp, port + 4))
    ports.append(port + 4)
    if baseline_tree is not None:
        children.append(
            start_kubegate(
                BASELINE,
                server_args(port + 3, access_log=False),
                log_file=tmp / "server-baseline.log",
                env={"PYTHONPATH": str(baseline_tree.resolve() / "operator")},
                cpus=SERVER_CPU,
            )
        )
        ports.append(port + 3)
    servers = {child.name: (f"http://127.0.0.1:{p}", child.pid) for child, p in zip(children, ports, strict=True)}
    return children, servers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--memory-tokens", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--pair-seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64, help="wrk's connections (issue 14: 64 and 8)")
    parser.add_argument(
        "--baseline-tree", type=Path, help="a checkout of another commit to compare with, loaded at the same time"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="kubegate-bench-") as tmp_name:
        tmp = Path(tmp_name)
        state = start_cluster(state_dir=tmp / "cluster", name="bench", die_with_parent=True)
        try:
            Kubectl(state)("create", "namespace", NAMESPACE)
            os.environ["KUBECONFIG"] = str(state.kubeconfig)
            tokens = asyncio.run(write_config(args.tokens))
            scripts = wrk_scripts(tmp, tokens)
            port = 18443
            children, servers = start_servers(tmp, port, args.baseline_tree)
            try:
                for child, (url, _) in zip(children, servers.values(), strict=True):
                    ready = url + ("/" if child.name in BARES else "/readyz")
                    child.wait_ready(ready, timeout=READY_TIMEOUT)
                results = measure(
                    servers, scripts, rounds=args.rounds, seconds=args.seconds, connections=args.connections
                )
                ratios = measure_pairs(
                    servers, scripts, pairs=args.pairs, seconds=args.pair_seconds, connections=args.connections
                )
            finally:
                stop_all(children, timeout=30)
            report(
                results,
                ratios,
                tokens=args.tokens,
                rounds=args.rounds,
                seconds=args.seconds,
                pairs=args.pairs,
                pair_seconds=args.pair_seconds,
                connections=args.connections,
            )

            asyncio.run(write_config(args.memory_tokens))
            server = start_kubegate(
                "kubegate", server_args(port, access_log=True), log_file=tmp / "server.log", cpus=SERVER_CPU
            )
            try:
                server.wait_ready(f"http://127.0.0.1:{port}/readyz", timeout=READY_TIMEOUT)
                time.sleep(1)
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
                    loaded = re.search(r"^kubegate_config_tokens (\S+)$", response.read().decode(), re.M)
                print(
                    f"\nserver memory with {args.memory_tokens} tokens loaded: {rss_mib(server.pid):.0f} MiB RSS "
                    f"(tokens in memory: {loaded.group(1) if loaded else '?'})"
                )
            finally:
                server.stop(timeout=30)
        finally:
            stop_cluster(tmp / "cluster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
