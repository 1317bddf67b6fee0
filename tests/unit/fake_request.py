"""A `kubegate.web.request.Request` built by hand: handlers run as plain functions, without a server."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from kubegate.contracts.authentication import Authentication, Identity, Method


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


def authentication(
    *groups: str,
    username: str = "statictoken:team:app",
    method: Method = Method.TOKEN,
    claims: Mapping[str, Any] | None = None,
) -> Authentication:
    """A verified caller, as the adapter hands it to a handler."""
    now = datetime(2030, 1, 1, tzinfo=UTC)
    return Authentication(
        id="9f0c1c43-5d2e-4a57-9a0e-2d7f0b6c9d11",
        method=method,
        expires_at=None,
        created_at=now,
        updated_at=now,
        metadata={},
        identity=Identity(username=username, uid="u", groups=groups, claims=dict(claims or {})),
    )
