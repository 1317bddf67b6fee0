"""Everything the handlers of one server share, reached through the aiohttp application."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from kubegate.methods.kubernetes.exchange import Exchange
from kubegate.methods.token.store import StaticTokenStore
from kubegate.server.config_state import ConfigState
from kubegate.server.metrics import Metrics
from kubegate.server.revocations import Revocations
from kubegate.server.signing_keys import SigningKeys
from kubegate.settings import ServerSettings
from kubegate.verify import Verifier


@dataclass(kw_only=True)
class ServerContext:
    settings: ServerSettings
    config: ConfigState
    verifier: Verifier
    metrics: Metrics
    token_store: StaticTokenStore
    """Creates, expires and deletes StaticToken resources (the Kubernetes API; a fake in unit tests)."""
    signing_keys: SigningKeys | None = None
    """The client-token keys the operator publishes; None when this server issues no client tokens."""
    revocations: Revocations | None = None
    """The deny-list of client tokens; None when this server issues no client tokens."""
    kubernetes_exchange: Exchange | None = None
    """The service-account exchange; None when the Kubernetes method is off."""


CONTEXT = web.AppKey("kubegate", ServerContext)


def context_of(request: web.Request) -> ServerContext:
    return request.app[CONTEXT]
