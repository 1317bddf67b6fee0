"""Wires the operator together: settings -> API client -> reconciler and writer -> kopf handlers."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf

from kubegate.kube import AlreadyExists, ApiError, ApiUnavailable, KubeClient, load_connection
from kubegate.kube.paths import path_for
from kubegate.operator.bootstrap import ensure_bootstrap_token
from kubegate.operator.config_writer import ConfigWriter
from kubegate.operator.events import EventPoster
from kubegate.operator.liveness import liveness_endpoint
from kubegate.operator.signing_keys import SigningKeyKeeper, SigningKeyManager
from kubegate.operator.statictoken import Reconciled, Retry, TokenReconciler
from kubegate.operator.token_plan import clamp_sleep
from kubegate.resources.duration import parse_duration
from kubegate.resources.statictoken import StaticToken
from kubegate.settings import OperatorSettings
from kubegate.validation_config.registry import Key, Registry

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = StaticToken.group, StaticToken.version, StaticToken.plural
# A daemon re-checks at least this often even when nothing is scheduled (clock jumps, missed wakes).
LONGEST_SLEEP = timedelta(minutes=10)
STALLED_BACKOFF_CAP = 300.0
KOPF_PREFIX = "kopf.kubegate.dev"
# How often the signing keys are checked for a scheduled rotation or a key to drop.
SIGNING_KEY_CHECK = 60.0
WORKER_LIMIT = 64


def _backoff(retry: int) -> float:
    return float(min(5.0 * 2**retry, STALLED_BACKOFF_CAP))


class Operator:
    """Everything one operator process holds; kopf handlers are bound methods of it."""

    def __init__(self, *, settings: OperatorSettings, client: KubeClient) -> None:
        self.settings = settings
        self.client = client
        self.registry = Registry(settings.config_shards)
        self.writer = ConfigWriter(
            client=client,
            namespace=settings.operator_namespace,
            registry=self.registry,
            write_delay=settings.config_write_delay,
            list_token_keys=self.list_token_keys,
        )
        self.reconciler = TokenReconciler(
            client=client, settings=settings, writer=self.writer, events=EventPoster(client)
        )
        self.signing_keys = SigningKeyManager(client=client, settings=settings)
        self.key_keeper = SigningKeyKeeper(
            manager=self.signing_keys,
            client=client,
            namespace=settings.operator_namespace,
            interval=SIGNING_KEY_CHECK,
        )
        self._key_keeper: asyncio.Task[None] | None = None
        self._wakeups: dict[Key, asyncio.Event] = {}
        self._results: dict[Key, Reconciled] = {}

    @property
    def watched_namespaces(self) -> list[str]:
        """Namespaces to watch; empty for every namespace. The operator's own is always added: it holds the
        bootstrap token and the signing keys."""
        if not self.settings.namespaces:
            return []
        return sorted({*self.settings.namespaces, self.settings.operator_namespace})

    async def list_token_keys(self) -> set[Key]:
        paths = (
            [StaticToken.path(namespace=ns) for ns in self.watched_namespaces]
            if self.watched_namespaces
            else [StaticToken.path()]
        )
        keys: set[Key] = set()
        for path in paths:
            items, _ = await self.client.list_all(path)
            keys.update((i["metadata"]["namespace"], i["metadata"]["name"]) for i in items)
        return keys

    # --- handlers -----------------------------------------------------------------------------------

    async def on_change(self, *, namespace: str | None, name: str, retry: int, **_: Any) -> None:
        await self._reconcile((namespace or "", name), retry)

    async def on_delete(self, *, namespace: str | None, name: str, **_: Any) -> None:
        key = (namespace or "", name)
        self._results.pop(key, None)
        self._wake(key)
        if not await self.reconciler.forget(*key):
            raise kopf.TemporaryError("the validation config could not be written yet; retrying", delay=5)

    async def clock(self, *, namespace: str | None, name: str, stopped: kopf.DaemonStopped, **_: Any) -> None:
        """One per StaticToken: sleeps until its next expiry, rotation or end of overlap, then reconciles."""
        key = (namespace or "", name)
        wakeup = self._wakeups.setdefault(key, asyncio.Event())
        retry = 0
        while not stopped:
            now = datetime.now(UTC)
            result = self._results.get(key)
            wake = result.wake if result else None
            if result is not None and result.recheck_secret:
                recheck = now + parse_duration(self.settings.secret_recheck_interval)
                wake = recheck if wake is None else min(wake, recheck)
            delay = clamp_sleep(wake, now, longest=LONGEST_SLEEP)
            wakeup.clear()
            await _first(stopped.wait(), wakeup.wait(), timeout=delay)
            if stopped:
                break
            if wakeup.is_set():
                continue  # a handler reconciled; recompute the next moment
            try:
                await self._reconcile(key, retry)
                retry = 0
            except kopf.TemporaryError as exc:
                retry += 1
                await _first(stopped.wait(), timeout=exc.delay or _backoff(retry))
        self._wakeups.pop(key, None)

    async def _reconcile(self, key: Key, retry: int) -> None:
        try:
            result = await self.reconciler.reconcile(*key)
        except Retry as exc:
            raise kopf.TemporaryError(f"will retry: {exc}", delay=_backoff(retry)) from exc
        if result is None:
            return
        self._results[key] = result
        self._wake(key)
        if result.outcome.kind == "stalled":
            raise kopf.TemporaryError(f"{result.outcome.reason}: {result.outcome.message}", delay=_backoff(retry))

    def _wake(self, key: Key) -> None:
        event = self._wakeups.get(key)
        if event is not None:
            event.set()

    # --- start-up -----------------------------------------------------------------------------------

    async def startup(self, settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = "kubegate.dev/finalizer"
        # kopf ignores every annotation under its storage prefix when it diffs objects; a prefix of its
        # own keeps kubegate.dev/rotate visible to the update handler.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=KOPF_PREFIX, key="last-handled-configuration"
        )
        settings.posting.level = logging.WARNING
        settings.posting.reporting_component = "kubegate-operator"
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60
        # Thousands of tokens at once (a GitOps sync) must not become thousands of concurrent workers:
        # a bounded pool is as fast and keeps the peak memory down.
        settings.queueing.worker_limit = WORKER_LIMIT
        # A worker holds its slot while it waits for more events of its object; let go quickly.
        settings.queueing.idle_timeout = 0.5
        await self.writer.start()
        outcome = await ensure_bootstrap_token(self.client, self.settings)
        log.info("bootstrap token: %s", outcome)
        log.info("client-token signing keys: %s", await self.signing_keys.ensure())
        self._key_keeper = asyncio.create_task(self.key_keeper.run(), name="signing keys")

    async def cleanup(self, **_: Any) -> None:
        if self._key_keeper is not None:
            self._key_keeper.cancel()
            await asyncio.gather(self._key_keeper, return_exceptions=True)
        await self.writer.stop()

    def registry_for_kopf(self) -> kopf.OperatorRegistry:
        registry = kopf.OperatorRegistry()
        # A private registry has none of kopf's default handlers: log in the way the kubernetes client does.
        kopf.on.login(registry=registry)(kopf.login_via_client)
        kopf.on.startup(registry=registry)(self.startup)
        kopf.on.cleanup(registry=registry)(self.cleanup)
        if self.settings.token_method:
            for decorator in (kopf.on.resume, kopf.on.create, kopf.on.update):
                decorator(GROUP, VERSION, PLURAL, registry=registry, id="reconcile")(self.on_change)
            kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, id="forget")(self.on_delete)
            kopf.daemon(GROUP, VERSION, PLURAL, registry=registry, id="clock", cancellation_timeout=5.0)(self.clock)
        # No handler for Secrets, ever: kopf would log their data and copy it into an annotation.
        return registry


async def _first(*waits: Any, timeout: float | None = None) -> None:
    """Wait until the first of the awaitables finishes (or the timeout passes), then cancel the rest."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def ensure_peering(client: KubeClient, settings: OperatorSettings, namespaces: list[str]) -> None:
    """Create the kopf peering objects the replicas meet in; kopf waits (frozen) while they are missing."""
    if settings.standalone:
        return
    targets: list[tuple[str, str, str | None]]
    if namespaces:
        targets = [
            (path_for(group="kopf.dev", version="v1", plural="kopfpeerings", namespace=ns), "KopfPeering", ns)
            for ns in namespaces
        ]
    else:
        targets = [(path_for(group="kopf.dev", version="v1", plural="clusterkopfpeerings"), "ClusterKopfPeering", None)]
    for path, kind, namespace in targets:
        meta: dict[str, Any] = {"name": settings.peering}
        if namespace:
            meta["namespace"] = namespace
        try:
            await client.create(path, {"apiVersion": "kopf.dev/v1", "kind": kind, "metadata": meta})
        except AlreadyExists:
            pass
        except (ApiError, ApiUnavailable) as exc:
            log.warning(
                "could not create the %s %r (%s): install manifests/ (kopf peering CRDs) or run with --standalone",
                kind,
                settings.peering,
                exc,
            )


async def run(settings: OperatorSettings, *, stop_flag: asyncio.Event | None = None) -> None:
    """Run the operator until `stop_flag` is set or the process gets SIGINT or SIGTERM (kopf handles those;
    a stop flag of ours that no signal sets would hold its exit for 5 s)."""
    connection = load_connection()
    async with KubeClient(connection, user_agent="kubegate-operator") as client:
        operator = Operator(settings=settings, client=client)
        namespaces = operator.watched_namespaces
        await ensure_peering(client, settings, namespaces)
        await kopf.operator(
            registry=operator.registry_for_kopf(),
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=settings.standalone,
            peering_name=None if settings.standalone else settings.peering,
            priority=settings.priority,
            liveness_endpoint=liveness_endpoint(settings.health_address),
            stop_flag=stop_flag,
            memo=kopf.Memo(operator=operator),
        )
