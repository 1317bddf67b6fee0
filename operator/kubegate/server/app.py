"""Wires the server together: settings -> API client -> config watcher -> verifier -> aiohttp app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from kubegate.client_tokens.keys import public_keys
from kubegate.kube import KubeClient, load_connection
from kubegate.kube.paths import path_for
from kubegate.kube.reflector import Reflector
from kubegate.methods.kubernetes import bindings
from kubegate.methods.kubernetes import http as kubernetes_method
from kubegate.methods.kubernetes.exchange import Exchange
from kubegate.methods.kubernetes.namespaces import NamespaceLabels
from kubegate.methods.kubernetes.review import TokenReviewer
from kubegate.methods.token import http as token_method
from kubegate.methods.token.store import KubeStaticTokenStore
from kubegate.resources.duration import parse_duration
from kubegate.server import (
    log_filters,
    path_health,
    path_method,
    path_self,
    path_tokenreview,
    path_tokens,
    path_verify,
    path_wellknown,
)
from kubegate.server import revocations as revocation_list
from kubegate.server import signing_keys as key_watch
from kubegate.server.access_log import LOGGER_NAME, AccessLogger, AccessLogSink
from kubegate.server.config_state import ConfigState
from kubegate.server.config_watch import ConfigWatcher
from kubegate.server.context import CONTEXT, ServerContext
from kubegate.server.metrics import Metrics
from kubegate.server.revocations import Revocations
from kubegate.server.routing import add_fallback
from kubegate.server.signing_keys import SigningKeys
from kubegate.server.tls import ReloadingTLS
from kubegate.settings import ServerSettings
from kubegate.verify import StaticTokenIndex, Verifier
from kubegate.verify.client_tokens import JwksClientTokenVerifier
from kubegate.verify.credentials import MAX_CREDENTIAL_LENGTH

log = logging.getLogger(__name__)
access_log = logging.getLogger(LOGGER_NAME)

SHUTDOWN_TIMEOUT = 10.0
_ROUTES = (
    path_health.register,
    path_method.register,
    token_method.register,
    kubernetes_method.register,
    path_wellknown.register,
    path_self.register,
    path_tokens.register,
    path_verify.register,
    path_tokenreview.register,
)


def build_app(context: ServerContext) -> web.Application:
    """The aiohttp application for `context`; tests run it with an in-memory config and a fake store."""
    app = web.Application(
        client_max_size=context.settings.max_body_bytes,
        # Room for the longest credential in an Authorization header (aiohttp's default is 8 KiB).
        handler_args={"max_field_size": MAX_CREDENTIAL_LENGTH + 64},
    )
    app[CONTEXT] = context
    for register in _ROUTES:
        register(app)
    add_fallback(app)
    return app


def config_gauges(metrics: Metrics, config: ConfigState) -> None:
    """Expose the state of the validation config as gauges, read at scrape time."""

    def one(value: float) -> Iterable[tuple[dict[str, str], float]]:
        return [({}, value)]

    metrics.gauge(
        "kubegate_config_ready", "1 once the validation config was loaded in full.", lambda: one(config.ready)
    )
    metrics.gauge("kubegate_config_tokens", "Valid static tokens in memory.", lambda: one(len(config.index)))
    metrics.gauge(
        "kubegate_config_secrets", "Validation-config Secrets in memory.", lambda: one(len(config.index.sources()))
    )
    metrics.gauge(
        "kubegate_config_age_seconds",
        "Seconds since the copy in memory was last known current (0 while the watch runs).",
        lambda: one(config.age),
    )
    metrics.gauge(
        "kubegate_config_generation",
        "Changes applied to the copy in memory since start.",
        lambda: one(config.index.generation),
    )
    metrics.gauge(
        "kubegate_config_last_change_timestamp_seconds",
        "When the copy in memory last changed (POSIX seconds; 0: never).",
        lambda: one(config.last_change or 0.0),
    )
    metrics.gauge(
        "kubegate_config_info",
        "The Kubernetes resourceVersion the copy in memory is at, as a label.",
        lambda: [({"resource_version": config.resource_version}, 1.0)],
    )


@dataclass(frozen=True)
class ClientTokens:
    """What a server that issues client tokens holds besides the static tokens."""

    signing_keys: SigningKeys
    revocations: Revocations
    verifier: JwksClientTokenVerifier
    watches: tuple[Reflector, ...]


def client_tokens(settings: ServerSettings, client: KubeClient) -> ClientTokens | None:
    """Keys, deny-list and verifier of client tokens, when this server issues them (it has an issuer URL)."""
    if settings.issuer_url is None:
        return None
    namespace = settings.operator_namespace
    signing_keys = SigningKeys()
    revocations = Revocations(client, namespace)
    verifier = JwksClientTokenVerifier(
        issuer=settings.issuer_url,
        audience=settings.client_token_audience,
        keys=public_keys(signing_keys.current),
        revoked=revocations.contains,
    )
    watches = (
        Reflector(
            client=client,
            path=path_for(plural="secrets", namespace=namespace),
            sink=signing_keys,
            what="signing keys",
            label_selector=key_watch.LABEL_SELECTOR,
        ),
        Reflector(
            client=client,
            path=path_for(plural="configmaps", namespace=namespace),
            sink=revocations,
            what="revocation list",
            label_selector=revocation_list.LABEL_SELECTOR,
        ),
    )
    return ClientTokens(signing_keys=signing_keys, revocations=revocations, verifier=verifier, watches=watches)


def kubernetes_exchange(settings: ServerSettings, client: KubeClient, tokens: ClientTokens | None) -> Exchange | None:
    """The service-account exchange, when configured; its bindings file is read (and checked) here, at start."""
    if settings.serviceaccount_bindings_file is None or tokens is None or settings.issuer_url is None:
        return None
    return Exchange(
        review=TokenReviewer(
            client,
            audiences=settings.serviceaccount_audiences,
            cache_seconds=settings.serviceaccount_review_cache_seconds,
            max_concurrent=settings.serviceaccount_max_concurrent_reviews,
        ).review,
        namespace_labels=NamespaceLabels(client),
        bindings=bindings.load(Path(settings.serviceaccount_bindings_file)),
        keys=tokens.signing_keys.current,
        issuer=settings.issuer_url,
        audience=settings.client_token_audience,
        max_lifetime=parse_duration(settings.serviceaccount_max_lifetime).total_seconds(),
    )


async def serve(settings: ServerSettings, *, stop: asyncio.Event | None = None) -> None:
    """Run the server until `stop` is set or the process gets SIGTERM or SIGINT."""
    stop = stop or asyncio.Event()
    log_filters.install()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tls = None
    if not settings.insecure_http:
        assert settings.tls_cert_file is not None
        assert settings.tls_key_file is not None
        tls = ReloadingTLS(
            cert_file=settings.tls_cert_file, key_file=settings.tls_key_file, interval=settings.tls_reload_interval
        )
    connection = await asyncio.to_thread(load_connection)
    async with KubeClient(connection, user_agent="kubegate-server", timeout=10.0) as client:
        index = StaticTokenIndex()
        config = ConfigState(index)
        metrics = Metrics()
        config_gauges(metrics, config)
        tokens = client_tokens(settings, client)
        context = ServerContext(
            settings=settings,
            config=config,
            verifier=Verifier(static_tokens=index, client_tokens=tokens.verifier if tokens else None),
            metrics=metrics,
            token_store=KubeStaticTokenStore(client),
            signing_keys=tokens.signing_keys if tokens else None,
            revocations=tokens.revocations if tokens else None,
            kubernetes_exchange=kubernetes_exchange(settings, client, tokens),
        )
        sink = AccessLogSink()
        runner = web.AppRunner(
            build_app(context),
            access_log_class=AccessLogger.bound_to(sink),
            access_log=access_log if settings.access_log else None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        host, port = settings.host_port
        site = web.TCPSite(runner, host, port, ssl_context=tls.context if tls else None, reuse_address=True)
        await site.start()
        watcher = ConfigWatcher(client=client, namespace=settings.operator_namespace, state=config)
        tasks = [
            asyncio.create_task(watcher.run(), name="config-watch"),
            asyncio.create_task(sink.run(), name="access-log"),
            *(asyncio.create_task(w.run(), name=f"watch-{i}") for i, w in enumerate(tokens.watches if tokens else ())),
        ]
        if tls is not None:
            tasks.append(asyncio.create_task(tls.run(), name="tls-reload"))
        # The bound address, not the setting: port 0 asks for a free port, and the log says which one.
        bound = ", ".join(f"{a[0]}:{a[1]}" for a in runner.addresses) or settings.address
        log.info(
            "serving %s on %s; validation config from namespace %s",
            "HTTPS" if tls else "plain HTTP",
            bound,
            settings.operator_namespace,
        )
        try:
            await stop.wait()
        finally:
            log.info("stopping")
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)
            await runner.cleanup()
            sink.flush()
