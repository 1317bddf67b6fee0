"""A `kubegate.web.request.Request` built by hand: handlers run as plain functions, without a server."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from kubegate.verify import Authentication


@dataclass
class FakeRequest:
    method: str = "GET"
    params: Mapping[str, str] = field(default_factory=dict)
    query_pairs: list[tuple[str, str]] = field(default_factory=list)
    header_pairs: list[tuple[str, str]] = field(default_factory=list)
    cookies: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    authentication: Authentication | None = None

    @property
    def query(self) -> MultiDictProxy[str]:
        return MultiDictProxy(MultiDict(self.query_pairs))

    @property
    def query_string(self) -> str:
        return "&".join(f"{k}={v}" for k, v in self.query_pairs)

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return CIMultiDictProxy(CIMultiDict(self.header_pairs))

    @property
    def content_type(self) -> str:
        raw = self.headers.get("Content-Type")
        return raw.split(";")[0].strip().lower() if raw else "application/octet-stream"

    def authenticated_as(self, authentication: Authentication) -> None:
        self.authentication = authentication
