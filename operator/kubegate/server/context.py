"""Everything the handlers of one server share, reached through the aiohttp application."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from kubegate.methods.token.store import StaticTokenStore
from kubegate.server.config_state import ConfigState
from kubegate.server.metrics import Metrics
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


CONTEXT = web.AppKey("kubegate", ServerContext)


def context_of(request: web.Request) -> ServerContext:
    return request.app[CONTEXT]
