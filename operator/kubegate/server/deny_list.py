"""Writing the client-token deny-list that every replica watches (`state/revocations.py` reads it).

Replicas write the one ConfigMap with optimistic concurrency: on a conflict they read it again and merge,
so no replica's revocation is lost. Entries whose tokens have expired anyway are dropped on each write.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from kubegate.contracts.api_paths import path_for
from kubegate.kube import AlreadyExists, Conflict, KubeClient, NotFound
from kubegate.state import revocations
from kubegate.state.revocations import Revocations

# A ConfigMap holds at most 1 MiB; an entry is about 60 bytes.
MAX_ENTRIES = 12_000
_WRITE_ATTEMPTS = 5


class RevocationListFull(Exception):  # noqa: N818 - names the condition
    """Too many unexpired revocations to store; they expire with the tokens they name."""


def merged(entries: dict[str, float], token_id: str, until: float, now: float) -> dict[str, float]:
    """`entries` plus one revocation, without the entries whose tokens have expired anyway. Pure."""
    kept = {k: v for k, v in entries.items() if v > now}
    kept[token_id] = max(until, kept.get(token_id, 0.0))
    return kept


class DenyListWriter:
    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        revocations: Revocations,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`revocations`: this replica's copy, updated at once after each write of its own."""
        self._client = client
        self._namespace = namespace
        self._revocations = revocations
        self._clock = clock

    async def revoke(self, token_id: str, *, until: float) -> None:
        """Deny `token_id` on every replica until `until` (when the token would have expired anyway).

        Raises RevocationListFull, or the API client's errors when the API cannot be written.
        """
        collection = path_for(plural="configmaps", namespace=self._namespace)
        for _ in range(_WRITE_ATTEMPTS):
            try:
                current = await self._client.get(f"{collection}/{revocations.NAME}")
            except NotFound:
                current = None
            existing = revocations.parse((current or {}).get("data"))
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
                    "name": revocations.NAME,
                    "namespace": self._namespace,
                    "labels": {revocations.LABEL: revocations.LABEL_VALUE, "app.kubernetes.io/managed-by": "kubegate"},
                },
                "data": {revocations.DATA_KEY: json.dumps(entries, sort_keys=True, separators=(",", ":"))},
            }
            try:
                if current is None:
                    await self._client.create(collection, body)
                else:
                    body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                    await self._client.replace(f"{collection}/{revocations.NAME}", body)
            except (Conflict, AlreadyExists):
                continue  # another replica wrote first: merge with what it wrote
            self._revocations.adopt(entries)
            return
        raise Conflict(status=409, reason="Conflict", message="the revocation list kept changing; retry")
