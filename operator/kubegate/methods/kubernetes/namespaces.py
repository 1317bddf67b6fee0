"""Namespace labels for bindings with a label selector, read from the API and kept for a short while."""

from __future__ import annotations

import time
from collections.abc import Callable

from kubegate.contracts.api_paths import path_for
from kubegate.kube import ApiError, ApiUnavailable, KubeClient, NotFound
from kubegate.methods.kubernetes.review import ReviewUnavailable


class NamespaceLabels:
    def __init__(self, client: KubeClient, *, ttl: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, str]]] = {}

    async def __call__(self, namespace: str) -> dict[str, str]:
        now = self._clock()
        cached = self._cache.get(namespace)
        if cached is not None and now < cached[0]:
            return cached[1]
        try:
            found = await self._client.get(path_for(plural="namespaces", name=namespace))
            labels = dict((found.get("metadata") or {}).get("labels") or {})
        except NotFound:
            labels = {}
        except (ApiUnavailable, ApiError) as exc:
            raise ReviewUnavailable(f"cannot read the labels of namespace {namespace}: {exc}") from exc
        self._cache[namespace] = (now + self._ttl, labels)
        return labels
