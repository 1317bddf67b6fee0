"""Wires the server together: settings -> API client -> state and its watchers -> verifier -> methods and
paths, each with its own state -> routes on the HTTP adapter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kubegate.client_tokens import key_watch
from kubegate.client_tokens.key_watch import SigningKeys
from kubegate.contracts.api_paths import path_for
from kubegate.kube import KubeClient, load_connection
from kubegate.kube.reflector import Reflector
from kubegate.methods.kubernetes import bindings
from kubegate.methods.kubernetes.exchange import Exchange
from kubegate.methods.kubernetes.http import KubernetesMethod
from kubegate.methods.kubernetes.namespaces import NamespaceLabels
from kubegate.methods.kubernetes.review import TokenReviewer
from kubegate.methods.token.http import TokenMethod
from kubegate.methods.token.store import KubeStaticTokenStore, StaticTokenStore
from kubegate.resources.duration import parse_duration
from kubegate.server.deny_list import DenyListWriter
from kubegate.server.metrics import Metrics
from kubegate.server.path_health import Health
from kubegate.server.path_method import MethodList
from kubegate.server.path_self import SelfService
from kubegate.server.path_tokenreview import TokenReviewWebhook
from kubegate.server.path_tokens import ClientTokenRevoker, TokenListing
from kubegate.server.path_verify import ForwardAuth
from kubegate.server.path_wellknown import Discovery
from kubegate.server.tls import ReloadingTLS
from kubegate.settings import ServerSettings
from kubegate.state import revocations as revocation_list
from kubegate.state.config import ConfigState
from kubegate.state.config_watch import ConfigWatcher
from kubegate.state.providers import Providers, provider_reflector
from kubegate.state.public_keys import PublicKeys
from kubegate.state.readiness import Readiness
from kubegate.state.revocations import Revocations
from kubegate.verify import StaticTokenIndex, Verifier
from kubegate.verify.client_tokens import JwksClientTokenVerifier
from kubegate.verify.credentials import MAX_CREDENTIAL_LENGTH
from kubegate.verify.oidc.access_tokens import OidcAccessTokenVerifier
from kubegate.verify.oidc.opaque import OpaqueOidcVerifier
from kubegate.verify.oidc.provider_http import ProviderHttp
from kubegate.verify.oidc.verifiers import oidc_verifiers
from kubegate.web.authenticate import Authenticator
from kubegate.web.httpserver.access_log import AccessLog
from kubegate.web.httpserver.app import HttpApp
from kubegate.web.httpserver.listener import listening
from kubegate.web.httpserver.protocol import Limits
from kubegate.web.routes import Route

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 10.0


@dataclass(kw_only=True)
class ServerParts:
    """What one server is made of; each part goes to the methods and paths that need it, nothing else."""

    settings: ServerSettings
    config: ConfigState
    verifier: Verifier
    metrics: Metrics
    token_store: StaticTokenStore
    """Creates, expires and deletes StaticToken resources (the Kubernetes API; a fake in unit tests)."""
    public_keys: PublicKeys | None = None
    """The public half of the client-token keys; None when this server issues no client tokens."""
    revocations: Revocations | None = None
    """The deny-list of client tokens; None when this server issues no client tokens."""
    deny_list: DenyListWriter | None = None
    """Writes the deny-list; None when this server issues no client tokens."""
    kubernetes_exchange: Exchange | None = None
    """The service-account exchange; None when the Kubernetes method is off."""
    providers: Providers | None = None
    """The published OIDC providers; None in unit tests that have none."""

    def readiness(self) -> Readiness:
        readiness = Readiness()
        config = self.config
        readiness.add("staticTokens", lambda: config.ready, required=True)
        if self.providers is not None:
            providers = self.providers
            readiness.add("oidcProviders", lambda: providers.loaded, required=False)
        if self.public_keys is not None:
            keys = self.public_keys
            readiness.add("clientTokenKeys", lambda: keys.loaded, required=False)
        if self.revocations is not None:
            revoked = self.revocations
            readiness.add("revocations", lambda: revoked.loaded, required=False)
        return readiness

    def authenticator(self) -> Authenticator:
        config = self.config
        # The one required source of `readiness`, read directly: this runs on every authenticated request.
        return Authenticator(verifier=self.verifier, ready=lambda: config.ready, observer=self.metrics)

    def routes(self, authenticator: Authenticator) -> list[Route]:
        """Every route of the server, each method's and path's with its own state."""
        settings = self.settings
        revoker = None
        if self.deny_list is not None:
            revoker = ClientTokenRevoker(self.deny_list, self.public_keys)
        kubernetes = KubernetesMethod(self.kubernetes_exchange)
        parts = (
            Health(readiness=self.readiness(), config=self.config, metrics=self.metrics),
            MethodList(kubernetes_enabled=kubernetes.enabled),
            TokenMethod(settings=settings, store=self.token_store, config=self.config),
            kubernetes,
            Discovery(issuer=settings.issuer_url, public_keys=self.public_keys),
            SelfService(settings=settings, config=self.config, store=self.token_store, revoker=revoker),
            TokenListing(settings=settings, config=self.config, store=self.token_store, revoker=revoker),
            ForwardAuth(),
            TokenReviewWebhook(settings, authenticator),
        )
        return [route for part in parts for route in part.routes()]


def build_app(parts: ServerParts) -> HttpApp:
    """The application serving `parts` (tests serve it with in-memory state)."""
    authenticator = parts.authenticator()
    return HttpApp(parts.routes(authenticator), authenticator=authenticator, count_request=parts.metrics.count_request)


def limits(settings: ServerSettings) -> Limits:
    """What one request may send, and how long a client may take, from the settings."""
    return Limits(
        max_body_bytes=settings.max_body_bytes,
        # Room for the longest credential in an Authorization header.
        max_header_field_bytes=MAX_CREDENTIAL_LENGTH + 64,
        idle_timeout=settings.idle_timeout,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
    )


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
    deny_list: DenyListWriter
    verifier: JwksClientTokenVerifier
    watches: tuple[Reflector, ...]


def client_tokens(settings: ServerSettings, client: KubeClient) -> ClientTokens | None:
    """Keys, deny-list and verifier of client tokens, when this server issues them (it has an issuer URL)."""
    if settings.issuer_url is None:
        return None
    namespace = settings.operator_namespace
    signing_keys = SigningKeys()
    revocations = Revocations()
    verifier = JwksClientTokenVerifier(
        issuer=settings.issuer_url,
        audience=settings.client_token_audience,
        keys=signing_keys.public.current,
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
    return ClientTokens(
        signing_keys=signing_keys,
        revocations=revocations,
        deny_list=DenyListWriter(client, namespace, revocations),
        verifier=verifier,
        watches=watches,
    )


@dataclass(frozen=True)
class OidcVerification:
    """What verifies OIDC providers' access tokens: their published configs, kept current by `watch`, and
    the verifiers of JWTs and of opaque tokens, which share one HTTP client for the providers."""

    providers: Providers
    http: ProviderHttp
    access_tokens: OidcAccessTokenVerifier
    opaque: OpaqueOidcVerifier
    watch: Reflector


def oidc_verification(settings: ServerSettings, client: KubeClient) -> OidcVerification:
    providers = Providers()
    http = ProviderHttp(
        timeout=settings.oidc_provider_timeout,
        max_concurrent=settings.oidc_provider_max_concurrent,
        user_agent="kubegate-server",
    )
    verifiers = oidc_verifiers(
        providers,
        http,
        leeway=settings.oidc_leeway,
        jwks_refetch_cooldown=settings.oidc_jwks_refetch_cooldown,
        cache_seconds=settings.oidc_cache_seconds,
        cache_size=settings.oidc_cache_size,
        accept_refresh_tokens=settings.oidc_accept_refresh_tokens,
    )
    return OidcVerification(
        providers=providers,
        http=http,
        access_tokens=verifiers.access_tokens,
        opaque=verifiers.opaque,
        watch=provider_reflector(client, settings.operator_namespace, providers),
    )


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


async def serve(
    settings: ServerSettings, *, stop: asyncio.Event | None = None, sock: socket.socket | None = None
) -> None:
    """Run the server until `stop` is set or the process gets SIGTERM or SIGINT; on `sock` when given (a
    worker process serves the socket its parent bound), else on the settings' address."""
    stop = stop or asyncio.Event()
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
        oidc = oidc_verification(settings, client)
        parts = ServerParts(
            settings=settings,
            config=config,
            verifier=Verifier(
                static_tokens=index,
                client_tokens=tokens.verifier if tokens else None,
                oidc=oidc.access_tokens,
                opaque=oidc.opaque,
                static_token_prefix=settings.static_token_prefix,
            ),
            metrics=metrics,
            token_store=KubeStaticTokenStore(client),
            public_keys=tokens.signing_keys.public if tokens else None,
            revocations=tokens.revocations if tokens else None,
            deny_list=tokens.deny_list if tokens else None,
            kubernetes_exchange=kubernetes_exchange(settings, client, tokens),
            providers=oidc.providers,
        )
        host, port = settings.host_port
        async with listening(
            build_app(parts),
            limits=limits(settings),
            host=host,
            port=port,
            sock=sock,
            ssl_context=tls.context if tls else None,
            access_log=AccessLog() if settings.access_log and AccessLog.enabled() else None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        ) as listener:
            watcher = ConfigWatcher(client=client, namespace=settings.operator_namespace, state=config)
            tasks = [
                asyncio.create_task(watcher.run(), name="config-watch"),
                asyncio.create_task(oidc.watch.run(), name="oidc-providers"),
                *(
                    asyncio.create_task(w.run(), name=f"watch-{i}")
                    for i, w in enumerate(tokens.watches if tokens else ())
                ),
            ]
            if tls is not None:
                tasks.append(asyncio.create_task(tls.run(), name="tls-reload"))
            # The bound address, not the setting: port 0 asks for a free port, and the log says which one.
            log.info(
                "serving %s on %s; validation config from namespace %s",
                "HTTPS" if tls else "plain HTTP",
                ", ".join(listener.addresses) or settings.address,
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
                await oidc.http.close()
