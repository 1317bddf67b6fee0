"""`/healthz` (the process runs), `/readyz` (the validation config is loaded) and `/metrics` (Prometheus)."""

from __future__ import annotations

from aiohttp import web

from kubegate.server.context import context_of
from kubegate.server.errors import not_ready
from kubegate.server.routing import add_route

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def register(app: web.Application) -> None:
    add_route(app, "GET", "/healthz", healthz)
    add_route(app, "GET", "/readyz", readyz)
    add_route(app, "GET", "/metrics", metrics)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready once the first full list of the validation config is in memory; it stays ready when the
    Kubernetes API goes away afterwards, because the copy in memory keeps serving."""
    config = context_of(request).config
    if not config.ready:
        raise not_ready()
    return web.json_response({"status": "ok", "tokens": len(config.index), "resourceVersion": config.resource_version})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=context_of(request).metrics.render().encode("utf-8"), headers={"Content-Type": METRICS_CONTENT_TYPE}
    )
