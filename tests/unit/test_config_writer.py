"""The validation-config writer against an in-memory API: which Secrets it writes, when, and what it does
when another writer got there first."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from fake_kube import FakeKube

from kubegate.contracts.api_paths import path_for
from kubegate.contracts.token_format import hash_token
from kubegate.kube import Conflict
from kubegate.operator.config_writer import NAME_PREFIX, ConfigWriter
from kubegate.validation_config.model import TokenEntry
from kubegate.validation_config.registry import Key, Registry
from kubegate.validation_config.shards import (
    DATA_KEY,
    ENTRIES_ANNOTATION,
    SECRET_TYPE,
    SHARD_INDEX_ANNOTATION,
    SHARD_LABEL,
    SHARD_LABEL_VALUE,
    decode_shard,
    encode_shard,
    shard_of,
    shard_secret_name,
)

OPS = "kubegate-system"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SECRETS = path_for(plural="secrets", namespace=OPS)


def _entry(key: Key, value: str = "") -> TokenEntry:
    namespace, name = key
    return TokenEntry(
        sha256=hash_token(f"{namespace}/{name}/{value}"),
        token_id=f"id-{name}-{value}",
        name=name,
        namespace=namespace,
        created_at=T0,
    )


def _keys_in_one_shard(count: int, shards: int) -> list[Key]:
    """`count` keys that hash to the same shard."""
    keys = ((f"ns{i % 3}", f"t{i}") for i in itertools.count())
    first = next(keys)
    return [first, *itertools.islice((k for k in keys if shard_of(*k, shards) == shard_of(*first, shards)), count - 1)]


def _shards(kube: FakeKube) -> dict[str, dict[str, Any]]:
    """name -> Secret, of the validation config Secrets."""
    return {
        o["metadata"]["name"]: o
        for p, o in kube.objects.items()
        if p.startswith(SECRETS + "/") and (o["metadata"].get("labels") or {}).get(SHARD_LABEL) == SHARD_LABEL_VALUE
    }


def _published(kube: FakeKube) -> set[str]:
    return {e.sha256 for s in _shards(kube).values() for e in decode_shard(s["data"][DATA_KEY])}


def _writer(kube: FakeKube, shards: int, live: Iterable[Key] | None = None) -> ConfigWriter:
    async def keys() -> set[Key]:
        return set(live or ())

    return ConfigWriter(client=kube, namespace=OPS, registry=Registry(shards), write_delay=0, list_token_keys=keys)


@asynccontextmanager
async def started(writer: ConfigWriter) -> AsyncIterator[ConfigWriter]:
    await writer.start()
    try:
        yield writer
    finally:
        await writer.stop()


async def test_each_entry_lands_in_the_shard_its_key_hashes_to() -> None:
    kube = FakeKube()
    writer = _writer(kube, 4)
    keys = [(f"ns{i % 2}", f"t{i}") for i in range(12)]
    for key in keys:
        writer.registry.set(key, [_entry(key)])
    await writer.flush()

    shards = _shards(kube)
    used = {shard_of(*k, 4) for k in keys}
    assert set(shards) == {shard_secret_name(NAME_PREFIX, i, 4) for i in used}, "an empty shard was written"
    for name, secret in shards.items():
        index = int(secret["metadata"]["annotations"][SHARD_INDEX_ANNOTATION].split("/")[0])
        assert secret["metadata"]["annotations"][SHARD_INDEX_ANNOTATION] == f"{index}/4"
        assert name == shard_secret_name(NAME_PREFIX, index, 4)
        assert secret["type"] == SECRET_TYPE
        entries = decode_shard(secret["data"][DATA_KEY])
        assert {shard_of(e.namespace, e.name, 4) for e in entries} == {index}
        assert secret["metadata"]["annotations"][ENTRIES_ANNOTATION] == str(len(entries))
    assert _published(kube) == {_entry(k).sha256 for k in keys}


async def test_only_a_shard_whose_content_changed_is_written() -> None:
    kube = FakeKube()
    writer = _writer(kube, 4)
    keys = [("ns", f"t{i}") for i in range(8)]
    for key in keys:
        writer.registry.set(key, [_entry(key)])
    await writer.flush()
    versions = {n: s["metadata"]["resourceVersion"] for n, s in _shards(kube).items()}
    writes = kube.writes

    writer.registry.set(keys[0], [_entry(keys[0], "rotated")])
    await writer.flush()
    assert kube.writes == writes + 1
    changed = {n for n, s in _shards(kube).items() if s["metadata"]["resourceVersion"] != versions[n]}
    assert changed == {shard_secret_name(NAME_PREFIX, shard_of(*keys[0], 4), 4)}

    # The same content again: marked dirty, but nothing to write.
    writer.registry.set(keys[0], [])
    writer.registry.set(keys[0], [_entry(keys[0], "rotated")])
    await writer.flush()
    assert kube.writes == writes + 1


async def test_a_write_is_conditioned_on_the_version_read_and_a_conflict_keeps_the_other_writers_entries() -> None:
    kube = FakeKube()
    mine, theirs = _keys_in_one_shard(2, shards=2)
    writer = _writer(kube, 2)
    writer.registry.set(mine, [_entry(mine)])
    await writer.flush()
    (name,) = _shards(kube)

    # Another replica (a leader hand-over) adds its token to the same shard after we read it.
    other = kube.objects[f"{SECRETS}/{name}"]
    encoded = encode_shard([_entry(mine), _entry(theirs)])
    other["data"][DATA_KEY] = encoded.data
    await kube.replace(f"{SECRETS}/{name}", other)

    writer.registry.set(mine, [_entry(mine, "rotated")])
    with pytest.raises(Conflict):
        await writer.flush()
    assert _published(kube) == {_entry(mine).sha256, _entry(theirs).sha256}, "the other writer's content was lost"

    await writer.flush()
    assert _published(kube) == {_entry(mine, "rotated").sha256, _entry(theirs).sha256}


async def test_removing_a_token_unpublishes_its_hash_and_an_emptied_shard_goes() -> None:
    kube = FakeKube()
    first, second = _keys_in_one_shard(2, shards=4)
    writer = _writer(kube, 4)
    writer.registry.set(first, [_entry(first), _entry(first, "previous")])
    writer.registry.set(second, [_entry(second)])
    await writer.flush()

    writer.registry.remove(first)
    await writer.flush()
    assert _published(kube) == {_entry(second).sha256}

    writer.registry.remove(second)
    await writer.flush()
    assert _shards(kube) == {}


async def test_start_drops_the_tokens_of_static_tokens_deleted_while_no_operator_ran() -> None:
    kube = FakeKube()
    kept, deleted = ("apps", "kept"), ("apps", "deleted")
    before = _writer(kube, 4)
    before.registry.set(kept, [_entry(kept)])
    before.registry.set(deleted, [_entry(deleted)])
    await before.flush()

    async with started(_writer(kube, 4, live=[kept])) as writer:
        assert _published(kube) == {_entry(kept).sha256}
        assert writer.registry.get(kept) == (_entry(kept),)


async def test_a_new_shard_count_writes_a_new_set_and_then_removes_the_old_one() -> None:
    kube = FakeKube()
    keys = [("ns", f"t{i}") for i in range(10)]
    before = _writer(kube, 2)
    for key in keys:
        before.registry.set(key, [_entry(key)])
    await before.flush()

    async with started(_writer(kube, 8, live=keys)):
        names = set(_shards(kube))
        assert names
        assert all(n.startswith(f"{NAME_PREFIX}-8-") for n in names)
        assert _published(kube) == {_entry(k).sha256 for k in keys}


async def test_a_caller_waits_until_its_change_is_written() -> None:
    kube = FakeKube()
    key = ("apps", "ci")
    async with started(_writer(kube, 4)) as writer:
        writer.registry.set(key, [_entry(key)])
        writer.changed()
        assert await writer.wait_written(key, timeout=2.0)
        assert _published(kube) == {_entry(key).sha256}
