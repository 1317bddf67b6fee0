"""Wires the operator together: settings -> API client -> lease -> reconciler and writer -> kopf handlers."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import signal
from datetime import UTC, datetime
from typing import Any

import kopf

from kubegate.kube import KubeClient, load_connection
from kubegate.operator import kopf_logs
from kubegate.operator.bootstrap import ensure_bootstrap_token
from kubegate.operator.config_writer import ConfigWriter
from kubegate.operator.events import EventPoster
from kubegate.operator.leader import LeaderElector, candidate_identity
from kubegate.operator.liveness import liveness_endpoint, serve_while_waiting
from kubegate.operator.signing_keys import SigningKeyKeeper, SigningKeyManager
from kubegate.operator.statictoken import Reconciled, TokenReconciler
from kubegate.operator.status import Retry
from kubegate.operator.token_plan import clamp_sleep
from kubegate.resources.duration import parse_duration
from kubegate.resources.statictoken import StaticToken
from kubegate.settings import OperatorSettings
from kubegate.validation_config.registry import Key, Registry

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = StaticToken.group, StaticToken.version, StaticToken.plural
# A daemon starts with its StaticToken. When no handler has reconciled the token this long after, the daemon
# does: kopf skips the handlers while its finalizer patch fails a version check (a lost reply, a hand-over
# in a burst) and tries again only on the object's next event, which may never come.
FIRST_RECONCILE_GRACE = 5.0
STALLED_BACKOFF_CAP = 300.0
KOPF_PREFIX = "kopf.kubegate.dev"
# How often the signing keys are checked for a scheduled rotation or a key to drop.
SIGNING_KEY_CHECK = 60.0
WORKER_LIMIT = 64
KOPF_RETRY_EVERY = 0.5


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
        """One per StaticToken: sleeps until its next expiry, rotation, end of overlap or resync, then
        reconciles; reconciles soon after it starts when no handler did."""
        key = (namespace or "", name)
        wakeup = self._wakeups.setdefault(key, asyncio.Event())
        retry = 0
        delay = self._next_sleep(key) if key in self._results else FIRST_RECONCILE_GRACE
        while not stopped:
            wakeup.clear()
            await _first(stopped.wait(), wakeup.wait(), timeout=delay)
            if stopped:
                break
            if not wakeup.is_set():  # else a handler reconciled: only the next moment changes
                try:
                    await self._reconcile(key, retry)
                    retry = 0
                except kopf.TemporaryError as exc:
                    retry += 1
                    delay = exc.delay or _backoff(retry)
                    continue
            delay = self._next_sleep(key)
        self._wakeups.pop(key, None)

    def _next_sleep(self, key: Key) -> float:
        now = datetime.now(UTC)
        result = self._results.get(key)
        wake = result.wake if result else None
        if result is not None and result.recheck_secret:
            recheck = now + parse_duration(self.settings.secret_recheck_interval)
            wake = recheck if wake is None else min(wake, recheck)
        # Spread over the last tenth of the interval: tokens that started together do not resync together.
        resync = parse_duration(self.settings.resync_interval) * random.uniform(0.9, 1.0)  # noqa: S311 - not a secret
        return clamp_sleep(wake, now, longest=resync)

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
        # kopf's own calls (its watches, its patches) retry every half second, for ever, instead of backing off
        # to 21 s and then giving up: after an API outage the operator resumes within about a second. The
        # filter keeps that to one log line a minute.
        settings.networking.error_backoffs = itertools.repeat(KOPF_RETRY_EVERY)
        kopf_logs.install()
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


async def run(settings: OperatorSettings, *, stop_flag: asyncio.Event | None = None) -> None:
    """Run the operator until `stop_flag` is set or the process gets SIGINT or SIGTERM (kopf handles those;
    a stop flag of ours that no signal sets would hold its exit for 5 s).

    Unless standalone, it first waits for the lease, and acts only while it holds it. Everything it acts
    with (the registry of published tokens, the handlers' state, kopf's own memory) is built after the lease
    is acquired, from the cluster as it is then: nothing is kept from a time another replica acted.
    """
    connection = await asyncio.to_thread(load_connection)  # reads files; not on the event loop
    liveness = liveness_endpoint(settings.health_address)
    async with KubeClient(connection, user_agent="kubegate-operator") as client:
        if settings.standalone:
            await _operate(settings, client, liveness, stop_flag)
            return
        duration, renew_deadline, retry_period = settings.lease_seconds()
        elector = LeaderElector(
            client=client,
            namespace=settings.operator_namespace,
            name=settings.lease_name,
            identity=candidate_identity(),
            lease_duration=duration,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
        )
        async with serve_while_waiting(liveness):
            if not await _wait_for_lease(elector, stop_flag):
                return
        # Created before kopf starts, so that kopf's shutdown does not count it among its own tasks.
        holding = asyncio.create_task(_hold_or_exit(elector), name="lease")
        try:
            # The operator's writes go through a client that asks the elector first; the lease's own do not.
            async with KubeClient(connection, user_agent="kubegate-operator", may_write=elector.acting) as acting:
                await _operate(settings, acting, liveness, stop_flag)
        finally:
            holding.cancel()
            await asyncio.gather(holding, return_exceptions=True)
            await elector.release()


async def _operate(
    settings: OperatorSettings, client: KubeClient, liveness: str, stop_flag: asyncio.Event | None
) -> None:
    operator = Operator(settings=settings, client=client)
    namespaces = operator.watched_namespaces
    await kopf.operator(
        registry=operator.registry_for_kopf(),
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=True,
        liveness_endpoint=liveness,
        stop_flag=stop_flag,
        memo=kopf.Memo(operator=operator),
    )


async def _wait_for_lease(elector: LeaderElector, stop_flag: asyncio.Event | None) -> bool:
    """Wait until the lease is ours: True; False when SIGINT, SIGTERM or the stop flag came first."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    # kopf is not running yet to turn these signals into a graceful stop; it installs its own later.
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    acquiring = asyncio.ensure_future(elector.acquire())
    try:
        await _first(acquiring, stopping.wait(), *([stop_flag.wait()] if stop_flag else []))
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    if acquiring.cancelled():
        log.info("stopped while waiting for the lease %s", elector.lease)
        return False
    acquiring.result()
    if stopping.is_set() or (stop_flag is not None and stop_flag.is_set()):
        await elector.release()
        return False
    return True


async def _hold_or_exit(elector: LeaderElector) -> None:
    await elector.hold()
    log.error("lost the lease %s to another replica: exiting now; it takes over", elector.lease)
    logging.shutdown()
    # Not kopf's graceful stop: it would finish running handlers and call the cleanup handlers, which write,
    # while another replica may already act. Kubernetes restarts the container, which then waits its turn.
    os._exit(1)
