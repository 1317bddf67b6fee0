"""`/healthz` (the process runs), `/readyz` (every required source is loaded) and `/metrics` (Prometheus)."""

from __future__ import annotations

from kubegate.server.metrics import Metrics
from kubegate.state.config import ConfigState
from kubegate.state.readiness import Readiness
from kubegate.web.errors import not_ready
from kubegate.web.request import Request
from kubegate.web.responses import Response, json_document
from kubegate.web.routes import Public, Route

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Health:
    def __init__(self, *, readiness: Readiness, config: ConfigState, metrics: Metrics) -> None:
        self._readiness = readiness
        self._config = config
        self._metrics = metrics

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/healthz", self.healthz, Public()),
            Route("GET", "/readyz", self.readyz, Public()),
            Route("GET", "/metrics", self.metrics, Public()),
        ]

    async def healthz(self, request: Request) -> Response:
        return json_document({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """Ready once every required source (the validation config) is in memory; it stays ready when the
        Kubernetes API goes away afterwards, because the copy in memory keeps serving. Each source is listed
        with its own state."""
        if not self._readiness.ready():
            raise not_ready()
        config = self._config
        return json_document(
            {
                "status": "ok",
                "tokens": len(config.index),
                "resourceVersion": config.resource_version,
                "sources": {s.name: {"ready": s.ready, "required": s.required} for s in self._readiness.statuses()},
            }
        )

    async def metrics(self, request: Request) -> Response:
        return Response(body=self._metrics.render().encode("utf-8"), headers={"Content-Type": METRICS_CONTENT_TYPE})
