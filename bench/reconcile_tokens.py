"""How long the operator takes to make N StaticTokens Ready and publish their hashes, and its peak memory.

    .venv/bin/python bench/reconcile_tokens.py 1000

Starts its own dev cluster (the control plane `make control-plane` built) in a temporary directory,
installs the CRDs, runs `kubegate operator` as a separate process, creates N StaticTokens at once
(32 requests in flight), and prints:
- the seconds from the first create until every token is Ready and its hash is in the validation config;
- the operator's peak resident memory (VmHWM from /proc).
Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from kubegate.contracts.api_paths import path_for
from kubegate.devcluster import Kubectl, start_cluster, stop_cluster
from kubegate.devcluster.processes import start_kubegate
from kubegate.kube import KubeClient, load_connection
from kubegate.resources import StaticToken
from kubegate.validation_config.shards import DATA_KEY, SHARD_LABEL, SHARD_LABEL_VALUE, decode_shard

ROOT = Path(__file__).resolve().parents[1]
OPERATOR_NS, APPS_NS = "kubegate-system", "bench"
TOKENS = StaticToken.path(namespace=APPS_NS)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def create_all(client: KubeClient, count: int, in_flight: int = 32) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            body = {
                "apiVersion": "kubegate.dev/v1alpha1",
                "kind": "StaticToken",
                "metadata": {"name": f"bench-{i:05d}"},
                "spec": {"groups": ["bench"], "metadata": {"index": str(i)}},
            }
            await client.create(TOKENS, body)

    await asyncio.gather(*(worker() for _ in range(in_flight)))


async def progress(client: KubeClient) -> tuple[int, int]:
    items, _ = await client.list_all(TOKENS)
    ready = sum(
        1
        for i in items
        if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (i.get("status") or {}).get("conditions", [])
        )
    )
    shards, _ = await client.list_all(
        path_for(plural="secrets", namespace=OPERATOR_NS), label_selector=f"{SHARD_LABEL}={SHARD_LABEL_VALUE}"
    )
    published = sum(1 for s in shards for e in decode_shard(s["data"][DATA_KEY]) if e.namespace == APPS_NS)
    return ready, published


async def measure(count: int, operator_pid: int) -> None:
    async with KubeClient(load_connection(), max_connections=40) as client:
        started = time.monotonic()
        await create_all(client, count)
        created = time.monotonic() - started
        print(f"created {count} StaticTokens in {created:.1f}s", flush=True)
        last_report = 0.0
        while True:
            ready, published = await progress(client)
            elapsed = time.monotonic() - started
            if ready == count and published == count:
                break
            if elapsed - last_report >= 10:
                print(f"  {elapsed:6.1f}s: {ready} Ready, {published} published", flush=True)
                last_report = elapsed
            await asyncio.sleep(1.0 if count <= 2000 else 3.0)
        print(
            f"RESULT tokens={count} seconds_to_ready_and_published={elapsed:.1f} "
            f"operator_peak_rss_mib={peak_rss_mib(operator_pid):.0f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="number of StaticTokens to create")
    args = parser.parse_args()
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
                    "WARNING",
                ],
                log_file=Path(tmp) / "operator.log",
            )
            try:
                time.sleep(3)
                asyncio.run(measure(args.count, op.pid))
            finally:
                op.stop(timeout=30)
        finally:
            stop_cluster(state_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
