"""The OIDC providers as the operator last published them: one Secret per provider, watched, kept in memory.

The verification engine asks `iss in providers.issuers` for every JWT before anything else, so that
lookup is a plain set membership on a live view. A verifier that caches what it derived from a
provider's config (parsed keys, compiled patterns) notices a change by the config object: it is the
same object while the published Secret's content is unchanged, and a new one after any change. The
`version` counter and `subscribe` callbacks say the same for the whole set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, KeysView
from dataclasses import dataclass
from typing import Any

from kubegate.contracts.api_paths import path_for
from kubegate.kube import WatchEvent
from kubegate.kube.reflector import Reflector, Source
from kubegate.validation_config.providers import DATA_KEY, LABEL_SELECTOR, ProviderConfig, decode, secret_name

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Published:
    data: str
    """The Secret's data value as read: the same value is not decoded again, and keeps its config object."""
    config: ProviderConfig
    created: str
    """The Secret's creationTimestamp (RFC 3339, so it sorts as text): the older Secret wins an issuer."""


class Providers:
    """A reflector sink of the published provider configs, by provider name and by issuer."""

    def __init__(self) -> None:
        self._published: dict[str, _Published] = {}
        """By Secret name."""
        self._by_name: dict[str, ProviderConfig] = {}
        self._by_issuer: dict[str, ProviderConfig] = {}
        self._duplicates: frozenset[tuple[str, str]] = frozenset()
        self._subscribers: list[Callable[[frozenset[str]], None]] = []
        self.loaded = False
        """True once the first list arrived (an empty one too: then no issuer is trusted)."""
        self.version = 0
        """Counts the changes to the set of configs: a different value means some provider changed."""

    @property
    def issuers(self) -> KeysView[str]:
        """The trusted issuers; a live view (always the same object) that follows every change."""
        return self._by_issuer.keys()

    def by_issuer(self, issuer: str) -> ProviderConfig | None:
        return self._by_issuer.get(issuer)

    def by_name(self, name: str) -> ProviderConfig | None:
        return self._by_name.get(name)

    def all(self) -> tuple[ProviderConfig, ...]:
        """Every provider, by name."""
        return tuple(self._by_name[name] for name in sorted(self._by_name))

    def __len__(self) -> int:
        return len(self._by_name)

    def subscribe(self, callback: Callable[[frozenset[str]], None]) -> None:
        """Call `callback` with the names of the providers that appeared, changed or went, after every change."""
        self._subscribers.append(callback)

    # --- reflector sink ---------------------------------------------------------------------------

    async def replace(self, items: list[dict[str, Any]]) -> None:
        previous, self._published = self._published, {}
        for secret in items:
            name = (secret.get("metadata") or {}).get("name")
            if isinstance(name, str):
                self._load(secret, previous.get(name))
        self.loaded = True
        self._rebuild()

    def apply(self, event: WatchEvent) -> None:
        name = (event.object.get("metadata") or {}).get("name")
        if not isinstance(name, str):
            return
        if event.type == "DELETED":
            if self._published.pop(name, None) is not None:
                log.info("OIDC provider config %s was deleted; its issuer is no longer trusted", name)
        else:
            self._load(event.object, self._published.get(name))
        self._rebuild()

    def synced(self, resource_version: str) -> None:
        pass

    def stale(self) -> None:
        pass

    # --- internals ----------------------------------------------------------------------------------

    def _load(self, secret: dict[str, Any], known: _Published | None) -> None:
        """Take one Secret in; an unreadable one keeps what was last read from it (nothing, when it is new)."""
        meta = secret.get("metadata") or {}
        name = str(meta.get("name"))
        data = (secret.get("data") or {}).get(DATA_KEY)
        if known is not None and known.data == data:
            self._published[name] = known
            return
        try:
            if not isinstance(data, str):
                raise ValueError(f"the Secret has no {DATA_KEY} key")
            config = decode(data)  # its errors never quote the content, which holds the client secret
            if secret_name(config.name) != name:
                raise ValueError(
                    f"it names provider {config.name!r}, whose config belongs in {secret_name(config.name)}"
                )
        except ValueError as exc:
            kept = "keeping the config last read from it" if known is not None else "it is ignored"
            log.error("OIDC provider config Secret %s is unreadable (%s); %s", name, exc, kept)
            if known is not None:
                self._published[name] = known
            return
        self._published[name] = _Published(data=data, config=config, created=str(meta.get("creationTimestamp") or ""))

    def _rebuild(self) -> None:
        by_issuer: dict[str, _Published] = {}
        duplicates: set[tuple[str, str]] = set()
        for published in sorted(self._published.values(), key=lambda p: (p.created, p.config.name)):
            first = by_issuer.setdefault(published.config.issuer, published)
            if first is not published:
                duplicates.add((published.config.name, first.config.name))
        for loser, kept in sorted(duplicates - self._duplicates):
            # The operator stalls the later provider (DuplicateIssuer) and withdraws its Secret; until then
            # the older one serves the issuer, on every replica alike.
            log.error(
                "OIDC providers %s and %s have the same issuer; only %s, published first, is used", kept, loser, kept
            )
        self._duplicates = frozenset(duplicates)
        by_name = {p.config.name: p.config for p in by_issuer.values()}
        changed = {
            name for name in by_name.keys() | self._by_name.keys() if by_name.get(name) is not self._by_name.get(name)
        }
        if not changed:
            return
        # Updated in place: `issuers` is a view of this very dict.
        self._by_issuer.clear()
        self._by_issuer.update({issuer: p.config for issuer, p in by_issuer.items()})
        self._by_name.clear()
        self._by_name.update(by_name)
        self.version += 1
        for callback in self._subscribers:
            try:
                callback(frozenset(changed))
            except Exception:
                log.exception("a subscriber to OIDC provider changes failed")


def provider_reflector(client: Source, namespace: str, providers: Providers) -> Reflector:
    """The watch that keeps `providers` current: the provider Secrets of the operator namespace."""
    return Reflector(
        client=client,
        path=path_for(plural="secrets", namespace=namespace),
        sink=providers,
        what="OIDC providers",
        label_selector=LABEL_SELECTOR,
    )
