"""The reconciler against a fake API that dies after the Nth write, for every N: a crash between any two
writes leaves a state the next run finishes, and no moment in between shows a regression.

At every write, as any server or consumer could observe it: a Ready token's Secret value is published; a
value that was ever in the Secret stays published while it is the current one or within its overlap; the
Secret never holds a second new value for one creation or rotation request.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fake_kube import Crash, FakeKube

from kubegate.contracts.api_paths import path_for
from kubegate.contracts.token_format import hash_token
from kubegate.contracts.token_secret import HANDLED_ROTATE_ANNOTATION
from kubegate.operator.config_writer import ConfigWriter
from kubegate.operator.events import EventPoster
from kubegate.operator.statictoken import TokenReconciler
from kubegate.operator.status import Retry
from kubegate.operator.token_plan import ROTATE_ANNOTATION
from kubegate.resources.statictoken import StaticToken
from kubegate.settings import OperatorSettings
from kubegate.validation_config.model import TokenEntry
from kubegate.validation_config.registry import Registry
from kubegate.validation_config.shards import DATA_KEY, SHARD_LABEL, SHARD_LABEL_VALUE, decode_shard

NS, OPS = "apps", "kubegate-system"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SHARDS = 2
OVERLAP = timedelta(hours=1)
# Enough attempts for kopf's retries to finish any reconcile that a fault interrupted.
ATTEMPTS = 20


def _path(name: str) -> str:
    return StaticToken.path(namespace=NS, name=name)


def _secret_path(name: str) -> str:
    return path_for(plural="secrets", namespace=NS, name=name)


class World:
    """What servers and consumers see of a FakeKube, checked after every write."""

    def __init__(self, kube: FakeKube, names: list[str]) -> None:
        self.kube = kube
        self.names = names
        self.values: dict[str, list[str]] = {n: [] for n in names}
        """Every value each token's Secret held, in order, each once."""
        self.deleted: set[str] = set()
        self.violations: list[str] = []
        self.faulty_from = 0
        self.brought = False
        """The Secrets are the user's (spec.secretRef), written before the operator runs."""
        """The number of writes before the part of the scenario that faults may interrupt."""
        kube.after_write.append(self.check)

    def published(self) -> dict[str, TokenEntry]:
        """sha256 -> entry, of every published entry."""
        shards = [
            o
            for p, o in self.kube.objects.items()
            if p.startswith(path_for(plural="secrets", namespace=OPS) + "/")
            and (o["metadata"].get("labels") or {}).get(SHARD_LABEL) == SHARD_LABEL_VALUE
        ]
        return {e.sha256: e for s in shards for e in decode_shard(s["data"][DATA_KEY])}

    def secret_value(self, name: str) -> str | None:
        secret = self.kube.objects.get(_secret_path(name))
        return None if secret is None else base64.b64decode(secret["data"]["token"]).decode()

    def ready(self, name: str) -> bool:
        obj = self.kube.objects.get(_path(name)) or {}
        conditions = (obj.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def check(self) -> None:
        """Record what is wrong now (raising here would only kill the writer task that made the write)."""
        published = self.published()
        at = f"after write {self.kube.writes}"
        for name in self.names:
            value = self.secret_value(name)
            if value is None:
                continue
            if not self.values[name] or self.values[name][-1] != value:
                if value in self.values[name]:
                    self.violations.append(f"{name}: an old value came back {at}")
                self.values[name].append(value)
            if name in self.deleted:
                continue
            # Whoever reads a Secret the operator wrote, Ready or not yet, holds a value the servers accept; a
            # brought Secret exists first, and is usable once Ready.
            if hash_token(value) not in published and (self.ready(name) or not self.brought):
                ready = "Ready, but " if self.ready(name) else ""
                self.violations.append(f"{name}: {ready}the Secret's value is not published {at}")
            if any(hash_token(held) not in published for held in self.values[name][:-1]):
                self.violations.append(f"{name}: the value before the rotation was dropped within the overlap {at}")


def _token(name: str, **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubegate.dev/v1alpha1",
        "kind": "StaticToken",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1, "annotations": annotations},
        "spec": {"groups": ["g"], "rotation": {"every": "720h", "overlap": "1h"}},
    }


async def _run_operator(
    kube: FakeKube, names: list[str], *, now: datetime, forget: Sequence[str] = (), attempts: int = ATTEMPTS
) -> None:
    """One operator process: start, reconcile each token (retrying as kopf does), forget deleted ones.

    Returns when done or when the process dies (Crash)."""

    async def keys() -> set[tuple[str, str]]:
        items, _ = await kube.list_all(StaticToken.path(namespace=NS))
        return {(NS, i["metadata"]["name"]) for i in items}

    writer = ConfigWriter(client=kube, namespace=OPS, registry=Registry(SHARDS), write_delay=0, list_token_keys=keys)
    reconciler = TokenReconciler(
        client=kube,
        settings=OperatorSettings(operator_namespace=OPS, config_shards=SHARDS),
        writer=writer,
        events=EventPoster(kube),
        clock=lambda: now,
        config_wait=0.2,
    )
    try:
        await writer.start()
        for name in names:
            for _ in range(attempts):
                with contextlib.suppress(Retry):
                    await reconciler.reconcile(NS, name)
                    break
            else:
                raise AssertionError(f"{name} not reconciled in {attempts} attempts")
        for name in forget:
            for _ in range(attempts):
                if await reconciler.forget(NS, name, timeout=0.2):
                    break
            else:
                raise AssertionError(f"{name} not forgotten in {attempts} attempts")
    except Crash:
        pass
    finally:
        with contextlib.suppress(Crash):
            await writer.stop()


