"""The OIDC providers as the operator last published them: one Secret per provider, watched, kept in memory.

The verification engine asks `iss in providers.issuers` for every JWT before anything else, so that
lookup is a plain set membership on a live view. A verifier that caches what it derived from a
provider's config (parsed keys, compiled patterns) notices a change by the config object: it is the
same object while the published Secret's content is unchanged, and a new one after any change.

Two ways feed it: the server's reflector of the operator's Secrets (`replace`, `apply`), or a Python
service that trusts issuers in its own process, without Kubernetes (`publish`, `withdraw`). One process uses
one of them: a reflector's list replaces everything.
"""

from __future__ import annotations

import logging
from collections.abc import KeysView
from dataclasses import dataclass
from typing import Any

from kubegate.contracts import timestamps
from kubegate.contracts.api_paths import path_for
from kubegate.kube import WatchEvent
from kubegate.kube.reflector import Reflector, Source
from kubegate.validation_config.providers import (
    DATA_KEY,
    LABEL_SELECTOR,
    ProviderConfig,
    decode,
    encode,
    secret_name,
)

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
        self.loaded = False
        """True once the first list arrived (an empty one too: then no issuer is trusted)."""

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

    # --- in-process (no Kubernetes) -----------------------------------------------------------------

    def publish(self, config: ProviderConfig) -> ProviderConfig:
        """Trust `config`'s issuer, in place of any provider of the same name; returns the config in use.

        A config equal to the one already published changes nothing: the published object stays (and with
        it what verifiers derived from it), and it is the one returned. Raises ValueError when another
        provider already has the issuer: a token names one issuer, so only one provider can verify it.
        """
        holder = self._by_issuer.get(config.issuer)
        if holder is not None and holder.name != config.name:
            raise ValueError(
                f"provider {holder.name!r} already has issuer {config.issuer!r}: withdraw it first, or publish "
                f"{config.name!r} under its name"
            )
        key = secret_name(config.name)
        data = encode(config)
        known = self._published.get(key)
        if known is None or known.data != data:
            created = known.created if known is not None else timestamps.format_time(timestamps.now())
            self._published[key] = _Published(data=data, config=config, created=created)
        self.loaded = True
        self._rebuild()
        return self._published[key].config

    def withdraw(self, name: str) -> bool:
        """Stop trusting provider `name`'s issuer; False when no such provider was published."""
        found = self._published.pop(secret_name(name), None) is not None
        self.loaded = True
        self._rebuild()
        return found

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
        # Updated in place: `issuers` is a view of this very dict.
        self._by_issuer.clear()
        self._by_issuer.update({issuer: p.config for issuer, p in by_issuer.items()})
        self._by_name = {p.config.name: p.config for p in by_issuer.values()}


def provider_reflector(client: Source, namespace: str, providers: Providers) -> Reflector:
    """The watch that keeps `providers` current: the provider Secrets of the operator namespace."""
    return Reflector(
        client=client,
        path=path_for(plural="secrets", namespace=namespace),
        sink=providers,
        what="OIDC providers",
        label_selector=LABEL_SELECTOR,
    )
