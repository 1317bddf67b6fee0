"""The in-memory index of valid static tokens, keyed by the SHA-256 of the token. Pure; no I/O.

It holds hashes only, never a token. Its content comes from the validation-config Secrets ("sources"):
several may hold the same hash for a short while (the operator writes a new set of shards before it
deletes the old one), so the index is their union, de-duplicated by hash.

A token this server created through the API is held as a provisional entry from the moment its StaticToken
exists until a source carries its hash (which then supersedes it), so that it works on this replica at once.

Why a lookup by hash is safe against timing attacks: the dictionary compares the SHA-256 digest of the
presented token with stored digests. How long that takes can at most reveal how the digest of a guess
relates to stored digests, and a digest prefix brings an attacker no closer to a token that hashes to
it (SHA-256 is preimage resistant). No stored secret is ever compared with the presented one directly.

Records are small slotted objects with interned names, so 50,000 tokens fit in little memory.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kubegate.contracts.authentication import Authentication, Identity, Method
from kubegate.validation_config.model import TokenEntry

log = logging.getLogger(__name__)

PROVISIONAL = "(provisional)"
"""The source name of provisional entries in log lines; no Secret can have this name."""
AUTHENTICATION_CACHE_SIZE = 16_384
"""Authentications kept ready by default for the tokens in use: about 1.5 KiB each with the answers surfaces
derive from them (forward-auth headers, TokenReview status); building one again takes about 8 µs, a third of
a forward-auth answer. The server's `--authentication-cache-size` sets it."""
# A group name must fit in one comma-separated header value (forward auth) without changing meaning.
_BAD_GROUP = re.compile(r"[\x00-\x1f\x7f,]")


@dataclass(slots=True, frozen=True, eq=False)
class StaticTokenRecord:
    """One valid static token, without the token."""

    token_id: str
    name: str
    """Name of the StaticToken."""
    namespace: str
    """Namespace of the StaticToken."""
    groups: tuple[str, ...]
    metadata: Mapping[str, str]
    created_at: float
    """POSIX seconds."""
    expires_at: float | None
    """POSIX seconds; None: never."""
    built: Authentication | None = field(default=None, init=False, repr=False)
    """`authentication()`, once the index built it for a token in use (see `StaticTokenIndex.authentication`)."""

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    @property
    def username(self) -> str:
        return f"statictoken:{self.namespace}:{self.name}"

    def authentication(self) -> Authentication:
        created = datetime.fromtimestamp(self.created_at, UTC)
        return Authentication(
            id=self.token_id,
            method=Method.TOKEN,
            expires_at=None if self.expires_at is None else datetime.fromtimestamp(self.expires_at, UTC),
            created_at=created,
            # A static token never changes after it is issued: rotation issues a new one with a new id.
            updated_at=created,
            metadata=dict(self.metadata),
            identity=Identity(username=self.username, uid=self.token_id, groups=self.groups),
        )


_EMPTY: Mapping[str, str] = {}


def _shared_metadata(metadata: Mapping[str, str]) -> Mapping[str, str]:
    # Keys repeat across tokens (io.kubegate.auth.token.name...): interned, each is stored once.
    return {sys.intern(k): v for k, v in metadata.items()} if metadata else _EMPTY


