"""The client-token signing keys: created at start-up, rotated on schedule or on demand, pruned.

They live in one Secret in the operator namespace; the auth servers watch it. Old public keys stay
until every token they signed has expired, so a rotation never invalidates a token in its lifetime.

kopf never handles this Secret: it logs the bodies it handles at DEBUG and keeps a copy of each in a
`last-handled-configuration` annotation, which would put the private keys in the log and on the object.
The operator watches it with its own reflector instead (`SigningKeyKeeper`); only the lease holder runs one.
Each write is still a replace conditioned on the resourceVersion it read, so even two replicas that overlap
(a standalone one beside a leader) never both rotate, and a loser re-reads and finds nothing left to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kubegate.client_tokens import keys
from kubegate.contracts import timestamps
from kubegate.contracts.api_paths import path_for
from kubegate.kube import AlreadyExists, ApiError, ApiUnavailable, KubeClient, NotFound, WatchEvent
from kubegate.kube.reflector import Reflector
from kubegate.operator.token_plan import ROTATE_ANNOTATION
from kubegate.resources.duration import parse_duration
from kubegate.settings import OperatorSettings

log = logging.getLogger(__name__)
HANDLED_ANNOTATION = "kubegate.dev/handled-rotate"
# Earlier versions let kopf handle the Secret; its annotations (one held a copy of the private keys) go.
KOPF_ANNOTATION_PREFIX = "kopf.kubegate.dev/"
LABEL_SELECTOR = f"{keys.LABEL}={keys.LABEL_VALUE}"


class SigningKeyManager:
    def __init__(
        self, *, client: KubeClient, settings: OperatorSettings, clock: Callable[[], datetime] = timestamps.now
    ) -> None:
        self._client = client
        self._settings = settings
        self._clock = clock
        self._path = path_for(plural="secrets", namespace=settings.operator_namespace, name=keys.SECRET_NAME)

    def _body(self, keyset: keys.KeySet, annotations: dict[str, str]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubegate.dev/signing-keys",
            "metadata": {
                "name": keys.SECRET_NAME,
                "namespace": self._settings.operator_namespace,
                "labels": {keys.LABEL: keys.LABEL_VALUE, "app.kubernetes.io/managed-by": "kubegate"},
                "annotations": annotations,
            },
            "data": {keys.DATA_KEY: keys.encode(keyset)},
        }

    async def ensure(self) -> str:
        """Create the key Secret with a first key when there is none; returns what was done."""
        lifetime = parse_duration(self._settings.client_token_max_lifetime)
        keyset = keys.initial(self._clock(), max_token_lifetime=lifetime)
        collection = path_for(plural="secrets", namespace=self._settings.operator_namespace)
        try:
            await self._client.create(collection, self._body(keyset, {}))
        except AlreadyExists:
            return "exists"
        log.info("created the client-token signing key %s", keyset.active().kid)
        return "created"

    async def reconcile(self) -> None:
        """Rotate when due or asked, drop keys nothing can need any more, and write only on a change.

        Reads the Secret afresh: a copy older than our own last write could rotate twice.
        """
        try:
            secret = await self._client.get(self._path)
        except NotFound:
            await self.ensure()
            return
        meta = secret["metadata"]
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if not _kopf_owned(k)}
        now = self._clock()
        try:
            current = keys.decode((secret.get("data") or {}).get(keys.DATA_KEY, ""))
        except ValueError as exc:
            # Unreadable keys cannot be repaired without invalidating every token: say so, change nothing.
            log.error("the signing-key Secret %s is unreadable (%s): fix or delete it", keys.SECRET_NAME, exc)
            return
        updated = keys.with_lifetime(current, parse_duration(self._settings.client_token_max_lifetime))
        request = annotations.get(ROTATE_ANNOTATION)
        if request is not None and request != annotations.get(HANDLED_ANNOTATION):
            updated = keys.rotate(updated, now)
            annotations[HANDLED_ANNOTATION] = request
            log.info("rotated the client-token signing key on request: %s is now active", updated.active().kid)
        elif keys.rotation_due(updated, now, every=parse_duration(self._settings.signing_key_rotation)):
            updated = keys.rotate(updated, now)
            log.info("rotated the client-token signing key on schedule: %s is now active", updated.active().kid)
        updated = keys.prune(updated, now)
        if updated == current and annotations == (meta.get("annotations") or {}):
            return
        body = self._body(updated, annotations)
        body["metadata"]["resourceVersion"] = meta["resourceVersion"]
        body["metadata"]["labels"] = {**(meta.get("labels") or {}), **body["metadata"]["labels"]}
        body["metadata"]["finalizers"] = meta.get("finalizers") or []
        await self._client.replace(self._path, body)


def _kopf_owned(annotation: str) -> bool:
    return annotation.startswith(KOPF_ANNOTATION_PREFIX)


class SigningKeyKeeper:
    """Reconciles the key Secret whenever it changes and at least every `interval` seconds.

    It is also the reflector's sink: a change of the Secret (a `kubegate.dev/rotate` annotation, a
    deletion) wakes the loop; the Secret's contents are read afresh by `SigningKeyManager.reconcile`.
    """

    def __init__(
        self, *, manager: SigningKeyManager, client: KubeClient, namespace: str, interval: float, retry: float = 5.0
    ) -> None:
        self._manager = manager
        self._interval = interval
        self._retry = retry
        self._changed = asyncio.Event()
        self._reflector = Reflector(
            client=client,
            path=path_for(plural="secrets", namespace=namespace),
            sink=self,
            what="signing keys",
            label_selector=LABEL_SELECTOR,
        )

    async def run(self) -> None:
        """Watch and reconcile until cancelled."""
        watch = asyncio.create_task(self._reflector.run())
        failing = False
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout=self._interval)
                self._changed.clear()
                try:
                    await self._manager.reconcile()
                    failing = False
                except (ApiError, ApiUnavailable) as exc:
                    # A conflict (another replica wrote first) or an outage: read again shortly. An outage
                    # is logged once, not every retry (the reflector says when the API answers again).
                    log.log(logging.DEBUG if failing else logging.WARNING, "signing keys: %s; retrying", exc)
                    failing = True
                    await asyncio.sleep(self._retry)
                    self._changed.set()
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    async def replace(self, items: list[dict[str, Any]]) -> None:
        self._changed.set()

    def apply(self, event: WatchEvent) -> None:
        if event.object.get("metadata", {}).get("name") == keys.SECRET_NAME:
            self._changed.set()

    def synced(self, resource_version: str) -> None:
        pass

    def stale(self) -> None:
        pass
