"""The in-memory index: union of sources, de-duplicated by hash; changes and removals take effect."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from kubegate.contracts.token_format import hash_token
from kubegate.state import static_tokens
from kubegate.validation_config.model import TokenEntry
from kubegate.verify import StaticTokenIndex, token_digest

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def entry(token: str, *, name: str = "app", groups: tuple[str, ...] = (), token_id: str | None = None) -> TokenEntry:
    return TokenEntry(
        sha256=hash_token(token),
        token_id=token_id or str(uuid.uuid4()),
        name=name,
        namespace="team",
        groups=groups,
        metadata={"io.kubegate.auth.token.name": name},
        created_at=NOW,
        expires_at=NOW + timedelta(days=1),
    )


def test_lookup_by_digest_and_by_id() -> None:
    index = StaticTokenIndex()
    first = entry("token-1", name="one")
    index.replace_source("shard-0", "v1", [first, entry("token-2", name="two")])

    record = index.lookup(token_digest("token-1"))
    assert record is not None
    assert record.name == "one"
    assert index.by_id(first.token_id) is record
    assert index.lookup(token_digest("token-3")) is None
    assert len(index) == 2
    assert index.sources() == {"shard-0": "v1"}


def test_digest_is_the_sha256_of_the_token() -> None:
    assert token_digest("abc").hex() == hash_token("abc")


def test_replacing_a_source_drops_what_it_no_longer_holds() -> None:
    index = StaticTokenIndex()
    gone = entry("token-1")
    index.replace_source("shard-0", "v1", [gone, entry("token-2")])
    index.replace_source("shard-0", "v2", [entry("token-2")])
    assert index.lookup(token_digest("token-1")) is None
    assert index.by_id(gone.token_id) is None
    assert len(index) == 1


def test_a_token_held_by_two_sources_survives_until_both_drop_it() -> None:
    # The operator writes a new shard set before it deletes the old one.
    index = StaticTokenIndex()
    old = entry("token-1", groups=("old",))
    new = entry("token-1", groups=("new",), token_id=old.token_id)
    index.replace_source("old-set-000", "a", [old])
    index.replace_source("new-set-000", "b", [new])
    index.remove_source("old-set-000")
    record = index.lookup(token_digest("token-1"))
    assert record is not None
    assert record.groups == ("new",)
    index.remove_source("new-set-000")
    assert index.lookup(token_digest("token-1")) is None
    assert len(index) == 0


def test_removing_the_newer_source_falls_back_to_the_other_copy() -> None:
    index = StaticTokenIndex()
    index.replace_source("a", "1", [entry("token-1", groups=("from-a",))])
    index.replace_source("b", "1", [entry("token-1", groups=("from-b",))])
    index.remove_source("b")
    record = index.lookup(token_digest("token-1"))
    assert record is not None
    assert record.groups == ("from-a",)


def test_changed_entry_changes_its_authentication() -> None:
    index = StaticTokenIndex()
    first = entry("token-1", groups=("before",))
    index.replace_source("s", "1", [first])
    record = index.lookup(token_digest("token-1"))
    assert record is not None
    assert index.authentication(record).identity.groups == ("before",)

    index.replace_source("s", "2", [entry("token-1", groups=("after",), token_id=first.token_id)])
    record = index.lookup(token_digest("token-1"))
    assert record is not None
    assert index.authentication(record).identity.groups == ("after",)


def test_groups_that_would_break_a_header_are_dropped() -> None:
    index = StaticTokenIndex()
    index.replace_source("s", "1", [entry("token-1", groups=("ok", "bad\r\nX-Evil: 1", "a,b"))])
    record = index.lookup(token_digest("token-1"))
    assert record is not None
    assert record.groups == ("ok",)


def test_records_are_ordered_by_id_and_follow_changes() -> None:
    index = StaticTokenIndex()
    entries = [entry(f"token-{i}") for i in range(5)]
    index.replace_source("s", "1", entries)
    assert [r.token_id for r in index.records()] == sorted(e.token_id for e in entries)
    index.replace_source("s", "2", entries[:2])
    assert [r.token_id for r in index.records()] == sorted(e.token_id for e in entries[:2])


def test_authentication_has_the_flipt_shape() -> None:
    index = StaticTokenIndex()
    e = entry("token-1", name="ci", groups=("deployers",))
    index.replace_source("s", "1", [e])
    record = index.lookup(token_digest("token-1"))
    assert record is not None
    body = record.authentication().model_dump(mode="json", by_alias=True)
    assert body == {
        "id": e.token_id,
        "method": "METHOD_TOKEN",
        "expiresAt": "2030-01-02T00:00:00Z",
        "createdAt": "2030-01-01T00:00:00Z",
        "updatedAt": "2030-01-01T00:00:00Z",
        "metadata": {"io.kubegate.auth.token.name": "ci"},
        "identity": {"username": "statictoken:team:ci", "uid": e.token_id, "groups": ["deployers"]},
    }


def test_a_token_in_use_keeps_one_authentication_object() -> None:
    index = StaticTokenIndex()
    index.replace_source("s", "1", [entry("token-1")])
    record = index.lookup(token_digest("token-1"))
    assert record is not None
    assert index.authentication(record) is index.authentication(record)


def test_kept_authentications_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(static_tokens, "AUTHENTICATION_CACHE_SIZE", 3)
    index = StaticTokenIndex()
    index.replace_source("s", "1", [entry(f"token-{i}", name=f"app-{i}") for i in range(5)])
    records = [index.lookup(token_digest(f"token-{i}")) for i in range(5)]
    firsts = [index.authentication(r) for r in records if r is not None]
    kept = [r for r in records if r is not None and r.built is not None]
    assert len(kept) <= 3
    # A token let go builds an equal object again.
    assert records[0] is not None
    again = index.authentication(records[0])
    assert again == firsts[0]


# --- provisional entries: tokens this server created, before the operator publishes them ---------------


def test_a_provisional_entry_is_accepted_until_a_source_supersedes_it() -> None:
    index = StaticTokenIndex()
    new = entry("token-1", token_id="11111111-1111-4111-8111-111111111111")
    record = index.add_provisional(new)
    digest = token_digest("token-1")
    assert index.lookup(digest) is record
    assert index.by_id(new.token_id) is record
    assert index.records() == [record]

    index.replace_source("shard-0", "v1", [new])
    assert index.provisional(digest) is None
    published = index.lookup(digest)
    assert published is not None
    assert published is not record
    # Once published, the source alone decides: removing it there removes the token.
    index.replace_source("shard-0", "v2", [])
    assert index.lookup(digest) is None
    assert index.by_id(new.token_id) is None


def test_a_provisional_entry_for_a_hash_already_published_keeps_the_published_record() -> None:
    index = StaticTokenIndex()
    new = entry("token-1")
    index.replace_source("shard-0", "v1", [new])
    published = index.lookup(token_digest("token-1"))
    assert index.add_provisional(new) is published
    assert index.provisional(token_digest("token-1")) is None


def test_dropping_a_provisional_entry_removes_the_token_but_never_a_published_one() -> None:
    index = StaticTokenIndex()
    dropped, kept = entry("token-1"), entry("token-2")
    index.add_provisional(dropped)
    index.replace_source("shard-0", "v1", [kept])
    generation = index.generation
    assert index.drop_provisional(token_digest("token-1"))
    assert index.lookup(token_digest("token-1")) is None
    assert index.by_id(dropped.token_id) is None
    assert index.generation > generation
    assert not index.drop_provisional(token_digest("token-2"))
    assert index.lookup(token_digest("token-2")) is not None


def test_expiring_a_provisional_entry_only_ever_brings_its_end_closer() -> None:
    index = StaticTokenIndex()
    new = entry("token-1")  # expires at NOW + 1 day
    index.add_provisional(new)
    soon = (NOW + timedelta(hours=1)).timestamp()
    assert index.expire_provisional(new.token_id, soon)
    record = index.lookup(token_digest("token-1"))
    assert record is not None
    assert record.expires_at == soon
    assert record.expired(soon)
    assert index.expire_provisional(new.token_id, (NOW + timedelta(days=2)).timestamp())
    assert index.by_id(new.token_id) is record
    assert not index.expire_provisional(str(uuid.uuid4()), soon)
    index.replace_source("shard-0", "v1", [new])
    assert not index.expire_provisional(new.token_id, soon)
