"""kill -9 of the operator at random points while tokens are created, rotated and deleted, round after round.

Afterwards every token is Ready, has one Secret and verifies on every server; no token was rotated twice;
every value held before the rotation verified throughout; every deleted token is gone from the config.
During the run a sampler reads statuses and Secrets and verifies Ready tokens on two servers: a Ready token
refused by a server that had time to catch up is a failure, whenever it happens.

KUBEGATE_CRASH_TOKENS sets the number of tokens (default 300, the issue's figure: about 95 s on a 2-core
machine; fewer for a quicker run), KUBEGATE_CRASH_SEED the random kill points (printed with the figures).
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubegate.contracts.token_format import hash_token
from kubegate.contracts.token_secret import PREVIOUS_SHA_ANNOTATION
from kubegate.devcluster import ClusterState, Kubectl
from support import eventually
from support.http import get
from support.kube import apply, config_entries, token_resource
from support.processes import ServerProcess, operator

pytestmark = pytest.mark.integration
TOKENS = int(os.environ.get("KUBEGATE_CRASH_TOKENS", "300"))
SEED = int(os.environ.get("KUBEGATE_CRASH_SEED", str(random.SystemRandom().randrange(10**6))))
KILLS = 3
"""kill -9 rounds per phase, each at a random moment of the work."""
CATCH_UP = 2.0
"""Seconds a server gets to see a config change before a refusal counts (it watches the config Secrets)."""
VERIFIED_PER_SAMPLE = 15
ROTATED = re.compile(r"rotated StaticToken (\S+)/(\S+):")
SPEC = {"groups": ["crash"], "rotation": {"every": "720h", "overlap": "1h"}}


def _ready(obj: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions", []))


def _value(secret: dict[str, Any]) -> str:
    return base64.b64decode(secret["data"]["token"]).decode()


@dataclass
class Sampler:
    """Polls statuses and Secrets, keeps every value each token's Secret held, verifies Ready tokens."""

    kubectl: Kubectl
    namespace: str
    servers: list[ServerProcess]
    rng: random.Random
    values: dict[str, list[str]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    """Ready (or pre-rotation) values a server refused after CATCH_UP seconds."""
    deleting: bool = False
    held: dict[str, str] = field(default_factory=dict)
    """Values consumers held before the rotation: they must verify throughout the overlap."""
    samples: int = 0
    verified: int = 0
    _pending: list[tuple[float, list[tuple[str, str]]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def snapshot(self) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        tokens = {
            i["metadata"]["name"]: i for i in self.kubectl.json("get", "statictokens", "-n", self.namespace)["items"]
        }
        secrets: dict[str, list[dict[str, Any]]] = {}
        found = self.kubectl.json("get", "secrets", "-n", self.namespace, "-l", "app.kubernetes.io/managed-by=kubegate")
        for secret in found["items"]:
            secrets.setdefault(secret["metadata"]["labels"]["kubegate.dev/statictoken"], []).append(secret)
        return tokens, secrets

    def sample(self) -> None:
        tokens, secrets = self.snapshot()
        self.samples += 1
        ready: list[tuple[str, str]] = []
        for name, found in secrets.items():
            for secret in found:
                value = _value(secret)
                history = self.values.setdefault(name, [])
                if value not in history:
                    history.append(value)
            obj = tokens.get(name)
            if obj is not None and _ready(obj) and not self.deleting and len(found) == 1:
                ready.append((name, _value(found[0])))
        chosen = self.rng.sample(ready, min(VERIFIED_PER_SAMPLE, len(ready)))
        chosen += self.rng.sample(sorted(self.held.items()), min(VERIFIED_PER_SAMPLE, len(self.held)))
        self._pending.append((time.monotonic(), chosen))
        while self._pending and time.monotonic() - self._pending[0][0] >= CATCH_UP:
            _, due = self._pending.pop(0)
            for name, value in due:
                self.verify(name, value)

    def verify(self, name: str, value: str) -> None:
        for server in self.servers:
            status, _ = get(server.url + "/auth/v1/verify", token=value)
            self.verified += 1
            if status == 401:
                self.refused.append(f"{name} refused by {server.process.name} (sample {self.samples})")

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        self._stop.clear()
        thread = threading.Thread(target=self._loop, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join(30)

    def _loop(self) -> None:
        while not self._stop.wait(0.3):
            with contextlib.suppress(Exception):  # a kubectl call cut short by a busy machine: sample again
                self.sample()


@dataclass
class Crashes:
    """Runs the operator, kills it with SIGKILL at random moments, and counts what happened."""

    dev_cluster: ClusterState
    operator_ns: str
    apps: str
    log_dir: Path
    rng: random.Random
    runs: int = 0
    mid_work: int = 0
    """Kills that came while the phase's work was not finished (the ones that prove something)."""

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("operator-*.log")))

    @contextlib.contextmanager
    def operator(self) -> Iterator[Any]:
        self.runs += 1
        with operator(
            kubeconfig=self.dev_cluster.kubeconfig,
            log_file=self.log_dir / f"operator-{self.runs:02d}.log",
            operator_namespace=self.operator_ns,
            namespaces=[self.apps],
            # Short write rounds: tokens get Ready a few at a time rather than a few hundred per second, so
            # that a kill can come between them.
            extra=["--no-bootstrap", "--log-level", "INFO", "--config-write-interval", "0.1"],
        ) as process:
            yield process

    def kill_rounds(self, progress: Callable[[], int], *, total: int) -> None:
        """`progress`: how much of the phase's `total` is done. The operator finishes a few hundred tokens
        within a second or two of starting, so a kill at a random time after its start mostly came after the
        work: each round kills it once a random part of what is left (at most a third) is done."""
        for _ in range(KILLS):
            with self.operator() as process:
                before = progress()
                target = before + self.rng.randint(1, max(1, (total - before) // 3))
                deadline = time.monotonic() + 60
                done = before
                while done < min(target, total) and time.monotonic() < deadline:
                    time.sleep(0.02)
                    done = progress()
                process.stop(kill=True)
            self.mid_work += done < total


def _published(kubectl: Kubectl, operator_ns: str, apps: str) -> dict[str, Any]:
    return {e.sha256: e for e in config_entries(kubectl, operator_ns) if e.namespace == apps}


def test_kill_9_while_creating_rotating_and_deleting(
    dev_cluster: ClusterState,
    kubectl: Kubectl,
    namespaces: tuple[str, str],
    servers: list[ServerProcess],
    tmp_path: Path,
) -> None:
    operator_ns, apps = namespaces
    rng = random.Random(SEED)
    names = [f"crash-{i:03d}" for i in range(TOKENS)]
    sampler = Sampler(kubectl, apps, servers, rng)
    crashes = Crashes(dev_cluster, operator_ns, apps, tmp_path, rng)
    figures: dict[str, Any] = {"tokens": TOKENS, "seed": SEED}

    def statictokens() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = kubectl.json("get", "statictokens", "-n", apps)["items"]
        return items

    def ready_count() -> int:
        return sum(_ready(t) for t in statictokens())

    def all_ready() -> bool:
        return ready_count() == TOKENS

    # --- creation ---------------------------------------------------------------------------------
    apply(kubectl, *(token_resource(n, **SPEC) for n in names), namespace=apps)
    started = time.monotonic()
    with sampler.running():
        crashes.kill_rounds(ready_count, total=TOKENS)
        with crashes.operator():
            eventually(all_ready, timeout=180, what="every token Ready after the kills", interval=0.5)
            figures["create_s"] = round(time.monotonic() - started, 1)
            time.sleep(CATCH_UP + 0.5)  # let the sampler verify what it saw last
    tokens, secrets = sampler.snapshot()
    first = {n: _value(secrets[n][0]) for n in names}
    published = _published(kubectl, operator_ns, apps)
    for name, value in first.items():
        sampler.verify(name, value)
    figures["create"] = {
        "runs": crashes.runs,
        "kills mid-work": crashes.mid_work,
        "not one Secret": sum(len(secrets.get(n, [])) != 1 for n in names),
        "a second value": sum(len(sampler.values[n]) != 1 for n in names),
        "status and Secret disagree": sum(
            tokens[n]["status"]["tokenId"] != base64.b64decode(secrets[n][0]["data"]["tokenId"]).decode() for n in names
        ),
        "unpublished": sum(hash_token(v) not in published for v in first.values()),
        "Ready refused": len(sampler.refused),
    }

    # --- rotation ---------------------------------------------------------------------------------
    sampler.held = dict(first)
    refused_before = len(sampler.refused)
    kubectl("annotate", "statictokens", "--all", "-n", apps, "kubegate.dev/rotate=r1", "--overwrite")

    def rotated_count() -> int:
        # The status says a rotation was handled only after the new value is in the Secret.
        return sum(_ready(t) and (t["status"] or {}).get("handledRotateRequest") == "r1" for t in statictokens())

    def all_rotated() -> bool:
        tokens, secrets = sampler.snapshot()
        return all(
            _ready(t) and (t["status"] or {}).get("handledRotateRequest") == "r1" for t in tokens.values()
        ) and all(_value(s[0]) != first[n] for n, s in secrets.items())

    runs_before, mid_before = crashes.runs, crashes.mid_work
    started = time.monotonic()
    with sampler.running():
        crashes.kill_rounds(rotated_count, total=TOKENS)
        with crashes.operator():
            eventually(all_rotated, timeout=180, what="every token rotated after the kills", interval=0.5)
            figures["rotate_s"] = round(time.monotonic() - started, 1)
            time.sleep(CATCH_UP + 0.5)
    tokens, secrets = sampler.snapshot()
    second = {n: _value(secrets[n][0]) for n in names}
    published = _published(kubectl, operator_ns, apps)
    for name in names:
        for value in (first[name], second[name]):
            sampler.verify(name, value)
    rotations = [m.group(2) for m in ROTATED.finditer(crashes.logs())]
    figures["rotate"] = {
        "runs": crashes.runs - runs_before,
        "kills mid-work": crashes.mid_work - mid_before,
        "not one Secret": sum(len(secrets.get(n, [])) != 1 for n in names),
        # Rotated once: the Secret's previous token is the value held before, no third value was seen, and
        # the operator logged one rotation.
        "rotated twice": sum(
            secrets[n][0]["metadata"]["annotations"].get(PREVIOUS_SHA_ANNOTATION) != hash_token(first[n]) for n in names
        ),
        "not two values": sum(len(sampler.values[n]) != 2 for n in names),
        "two rotation lines": sum(rotations.count(n) > 1 for n in names),
        "unpublished": sum(hash_token(v) not in published for n in names for v in (first[n], second[n])),
        "Ready or held refused": len(sampler.refused) - refused_before,
    }

    # --- deletion ---------------------------------------------------------------------------------
    sampler.held = {}
    sampler.deleting = True
    kubectl("delete", "statictokens", "--all", "-n", apps, "--wait=false")

    def all_gone() -> bool:
        return not kubectl.json("get", "statictokens", "-n", apps)["items"]

    def unpublished_count() -> int:
        # Without a finalizer the resources go at once; the operator's work is taking their hashes out.
        return TOKENS - len(_published(kubectl, operator_ns, apps)) if all_gone() else 0

    runs_before, mid_before = crashes.runs, crashes.mid_work
    started = time.monotonic()
    with sampler.running():
        crashes.kill_rounds(unpublished_count, total=TOKENS)
        with crashes.operator():
            eventually(all_gone, timeout=180, what="every StaticToken gone after the kills", interval=0.5)
            figures["delete_s"] = round(time.monotonic() - started, 1)
    time.sleep(CATCH_UP)
    figures["delete"] = {
        "runs": crashes.runs - runs_before,
        "kills mid-work": crashes.mid_work - mid_before,
        "still published": len(_published(kubectl, operator_ns, apps)),
        "still verify": sum(
            get(servers[0].url + "/auth/v1/verify", token=v)[0] != 401 for n in names for v in (first[n], second[n])
        ),
    }
    figures["samples"], figures["verifications"] = sampler.samples, sampler.verified
    print("kill -9 figures:", figures)
    failures = {
        f"{phase}: {what}": count
        for phase in ("create", "rotate", "delete")
        for what, count in figures[phase].items()
        if what not in ("runs", "kills mid-work") and count
    }
    assert failures == {}, sampler.refused[:10]
    assert crashes.mid_work >= KILLS, f"only {crashes.mid_work} kills came mid-work; the test proves little"
