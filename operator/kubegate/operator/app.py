"""Wires the operator together: settings -> API client -> lease -> reconciler and writer -> kopf handlers."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
from dataclasses import dataclass, field
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
from kubegate.operator.oidcprovider import ProviderReconciled, ProviderReconciler
from kubegate.operator.oidcprovider_watch import SecretChanged, next_sleep, secret_watch
from kubegate.operator.signing_keys import SigningKeyKeeper, SigningKeyManager
from kubegate.operator.statictoken import TokenReconciler
from kubegate.operator.statictoken_watch import StaticTokenWatch
from kubegate.operator.status import Retry
from kubegate.operator.work_queue import retry_backoff
from kubegate.resources.duration import parse_duration
from kubegate.resources.oidcprovider import OIDCProvider
from kubegate.resources.statictoken import StaticToken
from kubegate.settings import OperatorSettings
from kubegate.validation_config.registry import Key, Registry
from kubegate.verify.oidc.provider_http import ProviderHttp

log = logging.getLogger(__name__)

PROVIDERS = (OIDCProvider.group, OIDCProvider.version, OIDCProvider.plural)
# An OIDCProvider's daemon reads the issuer this long after it starts when no handler did: kopf skips the
# handlers while its finalizer patch fails a version check, and tries again only on the object's next event.
FIRST_RECONCILE_GRACE = 5.0
KOPF_PREFIX = "kopf.kubegate.dev"
# How often the signing keys are checked for a scheduled rotation or a key to drop.
SIGNING_KEY_CHECK = 60.0
WORKER_LIMIT = 64
KOPF_RETRY_EVERY = 0.5


@dataclass
class _ProviderLoop:
    """What an OIDCProvider's daemon is told between its rounds."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    reconcile: bool = False
    """Reconcile when woken (the client Secret changed), rather than only work out the next moment again."""


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
            write_interval=settings.config_write_interval,
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
        # StaticTokens are not kopf's: thousands at once need few API writes, little memory, one timer.
        self.tokens = StaticTokenWatch(
            client=client,
            source=client,
            reconciler=self.reconciler,
            settings=settings,
            namespaces=self.watched_namespaces,
        )
        self._tokens: asyncio.Task[None] | None = None
        events = EventPoster(client)
        self.provider_http = ProviderHttp(timeout=settings.provider_timeout, user_agent="kubegate-operator")
        self.providers = ProviderReconciler(client=client, http=self.provider_http, settings=settings, events=events)
        self._provider_loops: dict[str, _ProviderLoop] = {}
        self._provider_results: dict[str, ProviderReconciled] = {}
        self._provider_failures: dict[str, int] = {}

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

    # --- OIDCProvider handlers -----------------------------------------------------------------------

    async def on_provider_change(self, *, name: str, **_: Any) -> None:
        """Created, changed (spec, or a new kubegate.dev/refresh annotation), or found at start: read the issuer."""
        await self._reconcile_provider(name)
        self._wake_provider(name, reconcile=False)

    async def on_provider_delete(self, *, name: str, **_: Any) -> None:
        self._provider_results.pop(name, None)
        self._provider_failures.pop(name, None)
        try:
            await self.providers.forget(name)
        except Retry as exc:
            raise kopf.TemporaryError(f"will retry: {exc}", delay=5) from exc
        # Another provider may have waited for this one's issuer.
        self._wake_duplicates()

    async def provider_daemon(self, *, name: str, stopped: kopf.DaemonStopped, **_: Any) -> None:
        """One per OIDCProvider: reads the issuer again on schedule (after a failure, with a backoff), and at
        once when the client Secret its spec names appears, changes or goes."""
        loop = self._provider_loops.setdefault(name, _ProviderLoop())
        refresh = parse_duration(self.settings.provider_refresh_interval)
        watching: tuple[tuple[str, str], asyncio.Task[None]] | None = None
        delay = FIRST_RECONCILE_GRACE
        try:
            while not stopped:
                watching = self._follow_client_secret(name, watching)
                if name in self._provider_results:
                    delay = next_sleep(
                        self._provider_results[name],
                        failures=self._provider_failures.get(name, 0),
                        refresh_interval=refresh,
                        now=datetime.now(UTC),
                    )
                loop.wake.clear()
                await _first(stopped.wait(), loop.wake.wait(), timeout=delay)
                if stopped:
                    break
                if loop.wake.is_set() and not loop.reconcile:
                    continue  # a handler reconciled: only the next moment changes
                loop.reconcile = False
                try:
                    await self._reconcile_provider(name)
                except kopf.TemporaryError as exc:
                    delay = exc.delay or FIRST_RECONCILE_GRACE
                    self._provider_results.pop(name, None)
        finally:
            if watching is not None:
                watching[1].cancel()
                await asyncio.gather(watching[1], return_exceptions=True)
            self._provider_loops.pop(name, None)

    def _follow_client_secret(
        self, name: str, watching: tuple[tuple[str, str], asyncio.Task[None]] | None
    ) -> tuple[tuple[str, str], asyncio.Task[None]] | None:
        """Watch the client Secret the last reconcile read; a new reference replaces the watch."""
        result = self._provider_results.get(name)
        if result is None:
            return watching
        ref = result.secret_ref
        if watching is not None and watching[0] == ref:
            return watching
        if watching is not None:
            watching[1].cancel()
        if ref is None:
            return None

        def version() -> str | None:
            current = self._provider_results.get(name)
            return current.secret_version if current is not None else None

        sink = SecretChanged(wake=lambda: self._wake_provider(name, reconcile=True), reconciled_version=version)
        reflector = secret_watch(self.client, name, ref, sink)
        return ref, asyncio.create_task(reflector.run(), name=f"client Secret of {name}")

    async def _reconcile_provider(self, name: str) -> None:
        try:
            result = await self.providers.reconcile(name)
        except Retry as exc:
            failures = self._provider_failures.get(name, 0) + 1
            self._provider_failures[name] = failures
            raise kopf.TemporaryError(f"will retry: {exc}", delay=retry_backoff(failures)) from exc
        if result is None:
            return
        self._provider_results[name] = result
        ready = result.outcome.kind == "ready"
        self._provider_failures[name] = 0 if ready else self._provider_failures.get(name, 0) + 1
        if result.outcome.reason != "DuplicateIssuer":
            self._wake_duplicates(besides=name)

    def _wake_provider(self, name: str, *, reconcile: bool) -> None:
        loop = self._provider_loops.get(name)
        if loop is not None:
            loop.reconcile = loop.reconcile or reconcile
            loop.wake.set()

    def _wake_duplicates(self, besides: str | None = None) -> None:
        """Reconcile the providers stalled for a duplicate issuer: the one they deferred to may have changed."""
        for other, result in self._provider_results.items():
            if other != besides and result.outcome.reason == "DuplicateIssuer":
                self._wake_provider(other, reconcile=True)

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
        # Many OIDCProviders at once must not become as many concurrent workers.
        settings.queueing.worker_limit = WORKER_LIMIT
        # A worker holds its slot while it waits for more events of its object; let go quickly.
        settings.queueing.idle_timeout = 0.5
        await self.writer.start()
        outcome = await ensure_bootstrap_token(self.client, self.settings)
        log.info("bootstrap token: %s", outcome)
        log.info("client-token signing keys: %s", await self.signing_keys.ensure())
        self._key_keeper = asyncio.create_task(self.key_keeper.run(), name="signing keys")
        if self.settings.token_method:
            self._tokens = asyncio.create_task(self.tokens.run(), name="StaticTokens")

    async def cleanup(self, **_: Any) -> None:
        if self._tokens is not None:
            self._tokens.cancel()
            await asyncio.gather(self._tokens, return_exceptions=True)
        if self._key_keeper is not None:
            self._key_keeper.cancel()
            await asyncio.gather(self._key_keeper, return_exceptions=True)
        await self.writer.stop()
        await self.provider_http.close()

    def registry_for_kopf(self) -> kopf.OperatorRegistry:
        registry = kopf.OperatorRegistry()
        # A private registry has none of kopf's default handlers: log in the way the kubernetes client does.
        kopf.on.login(registry=registry)(kopf.login_via_client)
        kopf.on.startup(registry=registry)(self.startup)
        kopf.on.cleanup(registry=registry)(self.cleanup)
        for decorator in (kopf.on.resume, kopf.on.create, kopf.on.update):
            decorator(*PROVIDERS, registry=registry, id="reconcile-provider")(self.on_provider_change)
        kopf.on.delete(*PROVIDERS, registry=registry, id="withdraw-provider")(self.on_provider_delete)
        kopf.daemon(*PROVIDERS, registry=registry, id="refresh", cancellation_timeout=5.0)(self.provider_daemon)
        # No handler for Secrets, ever: kopf would log their data and copy it into an annotation. A provider's
        # client Secret is watched by its daemon instead.
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
