"""When each OIDCProvider is reconciled again: on a schedule, after a failure, and when its client Secret changes.

kopf never watches Secrets here (it would copy their data into its annotations and logs): each provider's
daemon watches the one Secret its spec names, through a reflector narrowed by a field selector, and the
sink below only notes that something changed. It keeps no data of the Secret.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from kubegate.contracts.api_paths import path_for
from kubegate.kube import WatchEvent
from kubegate.kube.reflector import Reflector, Source
from kubegate.operator.oidcprovider import ProviderReconciled

FIRST_BACKOFF = 5.0
MAX_BACKOFF = 300.0
SOONEST = 1.0


class SecretChanged:
    """A reflector sink that calls `wake` when the watched Secret differs from the one last reconciled with."""

    def __init__(self, *, wake: Callable[[], None], reconciled_version: Callable[[], str | None]) -> None:
        """`reconciled_version`: the resourceVersion the last reconcile read (None: the Secret was missing)."""
        self._wake = wake
        self._reconciled_version = reconciled_version

    async def replace(self, items: list[dict[str, Any]]) -> None:
        # A (re)list: the Secret may have appeared, changed or gone while nobody watched.
        version = str(items[0]["metadata"].get("resourceVersion")) if items else None
        if version != self._reconciled_version():
            self._wake()

    def apply(self, event: WatchEvent) -> None:
        self._wake()

    def synced(self, resource_version: str) -> None:
        pass

    def stale(self) -> None:
        pass


def secret_watch(client: Source, provider: str, ref: tuple[str, str], sink: SecretChanged) -> Reflector:
    """The watch of one client Secret, which may not exist yet."""
    namespace, name = ref
    return Reflector(
        client=client,
        path=path_for(plural="secrets", namespace=namespace),
        sink=sink,
        what=f"client Secret {namespace}/{name} of OIDCProvider {provider}",
        field_selector=f"metadata.name={name}",
    )


def backoff(failures: int) -> float:
    """Seconds before the next try after `failures` failed reconciles in a row (1 or more)."""
    return float(min(FIRST_BACKOFF * 2 ** max(failures - 1, 0), MAX_BACKOFF))


def next_sleep(
    result: ProviderReconciled | None,
    *,
    failures: int,
    refresh_interval: timedelta,
    now: datetime,
    jitter: float | None = None,
) -> float:
    """Seconds until the provider is reconciled again by its daemon.

    Ready: the refresh interval, spread over its last tenth so that providers created together do not refresh
    together. Not ready (the issuer cannot be read, or the input is bad and may be fixed where kubegate
    cannot watch, such as at the issuer): a backoff. Never later than the moment kept keys are withdrawn.
    """
    if result is None or result.outcome.kind != "ready":
        delay = backoff(max(failures, 1))
    else:
        spread = random.uniform(0.9, 1.0) if jitter is None else jitter  # noqa: S311 - not a secret
        delay = refresh_interval.total_seconds() * spread
    if result is not None and result.keys_until is not None:
        delay = min(delay, (result.keys_until - now).total_seconds())
    return max(delay, SOONEST)