async def _writes_of(scenario: Any) -> range:
    """The writes of a scenario's faulty part, numbered from the start, in a run without faults."""
    kube = FakeKube()
    world = await scenario(kube, budget=None)
    return range(world.faulty_from + 1, kube.writes + 1)


NAMES = ["a", "b", "c"]


async def _create(kube: FakeKube, *, budget: int | None) -> World:
    world = World(kube, NAMES)
    for name in NAMES:
        kube.objects[_path(name)] = _token(name)
    kube.write_budget = None if budget is None else budget
    await _run_operator(kube, NAMES, now=T0)
    return world


async def _rotate(kube: FakeKube, *, budget: int | None) -> World:
    world = await _create(kube, budget=None)
    for name in NAMES:
        kube.objects[_path(name)]["metadata"]["annotations"][ROTATE_ANNOTATION] = "once"
    world.faulty_from = kube.writes
    kube.write_budget = None if budget is None else kube.writes + budget
    await _run_operator(kube, NAMES, now=T0 + timedelta(minutes=5))
    return world


async def _bring(kube: FakeKube, *, budget: int | None) -> World:
    """Tokens brought in Secrets of their own (spec.secretRef): a crash must not give one value two ids."""
    world = World(kube, NAMES)
    world.brought = True
    for name in NAMES:
        token = _token(name)
        token["spec"] = {"secretRef": {"name": name}}
        kube.objects[_path(name)] = token
        value = base64.b64encode(f"brought-token-of-{name}".encode()).decode()
        kube.objects[_secret_path(name)] = {"metadata": {"name": name, "namespace": NS}, "data": {"token": value}}
    world.check()
    kube.write_budget = budget
    await _run_operator(kube, NAMES, now=T0)
    return world


async def _delete(kube: FakeKube, *, budget: int | None) -> World:
    world = await _create(kube, budget=None)
    world.deleted.add("b")
    kube.objects[_path("b")]["metadata"]["deletionTimestamp"] = "2026-01-01T00:05:00Z"
    world.faulty_from = kube.writes
    kube.write_budget = None if budget is None else kube.writes + budget
    await _run_operator(kube, NAMES, now=T0 + timedelta(minutes=5), forget=["b"])
    return world


def _assert_finished(world: World, *, rotated: bool) -> None:
    assert world.violations == []
    kube = world.kube
    published = world.published()
    for name in NAMES:
        if name in world.deleted:
            continue
        obj = kube.objects[_path(name)]
        value = world.secret_value(name)
        assert value is not None
        assert world.ready(name), name
        assert len(world.values[name]) == (2 if rotated else 1), f"{name}: {len(world.values[name])} values"
        status = obj["status"]
        secret = kube.objects[_secret_path(name)]
        # One token id for one value, wherever it shows: status, config and (for generated tokens) Secret.
        assert published[hash_token(value)].token_id == status["tokenId"]
        if "tokenId" in secret["data"]:
            assert base64.b64decode(secret["data"]["tokenId"]).decode() == status["tokenId"]
        if rotated:
            first = world.values[name][0]
            # A restart may rotate later (when the crash came before the Secret write), never cut it short.
            until = published[hash_token(first)].expires_at
            assert until is not None
            assert until >= T0 + timedelta(minutes=5) + OVERLAP, "overlap cut short"
            assert status["handledRotateRequest"] == "once"
            assert secret["metadata"]["annotations"][HANDLED_ROTATE_ANNOTATION] == "once"
    for name in world.deleted:
        for value in world.values[name]:
            assert hash_token(value) not in published, f"deleted {name} still published"
    # Orphans (hashes published for a value that a crash kept from its Secret) do not outlive the restart.
    live = {hash_token(v) for n in NAMES if n not in world.deleted for v in world.values[n]}
    assert set(published) <= live


SCENARIOS = {
    "create": (_create, False),
    "rotate": (_rotate, True),
    "delete": (_delete, False),
    "bring": (_bring, False),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_a_crash_after_any_write_is_finished_by_the_next_run(scenario: str) -> None:
    run, rotated = SCENARIOS[scenario]
    writes = await _writes_of(run)
    assert writes, "the scenario writes nothing; the test proves nothing"
    for budget in range(len(writes)):
        kube = FakeKube()
        world = await run(kube, budget=budget)
        assert kube.dead, f"no crash at write {budget}"
        kube.restart()
        await _run_operator(kube, NAMES, now=T0 + timedelta(minutes=6), forget=sorted(world.deleted))
        _assert_finished(world, rotated=rotated)


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_a_lost_reply_to_any_write_is_recovered_in_the_same_run(scenario: str) -> None:
    run, rotated = SCENARIOS[scenario]
    for lost in await _writes_of(run):
        kube = FakeKube()
        kube.lose_reply_to = lost
        world = await run(kube, budget=None)
        _assert_finished(world, rotated=rotated)


async def test_a_version_conflict_is_retried_at_once_on_the_fresh_object() -> None:
    kube = FakeKube()
    world = await _create(kube, budget=None)
    kube.objects[_path("a")]["metadata"]["annotations"][ROTATE_ANNOTATION] = "once"
    kube.conflict_on = lambda path: path == _secret_path("a")
    await _run_operator(kube, ["a"], now=T0 + timedelta(minutes=5), attempts=1)
    assert kube.conflict_on is None, "no conflict was injected"
    assert len(world.values["a"]) == 2
    assert kube.objects[_path("a")]["status"]["handledRotateRequest"] == "once"
