"""kubegate's real routes on each candidate HTTP stack, next to bare aiohttp and Go endpoints (issue 14).

    PYTHONPATH=operator:tests/unit .venv/bin/python bench/server_stacks.py [--tokens 10000] [--pairs 5]
        [--pair-seconds 3] [--connections 64 --connections 8] [--only kubegate --only uvicorn ...]

No cluster: each candidate (`bench/stack_candidates.py`) builds the server's routes in memory with N valid
static tokens and serves them on its stack; every stack does the same kubegate work (the routes' `answer`),
only the HTTP around it differs. All servers run pinned to CPU 1, wrk on CPU 0, every request a new token.

Measured in pairs as bench/verify_throughput.py does: a candidate and the bare aiohttp app (answering 200)
are loaded at once for `--pair-seconds` by two wrk processes while they share CPU 1, and the ratio of their
requests/s is kept; then the same with the bare Go net/http endpoint. Printed: the median ratio over
`--pairs` pairs and its range, for /auth/v1/verify (GET, bearer) and the TokenReview webhook (POST JSON) at
each `--connections`, and each server's CPU time per request (user + system, from /proc) in those runs.
Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kubegate.contracts.token_format import generate_token
from kubegate.devcluster.processes import Child, start_child, start_time, stop, stop_all
from stack_candidates import CANDIDATES
from verify_throughput import (
    BARES,
    ENDPOINTS,
    GO,
    READY_TIMEOUT,
    SERVER_CPU,
    Result,
    cpu_seconds,
    measure_pairs,
    run_wrk,
    start_bare,
    start_bare_go,
    wrk_scripts,
)

CANDIDATES_MODULE = Path(__file__).parent / "stack_candidates.py"
PORT = 19300
WARM_UP_SECONDS = 2
Servers = dict[str, tuple[str, int]]
"""By name: (URL, pid of the process that serves)."""


def available(names: list[str]) -> list[str]:
    """`names` without granian when it is not installed."""
    if "granian" in names and importlib.util.find_spec("granian") is None:
        print("granian is not installed: skipped", file=sys.stderr)
        return [name for name in names if name != "granian"]
    return names


def start_candidate(tmp: Path, name: str, port: int, tokens_file: Path) -> Child:
    return start_child(
        name,
        [sys.executable, str(CANDIDATES_MODULE), name, str(port), str(tokens_file)],
        log_file=tmp / f"{name}.log",
        cpus=SERVER_CPU,
    )


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (granian serves from a worker process of its own)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        parents.setdefault(parent, []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        found.append(queue.pop())
        queue.extend(parents.get(found[-1], []))
    return found


def check(name: str, url: str, token: str) -> None:
    """The candidate verifies a valid token on both endpoints, or the run stops here."""
    request = urllib.request.Request(f"{url}/auth/v1/verify", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        verified = response.status == 200
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    request = urllib.request.Request(
        f"{url}/apis/authentication.k8s.io/v1/tokenreviews",
        data=json.dumps(review).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        reviewed = json.loads(response.read())["status"]["authenticated"] is True
    if not (verified and reviewed):
        raise RuntimeError(f"{name} does not answer as kubegate should (verify: {verified}, review: {reviewed})")


def warm_up(servers: Servers, scripts: dict[str, Path], connections: int) -> Servers:
    """Load each server alone once per endpoint (caches, JIT-free but lazy imports), then name as its pid
    the process of its tree that did the work."""
    serving = {}
    for name, (url, pid) in servers.items():
        tree = process_tree(pid)
        before = {p: cpu_seconds(p) for p in tree}
        for script in scripts.values():
            run_wrk("warm-up", url, script, WARM_UP_SECONDS, server_pid=pid, connections=connections)
        busiest = max(tree, key=lambda p: cpu_seconds(p) - before[p])
        serving[name] = (url, busiest)
    return serving


@contextmanager
def servers_running(tmp: Path, names: list[str], tokens: list[str]) -> Iterator[Servers]:
    """The bare endpoints and the candidates on CPU 1, ready; all stopped when the block ends."""
    tokens_file = tmp / "tokens.txt"
    children = [start_bare(tmp, PORT), start_bare_go(tmp, PORT + 1)]
    children += [start_candidate(tmp, name, PORT + 10 + i, tokens_file) for i, name in enumerate(names)]
    ports = [PORT, PORT + 1, *(PORT + 10 + i for i in range(len(names)))]
    servers = {child.name: (f"http://127.0.0.1:{port}", child.pid) for child, port in zip(children, ports, strict=True)}
    descendants: dict[int, int] = {}
    try:
        for child in children:
            url = servers[child.name][0]
            child.wait_ready(url + ("/" if child.name in BARES else "/readyz"), timeout=READY_TIMEOUT)
            if child.name not in BARES:
                check(child.name, url, tokens[0])
            for pid in process_tree(child.pid)[1:]:
                descendants[pid] = start_time(pid) or 0
        yield servers
    finally:
        stop_all(children, timeout=15)
        for pid, started in descendants.items():  # a worker its parent failed to stop
            stop(pid, started, timeout=5)


def median_range(values: list[float], digits: int = 2) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def report(
    ratios: dict[tuple[str, str], list[float]],
    runs: dict[tuple[str, str], list[Result]],
    names: list[str],
    connections: int,
) -> list[str]:
    """Table rows (markdown) for one connection count."""
    rows = []
    for mode, endpoint in ENDPOINTS:
        for name in names:
            server_runs = runs.get((name, mode), []) + runs.get((name, mode + GO), [])
            non_2xx = sum(r.non_2xx for r in server_runs)
            rows.append(
                f"| {name} | {endpoint} | {connections} | {median_range(ratios.get((name, mode), []))} "
                f"| {median_range(ratios.get((name, mode + GO), []))} "
                f"| {statistics.median(r.cpu_us for r in server_runs):.1f} | {non_2xx} |"
            )
        for bare in BARES:
            cpu = statistics.median(r.cpu_us for r in runs[(bare, mode)])
            label = "bare aiohttp 200" if bare == "bare" else "bare Go net/http 200"
            non_2xx = sum(r.non_2xx for r in runs[(bare, mode)])
            rows.append(f"| {label} | {endpoint} | {connections} | | | {cpu:.1f} | {non_2xx} |")
    return rows


HEADER = (
    "| candidate | endpoint | conns | vs bare aiohttp: median (min-max) | vs bare Go: median (min-max) "
    "| server CPU us/req | non-2xx |\n|---|---|---|---|---|---|---|"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--pair-seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, action="append", help="wrk's connections (default: 64 and 8)")
    parser.add_argument("--only", action="append", choices=CANDIDATES, help="candidates to measure (default: all)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    names = available(args.only or list(CANDIDATES))
    connections = args.connections or [64, 8]
    with tempfile.TemporaryDirectory(prefix="kubegate-stacks-") as tmp_name:
        tmp = Path(tmp_name)
        tokens = [generate_token() for _ in range(args.tokens)]
        scripts = wrk_scripts(tmp, tokens)
        rows = []
        with servers_running(tmp, names, tokens) as started:
            servers = warm_up(started, scripts, max(connections))
            for count in connections:
                print(f"measuring at {count} connections ...", file=sys.stderr, flush=True)
                runs: dict[tuple[str, str], list[Result]] = {}
                ratios = measure_pairs(
                    servers, scripts, pairs=args.pairs, seconds=args.pair_seconds, connections=count, runs=runs
                )
                rows += report(ratios, runs, names, count)
    print(
        f"\n{args.tokens} valid static tokens; wrk -t1 on CPU 0, a new token each request; servers on CPU 1. "
        f"{args.pairs} pairs of {args.pair_seconds} s: the candidate and a bare endpoint loaded at once, "
        f"sharing CPU 1; the ratio of their requests/s. Load: {os.getloadavg()[0]:.2f} (1 min).\n"
    )
    print(HEADER)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
