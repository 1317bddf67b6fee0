"""Revoked client tokens: a deny-list every replica watches, each entry kept only until the token it
names would have expired anyway.

Client tokens are stateless, so revoking one means remembering its id. The list is a ConfigMap in the
operator namespace that the servers own (the operator never touches it); replicas write it with
optimistic concurrency (`server/deny_list.py`) and watch it here, so a revocation reaches every replica
within the watch latency.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from kubegate.kube import WatchEvent

log = logging.getLogger(__name__)
NAME = "kubegate-revoked-client-tokens"
LABEL = "kubegate.dev/revocations"
LABEL_VALUE = "client-tokens"
LABEL_SELECTOR = f"{LABEL}={LABEL_VALUE}"
DATA_KEY = "revoked.json"


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


class Revocations:
    """The deny-list as a reflector sink; the server writes it (`server/deny_list.py`)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._entries: dict[str, float] = {}
        self.loaded = False
        """True once the first list arrived (an empty one too: then nothing is revoked)."""

    def __len__(self) -> int:
        return len(self._entries)

    def contains(self, token_id: str) -> bool:
        until = self._entries.get(token_id)
        return until is not None and until > self._clock()

    def adopt(self, entries: dict[str, float]) -> None:
        """The entries this replica just wrote (before its own watch event brings them back)."""
        self._entries = entries

    # --- reflector sink ---------------------------------------------------------------------------

    async def replace(self, items: list[dict[str, Any]]) -> None:
        found = [i for i in items if i["metadata"]["name"] == NAME]
        self._entries = parse(found[0].get("data")) if found else {}
        self.loaded = True

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
