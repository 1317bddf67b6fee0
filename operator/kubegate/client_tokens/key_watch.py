"""The client-token signing keys, as the operator last wrote them: watched, kept when the API goes away.

Holds the private half, so only a process that mints client tokens (the server) watches the Secret; it
hands the public half to `state.public_keys.PublicKeys`, which is all its verifier sees.
"""

from __future__ import annotations

import logging
from typing import Any

from kubegate.client_tokens import keys
from kubegate.kube import WatchEvent
from kubegate.state.public_keys import PublicKeys

log = logging.getLogger(__name__)
LABEL_SELECTOR = f"{keys.LABEL}={keys.LABEL_VALUE}"


class SigningKeys:
    """A reflector sink holding the current key set; None until the operator has created it."""

    def __init__(self, public: PublicKeys | None = None) -> None:
        """`public`: where the public half of each new key set goes (a fresh holder when not given)."""
        self.public = public or PublicKeys()
        self._keyset: keys.KeySet | None = None

    @property
    def keyset(self) -> keys.KeySet | None:
        return self._keyset

    @keyset.setter
    def keyset(self, keyset: keys.KeySet) -> None:
        if keyset is not self._keyset:
            self._keyset = keyset
            self.public.publish(keyset.public())

    def current(self) -> keys.KeySet | None:
        return self.keyset

    async def replace(self, items: list[dict[str, Any]]) -> None:
        found = [i for i in items if i["metadata"]["name"] == keys.SECRET_NAME]
        if found:
            self._load(found[0])

    def apply(self, event: WatchEvent) -> None:
        if event.object.get("metadata", {}).get("name") != keys.SECRET_NAME:
            return
        if event.type == "DELETED":
            # Keep verifying with the last keys: the operator recreates the Secret, and dropping the keys
            # would cut off every client token in circulation.
            log.error("the signing-key Secret was deleted; keeping the last keys until the operator recreates it")
            return
        self._load(event.object)

    def synced(self, resource_version: str) -> None:
        pass

    def stale(self) -> None:
        pass

    def _load(self, secret: dict[str, Any]) -> None:
        try:
            keyset = keys.decode((secret.get("data") or {}).get(keys.DATA_KEY, ""))
        except ValueError as exc:
            log.error("the signing-key Secret is unreadable (%s); keeping the last good keys", exc)
            return
        if self.keyset is None or self.keyset.active().kid != keyset.active().kid:
            log.info("client tokens are signed with key %s (%d published)", keyset.active().kid, len(keyset.keys))
        self.keyset = keyset
