"""How fast the operator makes N StaticTokens Ready and published, with how many API writes, how much CPU
and how much memory.

    PYTHONPATH=operator .venv/bin/python bench/reconcile_tokens.py 1000

Starts its own dev cluster (the control plane `make control-plane` built) in a temporary directory,
installs the CRDs, runs `kubegate operator` of this tree as a separate process, creates N StaticTokens at
once (32 requests in flight), follows them with watches (a poll of N objects would load the API server
it measures), and prints:
- the seconds until the API server stored the last StaticToken (its create answered), and until every
  token is Ready and its hash is in the validation config, and the gap between the two;
- percentiles of the seconds from each token's create to its Ready;
- the API writes per token, by resource and verb, from the API server's `apiserver_request_total` before
  and after (the bench's creates and the control plane's leases left out: the operator's), and the reads
  (anyone's);
- the CPU-seconds the operator and the API server spent over the run (utime + stime from /proc);
- the operator's peak resident memory (VmHWM from /proc).
Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from kubegate.contracts.api_paths import path_for
from kubegate.devcluster import Kubectl, start_cluster, stop_cluster
from kubegate.devcluster.processes import start_kubegate
from kubegate.kube import ApiUnavailable, KubeClient, load_connection
from kubegate.resources import StaticToken
from kubegate.validation_config.shards import DATA_KEY, SHARD_LABEL, SHARD_LABEL_VALUE, decode_shard

ROOT = Path(__file__).resolve().parents[1]
OPERATOR_NS, APPS_NS = "kubegate-system", "bench"
TOKENS = StaticToken.path(namespace=APPS_NS)
SHARDS = path_for(plural="secrets", namespace=OPERATOR_NS)
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE", "APPLY")
_REQUESTS = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')
# Writes that are not the operator's: the controller manager's and the scheduler's leader leases.
_NOT_OPERATOR = {"leases"}


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def requests_by_kind(kubectl: Kubectl) -> Counter[tuple[str, str]]:
    """The API server's count of requests so far, by (verb, resource[/subresource])."""
    counts: Counter[tuple[str, str]] = Counter()
    for line in kubectl("get", "--raw", "/metrics").stdout.splitlines():
        match = _REQUESTS.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        resource = labels.get("resource", "") + (f"/{labels['subresource']}" if labels.get("subresource") else "")
        counts[labels.get("verb", ""), resource] += int(float(match["value"]))
    return counts


async def create_all(client: KubeClient, count: int, stored: dict[str, float], in_flight: int = 32) -> float:
    """Create the tokens, noting when the API server answered each create in `stored`; returns the
    monotonic time of the last answer."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    last = 0.0

    async def worker() -> None:
        nonlocal last
        while not queue.empty():
            i = queue.get_nowait()
            body = {
                "apiVersion": "kubegate.dev/v1alpha1",
                "kind": "StaticToken",
                "metadata": {"name": f"bench-{i:05d}"},
                "spec": {"groups": ["bench"], "metadata": {"index": str(i)}},
            }
            await client.create(TOKENS, body)
            stored[body["metadata"]["name"]] = time.monotonic()
            last = max(last, time.monotonic())

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return last


class Progress:
    """Ready tokens and published hashes as the watches report them."""

    def __init__(self) -> None:
        self.ready: dict[str, float] = {}
        """When each token was first seen Ready."""
        self.published: dict[str, set[str]] = {}
        """Names of the bench's tokens, by shard."""
        self.changed = asyncio.Event()

    def count(self) -> tuple[int, int]:
        return len(self.ready), sum(len(names) for names in self.published.values())

    async def follow_tokens(self, client: KubeClient, version: str) -> None:
        while True:
            try:
                async for event in client.watch(TOKENS, resource_version=version):
                    obj = event.object
                    version = obj["metadata"].get("resourceVersion", version)
                    if event.type == "BOOKMARK":
                        continue
                    conditions = (obj.get("status") or {}).get("conditions") or []
                    if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                        self.ready.setdefault(obj["metadata"]["name"], time.monotonic())
                        self.changed.set()
            except ApiUnavailable:
                await asyncio.sleep(0.5)

    async def follow_shards(self, client: KubeClient, version: str) -> None:
        selector = f"{SHARD_LABEL}={SHARD_LABEL_VALUE}"
        while True:
            try:
                async for event in client.watch(SHARDS, resource_version=version, label_selector=selector):
                    obj = event.object
                    version = obj["metadata"].get("resourceVersion", version)
                    if event.type == "BOOKMARK":
                        continue
                    entries = [] if event.type == "DELETED" else decode_shard(obj["data"][DATA_KEY])
                    self.published[obj["metadata"]["name"]] = {e.name for e in entries if e.namespace == APPS_NS}
                    self.changed.set()
            except ApiUnavailable:
                await asyncio.sleep(0.5)


