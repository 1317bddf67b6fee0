"""Which StaticTokens are reconciled when: a watch of the resources, a work queue, a bounded pool of workers.

Ten thousand StaticTokens applied at once (a GitOps sync) must be Ready about as fast as the API server
stores them, with few API calls and little memory. So the objects are not handed to kopf (which patches
a finalizer and its own annotations onto each object, and runs a task per object for the schedule):
- a reflector lists and watches the StaticTokens and hands each change to the queue, with the object as
  delivered, so that a reconcile of a change reads no StaticToken; the watch's echo of our own status write
  is recognised by its resourceVersion and reconciles nothing;
- a fixed pool of workers reconciles them, never two workers on one token at once;
- the queue's one heap holds every token's next expiry, rotation, end of overlap or resync, and the
  retries with backoff after a failure;
- a deleted StaticToken's hashes leave the validation config when the watch reports the deletion (its
  Secret goes by ownerReference); no finalizer, so no write on creation. A deletion missed while no
  operator ran is caught by the config writer's start-up sync.

Only while a key is queued is its object held, without its managedFields; otherwise a token costs the
queue its resourceVersion and due time.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime
from typing import Any

from kubegate.kube import ApiError, ApiUnavailable, KubeApi, WatchEvent
from kubegate.kube.reflector import Reflector, Source
from kubegate.operator.statictoken import Reconciled, TokenReconciler
from kubegate.operator.status import Retry
from kubegate.operator.token_plan import clamp_sleep
from kubegate.operator.work_queue import WorkQueue, retry_backoff
from kubegate.resources.duration import parse_duration
from kubegate.resources.statictoken import StaticToken
from kubegate.settings import OperatorSettings
from kubegate.validation_config.registry import Key

log = logging.getLogger(__name__)

# Most of a reconcile is waiting for the validation config's next write round: many workers, few CPUs.
WORKERS = 1024
OLD_FINALIZER = "kubegate.dev/finalizer"
"""The finalizer the kopf-based operator put on every StaticToken; removed when such a token is deleted."""
_GONE: dict[str, Any] = {}
"""What the queue holds for a key whose object was deleted."""


def _key(obj: dict[str, Any]) -> Key:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _slim(obj: dict[str, Any]) -> dict[str, Any]:
    """What a reconcile reads of an object; managedFields is often most of it."""
    meta = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
    return {**obj, "metadata": meta}


class _Scope:
    """The reflector sink of one watched collection (a namespace, or every namespace)."""

    def __init__(self, controller: StaticTokenWatch, namespace: str | None) -> None:
        self._controller = controller
        self._namespace = namespace

    async def replace(self, items: list[dict[str, Any]]) -> None:
        listed = {_key(item) for item in items}
        for key in self._controller.known(self._namespace) - listed:
            self._controller.deleted(key)
        for item in items:
            self._controller.seen(item)

    def apply(self, event: WatchEvent) -> None:
        if event.type == "DELETED":
            self._controller.deleted(_key(event.object))
        else:
            self._controller.seen(event.object)

    def synced(self, resource_version: str) -> None:
        pass

    def stale(self) -> None:
        pass


class StaticTokenWatch:
    """Keeps every StaticToken of the watched namespaces reconciled (all namespaces when none are named)."""

    def __init__(
        self,
        *,
        client: KubeApi,
        source: Source,
        reconciler: TokenReconciler,
        settings: OperatorSettings,
        namespaces: list[str],
        workers: int = WORKERS,
    ) -> None:
        """`source`: lists and watches (the client, or a test's fake). `namespaces`: empty for all."""
        self._client = client
        self._source = source
        self._reconciler = reconciler
        self._settings = settings
        self._namespaces = namespaces
        self._workers = workers
        self.queue: WorkQueue[Key] = WorkQueue()
        self._pending: dict[Key, dict[str, Any]] = {}
        """The newest copy of each queued object (`_GONE` once deleted), until a worker takes it."""
        self._versions: dict[Key, str] = {}
        """Each known object's resourceVersion after its last reconcile."""
        self._failures: dict[Key, int] = {}

    async def run(self) -> None:
        """Watch and reconcile until cancelled."""
        scopes: list[str | None] = list(self._namespaces) or [None]
        tasks = [
            asyncio.create_task(
                Reflector(
                    client=self._source,
                    path=StaticToken.path(namespace=namespace),
                    sink=_Scope(self, namespace),
                    what=f"StaticTokens in {namespace or 'every namespace'}",
                ).run(),
                name=f"watch StaticTokens {namespace or '*'}",
            )
            for namespace in scopes
        ]
        tasks += [asyncio.create_task(self._work(), name=f"StaticToken worker {i}") for i in range(self._workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- what the watch reports -------------------------------------------------------------------------

    def known(self, namespace: str | None) -> set[Key]:
        keys = self._versions.keys() | self._pending.keys()
        return {k for k in keys if namespace is None or k[0] == namespace}

    def seen(self, obj: dict[str, Any]) -> None:
        key = _key(obj)
        version = obj["metadata"].get("resourceVersion")
        if key not in self._pending and version is not None and self._versions.get(key) == version:
            return  # our own status write coming back, or a relist of what we reconciled
        self._pending[key] = _slim(obj)
        self.queue.add(key)

    def deleted(self, key: Key) -> None:
        self._pending[key] = _GONE
        self.queue.add(key)

    # --- workers ----------------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self._handle(key)
            except Exception:  # a worker must outlive any one object
                log.exception("StaticToken %s/%s: unexpected failure; retrying", *key)
                self._retry_later(key)
            finally:
                self.queue.done(key)

    async def _handle(self, key: Key) -> None:
        body = self._pending.pop(key, None)
        if body is _GONE:
            await self._forget(key)
            return
        if body is not None:
            if body["metadata"].get("deletionTimestamp"):
                await self._forget(key, meta=body["metadata"])
                return
            if self._versions.get(key) == body["metadata"].get("resourceVersion"):
                return  # reconciled at this version already (its event came before our write's reply)
        try:
            result = await self._reconciler.reconcile(*key, body=body)
        except Retry as exc:
            log.info("StaticToken %s/%s: %s; retrying", key[0], key[1], exc)
            self._retry_later(key)
            return
        if result is None:  # gone or being deleted: the watch reports that
            return
        self._reconciled(key, result)

    def _reconciled(self, key: Key, result: Reconciled) -> None:
        log.debug("StaticToken %s/%s reconciled: %s", key[0], key[1], result.outcome.kind)
        if result.resource_version is not None:
            self._versions[key] = result.resource_version
        if result.outcome.kind == "stalled":
            self._retry_later(key)
            return
        self._failures.pop(key, None)
        self.queue.add_at(key, self.queue.now() + self._next_sleep(result))

    def _retry_later(self, key: Key) -> None:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        self.queue.add_at(key, self.queue.now() + retry_backoff(failures))

    def _next_sleep(self, result: Reconciled) -> float:
        now = datetime.now(UTC)
        wake = result.wake
        if result.recheck_secret:
            recheck = now + parse_duration(self._settings.secret_recheck_interval)
            wake = recheck if wake is None else min(wake, recheck)
        # Spread over the last tenth of the interval: tokens that started together do not resync together.
        resync = parse_duration(self._settings.resync_interval) * random.uniform(0.9, 1.0)  # noqa: S311 - not a secret
        return clamp_sleep(wake, now, longest=resync)

    async def _forget(self, key: Key, *, meta: dict[str, Any] | None = None) -> None:
        """The object is gone, or (`meta`) being deleted: unpublish its hashes; drop the finalizer an older
        operator put on it."""
        self._versions.pop(key, None)
        self._failures.pop(key, None)
        self.queue.forget(key)
        if not await self._reconciler.forget(*key):
            # The config writer keeps trying on its own; the hash goes with its next write.
            log.warning("StaticToken %s/%s: deleted; its hashes are not out of the validation config yet", *key)
        if meta is not None and OLD_FINALIZER in (meta.get("finalizers") or []):
            await self._drop_old_finalizer(key, meta)

    async def _drop_old_finalizer(self, key: Key, meta: dict[str, Any]) -> None:
        rest = [f for f in meta.get("finalizers") or [] if f != OLD_FINALIZER]
        # Conditioned on the version read: when the list changed meanwhile, the patch is refused and the
        # watch brings the new list, and this runs again.
        patch = {"metadata": {"finalizers": rest, "resourceVersion": meta.get("resourceVersion")}}
        try:
            await self._client.patch(StaticToken.path(namespace=key[0], name=key[1]), patch)
        except ApiUnavailable as exc:
            log.info("StaticToken %s/%s: the old finalizer stays for now (%s); retrying", key[0], key[1], exc)
            self._pending.setdefault(key, {"metadata": meta})
            self.queue.add_at(key, self.queue.now() + retry_backoff(1))
        except ApiError as exc:
            log.info("StaticToken %s/%s: the old finalizer was not removed (%s)", key[0], key[1], exc)