class StaticTokenIndex:
    """Valid static tokens by digest and by token id, merged from named sources."""

    def __init__(self, *, authentication_cache_size: int | None = None) -> None:
        """`authentication_cache_size`: records that keep their Authentication (AUTHENTICATION_CACHE_SIZE
        when None)."""
        self._cache_size = authentication_cache_size
        self._by_digest: dict[bytes, StaticTokenRecord] = {}
        self._by_id: dict[str, bytes] = {}
        self._sources: dict[str, dict[bytes, StaticTokenRecord]] = {}
        self._versions: dict[str, str] = {}
        self._sorted: list[StaticTokenRecord] | None = None
        self._built: list[StaticTokenRecord] = []
        self._provisional: dict[bytes, StaticTokenRecord] = {}
        self.generation = 0
        """Counts changes; equal generations mean equal content."""

    def __len__(self) -> int:
        return len(self._by_digest)

    def lookup(self, digest: bytes) -> StaticTokenRecord | None:
        return self._by_digest.get(digest)

    def authentication(self, record: StaticTokenRecord) -> Authentication:
        """`record.authentication()`, built once for each record while it is in use, and kept on the record.

        Verification then hands out the same object for a token, and surfaces keep what they derive from
        it there (`Authentication.derived`). A changed token comes as a new record, so a stale one is never
        served. At most the cache size of records keep theirs; past that all are let go at once and
        the tokens in use build theirs again.
        """
        authentication = record.built
        if authentication is None:
            authentication = record.authentication()
            size = AUTHENTICATION_CACHE_SIZE if self._cache_size is None else self._cache_size
            if len(self._built) >= size:
                for built in self._built:
                    object.__setattr__(built, "built", None)  # the record is frozen; this slot is a cache
                self._built.clear()
            object.__setattr__(record, "built", authentication)
            self._built.append(record)
        return authentication

    def by_id(self, token_id: str) -> StaticTokenRecord | None:
        digest = self._by_id.get(token_id)
        return None if digest is None else self._by_digest.get(digest)

    def digest_of(self, token_id: str) -> bytes | None:
        return self._by_id.get(token_id)

    def sources(self) -> dict[str, str]:
        """Every source's name and the version (content digest) it was last loaded at."""
        return dict(self._versions)

    def source_version(self, source: str) -> str | None:
        return self._versions.get(source)

    def records(self) -> list[StaticTokenRecord]:
        """Every record, ordered by token id (expired ones included: callers filter with their clock)."""
        if self._sorted is None:
            self._sorted = sorted(self._by_digest.values(), key=lambda r: r.token_id)
        return self._sorted

    def replace_source(self, source: str, version: str, entries: Iterable[TokenEntry]) -> None:
        """Make `source` hold exactly `entries`, loaded at `version`. A provisional entry whose hash it carries
        is superseded by the source's."""
        new: dict[bytes, StaticTokenRecord] = {}
        for entry in entries:
            new[bytes.fromhex(entry.sha256)] = self._record(entry, source)
        old = self._sources.get(source, {})
        self._sources[source] = new
        self._versions[source] = version
        for digest, record in new.items():
            self._put(digest, record)
        for digest in old.keys() - new.keys():
            self._drop(digest, source)
        # Few entries are provisional at once (those created in the last seconds): walk them, not `new`.
        for digest in [d for d in self._provisional if d in new]:
            del self._provisional[digest]
        self._changed()

    def add_provisional(self, entry: TokenEntry) -> StaticTokenRecord:
        """Accept a token before any source carries it, until `drop_provisional` or a source supersedes it.

        A source that holds the hash already wins: the entry is not added, and the source's record returned.
        """
        digest = bytes.fromhex(entry.sha256)
        published = self._published(digest)
        if published is not None:
            return published
        record = self._record(entry, PROVISIONAL)
        self._provisional[digest] = record
        self._put(digest, record)
        self._changed()
        return record

    def drop_provisional(self, digest: bytes) -> bool:
        """Forget a provisional entry (a source's record of the same hash stays); True if there was one."""
        record = self._provisional.pop(digest, None)
        if record is None:
            return False
        if self._by_digest.get(digest) is record:
            self._by_digest.pop(digest)
            self._forget_id(record.token_id, digest)
        self._changed()
        return True

    def provisional(self, digest: bytes) -> StaticTokenRecord | None:
        """The provisional entry of this hash, while no source carries it."""
        return self._provisional.get(digest)

    def expire_provisional(self, token_id: str, at: float) -> bool:
        """Make the provisional entry of `token_id` expire at `at` (POSIX seconds) if it expires later or
        never; True if there was one."""
        digest = self._by_id.get(token_id)
        record = None if digest is None else self._provisional.get(digest)
        if digest is None or record is None:
            return False
        if record.expires_at is None or record.expires_at > at:
            shortened = dataclasses.replace(record, expires_at=at)
            self._provisional[digest] = shortened
            self._put(digest, shortened)
            self._changed()
        return True

    def _published(self, digest: bytes) -> StaticTokenRecord | None:
        for records in self._sources.values():
            record = records.get(digest)
            if record is not None:
                return record
        return None

    def remove_source(self, source: str) -> None:
        old = self._sources.pop(source, None)
        self._versions.pop(source, None)
        if old is None:
            return
        for digest in old:
            self._drop(digest, source)
        self._changed()

    def _put(self, digest: bytes, record: StaticTokenRecord) -> None:
        previous = self._by_digest.get(digest)
        if previous is not None and previous.token_id != record.token_id:
            self._forget_id(previous.token_id, digest)
        self._by_digest[digest] = record
        self._by_id[record.token_id] = digest

    def _drop(self, digest: bytes, source: str) -> None:
        # Another source may still hold the same token: it stays valid, with that source's record.
        for other, records in self._sources.items():
            if other != source and digest in records:
                self._put(digest, records[digest])
                return
        record = self._by_digest.pop(digest, None)
        if record is not None:
            self._forget_id(record.token_id, digest)

    def _forget_id(self, token_id: str, digest: bytes) -> None:
        if self._by_id.get(token_id) == digest:
            del self._by_id[token_id]

    def _changed(self) -> None:
        self._sorted = None
        self.generation += 1

    def _record(self, entry: TokenEntry, source: str) -> StaticTokenRecord:
        groups = [g for g in entry.groups if not _BAD_GROUP.search(g)]
        if len(groups) != len(entry.groups):
            log.warning(
                "validation config %s: token %s has group names with control characters or commas; "
                "they are ignored (fix spec.groups of StaticToken %s/%s)",
                source,
                entry.token_id,
                entry.namespace,
                entry.name,
            )
        return StaticTokenRecord(
            token_id=entry.token_id,
            name=entry.name,
            namespace=sys.intern(entry.namespace),
            groups=tuple(sys.intern(g) for g in groups),
            metadata=_shared_metadata(entry.metadata),
            created_at=entry.created_at.timestamp(),
            expires_at=None if entry.expires_at is None else entry.expires_at.timestamp(),
        )