async def measure(count: int, operator_pid: int, apiserver_pid: int, kubectl: Kubectl) -> None:
    async with KubeClient(load_connection(), max_connections=40) as client:
        progress = Progress()
        _, tokens_version = await client.list_all(TOKENS)
        _, shards_version = await client.list_all(SHARDS, label_selector=f"{SHARD_LABEL}={SHARD_LABEL_VALUE}")
        watches = [
            asyncio.create_task(progress.follow_tokens(client, tokens_version)),
            asyncio.create_task(progress.follow_shards(client, shards_version)),
        ]
        before = requests_by_kind(kubectl)
        cpu_before = cpu_seconds(operator_pid), cpu_seconds(apiserver_pid)
        started = time.monotonic()
        stored: dict[str, float] = {}
        creating = asyncio.ensure_future(create_all(client, count, stored))
        last_report = 0.0
        while True:
            ready, published = progress.count()
            elapsed = time.monotonic() - started
            if ready == count and published == count and creating.done():
                break
            if elapsed - last_report >= 10:
                print(f"  {elapsed:6.1f}s: {ready} Ready, {published} published", flush=True)
                last_report = elapsed
            progress.changed.clear()
            await asyncio.wait([asyncio.ensure_future(progress.changed.wait())], timeout=1.0)
        done = time.monotonic()
        last_stored = creating.result() - started
        cpu_after = cpu_seconds(operator_pid), cpu_seconds(apiserver_pid)
        for task in watches:
            task.cancel()
        await asyncio.gather(*watches, return_exceptions=True)
        after = requests_by_kind(kubectl)
    total = done - started
    writes = {
        key: after[key] - before[key]
        for key in after
        if key[0] in WRITE_VERBS and after[key] != before[key] and key[1] not in _NOT_OPERATOR
    }
    writes["POST", "statictokens"] = writes.get(("POST", "statictokens"), 0) - count  # the bench's own
    operator_writes = sum(writes.values())
    reads = {
        key: after[key] - before[key]
        for key in after
        if key[0] in ("GET", "LIST") and after[key] != before[key] and key[1] not in _NOT_OPERATOR
    }
    lags = sorted(progress.ready[name] - stored[name] for name in stored)
    print(
        "seconds from a token's create to its Ready: "
        + ", ".join(f"p{q} {lags[min(len(lags) - 1, len(lags) * q // 100)]:.1f}" for q in (50, 90, 99))
        + f", max {lags[-1]:.1f}"
    )
    print("API writes besides the bench's creates:")
    for (verb, resource), n in sorted(writes.items(), key=lambda kv: -kv[1]):
        if n:
            print(f"  {verb:7} {resource:22} {n:7d}  {n / count:.3f}/token")
    print("API reads by anyone (the bench's, the controller manager's included):")
    for (verb, resource), n in sorted(reads.items(), key=lambda kv: -kv[1]):
        print(f"  {verb:7} {resource:22} {n:7d}  {n / count:.3f}/token")
    print(
        f"RESULT tokens={count} last_stored_s={last_stored:.1f} ready_and_published_s={total:.1f} "
        f"gap_s={total - last_stored:.1f} writes_per_token={operator_writes / count:.2f} "
        f"operator_cpu_s={cpu_after[0] - cpu_before[0]:.1f} apiserver_cpu_s={cpu_after[1] - cpu_before[1]:.1f} "
        f"operator_peak_rss_mib={peak_rss_mib(operator_pid):.0f} load={os.getloadavg()[0]:.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="number of StaticTokens to create")
    parser.add_argument("--operator-arg", action="append", default=[], help="an extra argument of the operator")
    parser.add_argument("--log-level", default="WARNING", help="the operator's; the end of its log is printed")
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="kubegate-bench-") as tmp:
        state_dir = Path(tmp) / "cluster"
        state = start_cluster(state_dir=state_dir, name="bench", die_with_parent=True, progress=print)
        try:
            kubectl = Kubectl(state)
            kubectl.install_crds(ROOT / "crds")
            for ns in (OPERATOR_NS, APPS_NS):
                kubectl("create", "namespace", ns)
            os.environ["KUBECONFIG"] = str(state.kubeconfig)
            op = start_kubegate(
                "operator",
                [
                    "operator",
                    "--standalone",
                    "--operator-namespace",
                    OPERATOR_NS,
                    "--namespace",
                    APPS_NS,
                    "--no-bootstrap",
                    "--health-address",
                    "127.0.0.1:0",
                    "--log-level",
                    args.log_level,
                    *args.operator_arg,
                ],
                log_file=Path(tmp) / "operator.log",
                # This tree's operator, whatever kubegate the interpreter has installed.
                env={"PYTHONPATH": str(ROOT / "operator")},
            )
            apiserver = state.component("kube-apiserver")
            assert apiserver is not None
            try:
                time.sleep(3)
                asyncio.run(measure(args.count, op.pid, apiserver.pid, kubectl))
            finally:
                op.stop(timeout=30)
                log = (Path(tmp) / "operator.log").read_text().splitlines()
                print(f"operator log: {len(log)} lines; the last ones:", *log[-15:], sep="\n  ")
        finally:
            stop_cluster(state_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
