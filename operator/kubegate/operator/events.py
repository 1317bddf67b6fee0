"""Kubernetes Events about kubegate resources, so that `kubectl describe` shows what happened."""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime
from typing import Any, Literal

from kubegate.contracts.api_paths import path_for
from kubegate.contracts.timestamps import format_time
from kubegate.kube import ApiError, ApiUnavailable, KubeApi

log = logging.getLogger(__name__)
COMPONENT = "kubegate-operator"


class EventPoster:
    def __init__(self, client: KubeApi) -> None:
        self._client = client
        self._instance = os.environ.get("POD_NAME") or socket.gethostname()

    async def post(
        self, obj: dict[str, Any], *, type_: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        """Post one Event about `obj`. Failing to post is logged, never raised: Events are best effort.

        Callers must never pass a secret in `message`.
        """
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        now = format_time(datetime.now(UTC))
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name', 'kubegate')}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": f"kubegate.dev/{COMPONENT}",
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self._client.create(path_for(plural="events", namespace=namespace), event)
        except (ApiError, ApiUnavailable) as exc:
            log.warning("could not post event %s on %s/%s: %s", reason, namespace, meta.get("name"), exc)
