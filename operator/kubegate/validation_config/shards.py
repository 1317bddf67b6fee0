"""How the validation config is split over Secrets and encoded in them. Pure; no I/O.

Every token lands in the shard its `namespace/name` hashes to, so one change rewrites one shard.
Encoding is deterministic (sorted, compact JSON, gzip without a timestamp), so an unchanged shard
produces the same bytes and the operator can skip the write.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import TypeAdapter

from kubegate.validation_config.model import TokenEntry

SHARD_LABEL = "kubegate.dev/validation-config"
SHARD_LABEL_VALUE = "static-tokens"
SHARD_INDEX_ANNOTATION = "kubegate.dev/shard"
DIGEST_ANNOTATION = "kubegate.dev/digest"
ENTRIES_ANNOTATION = "kubegate.dev/entries"
DATA_KEY = "tokens.json.gz"
SECRET_TYPE = "kubegate.dev/validation-config"
# The API server refuses objects over 1.5 MiB (etcd's default request limit); stay far below, base64
# included, so that a full shard is noticed long before a write fails.
MAX_SHARD_BYTES = 768 * 1024

_ENTRIES = TypeAdapter(list[TokenEntry])


class ShardTooLarge(ValueError):  # noqa: N818 - names the condition
    """A shard's encoded data is over MAX_SHARD_BYTES: more shards are needed."""


def shard_of(namespace: str, name: str, shard_count: int) -> int:
    """The shard index of a StaticToken; stable across restarts, processes and Python versions."""
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % shard_count


def shard_secret_name(prefix: str, index: int, shard_count: int) -> str:
    """Names carry the shard count, so a change of count writes a new set beside the old one."""
    return f"{prefix}-{shard_count}-{index:03d}"


@dataclass(frozen=True)
class EncodedShard:
    data: str
    """The base64 text for the Secret's `data` key."""
    digest: str
    """SHA-256 of the entries' canonical JSON; equal digests mean equal content."""
    entries: int


def _canonical(entries: Iterable[TokenEntry]) -> bytes:
    ordered = sorted(entries, key=lambda e: (e.namespace, e.name, e.token_id))
    return b"[" + b",".join(e.canonical_json for e in ordered) + b"]"


def encode_shard(entries: Iterable[TokenEntry]) -> EncodedShard:
    """Encode the entries of one shard; raises ShardTooLarge when they do not fit in one Secret."""
    entries = list(entries)
    raw = _canonical(entries)
    data = base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")
    if len(data) > MAX_SHARD_BYTES:
        raise ShardTooLarge(
            f"a validation-config shard would hold {len(data)} bytes, over the {MAX_SHARD_BYTES} limit: "
            "raise the operator's --config-shards setting"
        )
    return EncodedShard(data=data, digest=hashlib.sha256(raw).hexdigest(), entries=len(entries))


def decode_shard(data: str) -> list[TokenEntry]:
    """Decode a shard's `data` value; raises ValueError when it is not a valid shard."""
    try:
        raw = gzip.decompress(base64.b64decode(data, validate=True))
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"validation-config shard is not base64 gzip data: {exc}") from exc
    return _ENTRIES.validate_json(raw)
