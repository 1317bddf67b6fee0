import base64
import gzip
import os
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubegate.validation_config.model import TokenEntry
from kubegate.validation_config.registry import Registry
from kubegate.validation_config.shards import (
    MAX_SHARD_BYTES,
    ShardTooLarge,
    decode_shard,
    encode_shard,
    shard_of,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def entry(name: str, namespace: str = "ns", token_id: str | None = None, **extra: object) -> TokenEntry:
    return TokenEntry.model_validate(
        {
            "sha256": f"{abs(hash((namespace, name, token_id))):064x}"[-64:],
            "tokenId": token_id or f"id-{name}",
            "name": name,
            "namespace": namespace,
            "createdAt": NOW,
            **extra,
        }
    )


def test_encoding_round_trips_and_never_holds_more_than_the_entries() -> None:
    entries = [entry("a", groups=("g1",), metadata={"k": "v"}, expiresAt=NOW + timedelta(hours=1)), entry("b")]
    encoded = encode_shard(entries)
    assert encoded.entries == 2
    assert sorted(decode_shard(encoded.data), key=lambda e: e.name) == entries


def test_encoding_is_deterministic_whatever_the_order() -> None:
    a, b, c = entry("a"), entry("b"), entry("c", namespace="other")
    first, second = encode_shard([a, b, c]), encode_shard([c, a, b])
    assert first.data == second.data
    assert first.digest == second.digest
    assert encode_shard([a, b]).digest != first.digest


def test_a_shard_that_does_not_fit_is_refused() -> None:
    # Random values: gzip would squeeze repeated text into nothing.
    big = [entry(f"t{i}", metadata={f"k{j}": os.urandom(100).hex() for j in range(8)}) for i in range(1000)]
    with pytest.raises(ShardTooLarge, match="config-shards"):
        encode_shard(big)
    assert MAX_SHARD_BYTES < 1024 * 1024


@pytest.mark.parametrize(
    "data", ["", "not base64!", base64.b64encode(b"not gzip").decode(), base64.b64encode(gzip.compress(b"{}")).decode()]
)
def test_broken_shards_raise_value_error(data: str) -> None:
    with pytest.raises(ValueError, match=r"shard|validation error"):
        decode_shard(data)


@given(st.text(min_size=1, max_size=63), st.text(min_size=1, max_size=63), st.integers(min_value=1, max_value=1024))
def test_shard_of_is_stable_and_in_range(namespace: str, name: str, count: int) -> None:
    index = shard_of(namespace, name, count)
    assert 0 <= index < count
    assert shard_of(namespace, name, count) == index


def test_fifty_thousand_typical_tokens_fit_in_the_default_shards() -> None:
    count = 64
    shards: dict[int, list[TokenEntry]] = {}
    for i in range(50_000):
        e = entry(f"token-{i}", namespace=f"team-{i % 50}", groups=("deployers",), metadata={"team": "payments"})
        shards.setdefault(shard_of(e.namespace, e.name, count), []).append(e)
    largest = max(len(encode_shard(v).data) for v in shards.values())
    assert largest < MAX_SHARD_BYTES / 2, largest


def test_registry_marks_only_the_changed_shard_dirty() -> None:
    registry = Registry(shard_count=16)
    key = ("ns", "a")
    assert registry.set(key, [entry("a")])
    assert registry.dirty == {registry.shard(key)}
    registry.dirty.clear()
    assert not registry.set(key, [entry("a")])
    assert registry.dirty == set()
    generation = registry.generation(registry.shard(key))
    assert registry.remove(key)
    assert registry.generation(registry.shard(key)) == generation + 1
    assert registry.shard_entries(registry.shard(key)) == []


def test_loading_a_shard_keeps_what_this_process_reconciled() -> None:
    registry = Registry(shard_count=1)
    mine, theirs, gone = entry("mine", token_id="new"), entry("theirs"), entry("gone")
    registry.set(("ns", "mine"), [mine])
    registry.set(("ns", "gone"), [gone], touch=False)
    registry.load_shard(0, [entry("mine", token_id="old"), theirs])
    assert registry.get(("ns", "mine")) == (mine,)
    assert registry.get(("ns", "theirs")) == (theirs,)
    assert registry.get(("ns", "gone")) == ()
