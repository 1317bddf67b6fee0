"""Revoked client tokens: a deny-list every replica watches, each entry kept only until the token it
names would have expired anyway.

Client tokens are stateless, so revoking one means remembering its id. The list is a ConfigMap in the
operator namespace that the servers own (the operator never touches it); replicas write it with
optimistic concurrency and watch it, so a revocation reaches every replica within the watch latency.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from kubegate.kube import AlreadyExists, Conflict, KubeClient, NotFound, WatchEvent
from kubegate.kube.paths import path_for

log = logging.getLogger(__name__)
NAME = "kubegate-revoked-client-tokens"
LABEL = "kubegate.dev/revocations"
LABEL_VALUE = "client-tokens"
LABEL_SELECTOR = f"{LABEL}={LABEL_VALUE}"
DATA_KEY = "revoked.json"
# A ConfigMap holds at most 1 MiB; an entry is about 60 bytes.
MAX_ENTRIES = 12_000
_WRITE_ATTEMPTS = 5


class RevocationListFull(Exception):  # noqa: N818 - names the condition
    """Too many unexpired revocations to store; they expire with the tokens they name."""


def parse(data: dict[str, str] | None) -> dict[str, float]:
    """The entries of the ConfigMap's data (token id -> POSIX time it can be forgotten). Pure."""
    try:
        decoded = json.loads((data or {}).get(DATA_KEY) or "{}")
    except (ValueError, RecursionError):
        return {}
    if not isinstance(decoded, dict):
        return {}
    entries = {str(k): _seconds(v) for k, v in decoded.items()}
    return {k: v for k, v in entries.items() if v is not None}


def _seconds(value: object) -> float | None:
    """A number as a POSIX time; None for anything else, an integer beyond a float's range included."""
    if not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def merged(entries: dict[str, float], token_id: str, until: float, now: float) -> dict[str, float]:
    """`entries` plus one revocation, without the entries whose tokens have expired anyway. Pure."""
    kept = {k: v for k, v in entries.items() if v > now}
    kept[token_id] = max(until, kept.get(token_id, 0.0))
    return kept


class Revocations:
    """The deny-list: a reflector sink for reading, `revoke` for writing."""

    def __init__(self, client: KubeClient, namespace: str, *, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._namespace = namespace
        self._clock = clock
        self._entries: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def contains(self, token_id: str) -> bool:
        until = self._entries.get(token_id)
        return until is not None and until > self._clock()

    async def revoke(self, token_id: str, *, until: float) -> None:
        """Deny `token_id` on every replica until `until` (when the token would have expired anyway).

        Raises RevocationListFull, or the API client's errors when the API cannot be written.
        """
        collection = path_for(plural="configmaps", namespace=self._namespace)
        for _ in range(_WRITE_ATTEMPTS):
            try:
                current = await self._client.get(f"{collection}/{NAME}")
            except NotFound:
                current = None
            existing = parse((current or {}).get("data"))
            entries = merged(existing, token_id, until, self._clock())
            if len(entries) > MAX_ENTRIES:
                raise RevocationListFull(
                    f"{len(existing)} client tokens are revoked and not yet expired; no more can be stored "
                    "until some expire (lower the client tokens' lifetime, or revoke the StaticTokens or "
                    "service accounts behind them instead)"
                )
            body: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": NAME,
                    "namespace": self._namespace,
                    "labels": {LABEL: LABEL_VALUE, "app.kubernetes.io/managed-by": "kubegate"},
                },
                "data": {DATA_KEY: json.dumps(entries, sort_keys=True, separators=(",", ":"))},
            }
            try:
                if current is None:
                    await self._client.create(collection, body)
                else:
                    body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                    await self._client.replace(f"{collection}/{NAME}", body)
            except (Conflict, AlreadyExists):
                continue  # another replica wrote first: merge with what it wrote
            self._entries = entries
            return
        raise Conflict(status=409, reason="Conflict", message="the revocation list kept changing; retry")

    # --- reflector sink ---------------------------------------------------------------------------

    async def replace(self, items: list[dict[str, Any]]) -> None:
        found = [i for i in items if i["metadata"]["name"] == NAME]
        self._entries = parse(found[0].get("data")) if found else {}

    def apply(self, event: WatchEvent) -> None:
        if event.object.get("metadata", {}).get("name") != NAME:
            return
        if event.type == "DELETED":
            # Stricter than following the API: a deleted list must not bring revoked tokens back here.
            log.error("the revocation list %s was deleted; this replica keeps denying what it held", NAME)
            return
        self._entries = parse(event.object.get("data"))

    def synced(self, resource_version: str) -> None:
        pass

    def stale(self) -> None:
        pass
