"""The request as handlers see it: a small read-only view, whatever HTTP framework received it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from multidict import CIMultiDictProxy, MultiMapping

from kubegate.verify import Authentication


class Request(Protocol):
    """What a handler may read. The server (`web.httpserver.request`) implements it over what it parsed;
    unit tests build `tests/unit/fake_request.FakeRequest`."""

    @property
    def method(self) -> str: ...

    @property
    def params(self) -> Mapping[str, str]:
        """The route's path parameters (`{id}` in `/auth/v1/tokens/{id}`)."""
        ...

    @property
    def query(self) -> MultiMapping[str]: ...

    @property
    def query_string(self) -> str: ...

    @property
    def headers(self) -> CIMultiDictProxy[str]: ...

    @property
    def cookies(self) -> Mapping[str, str]: ...

    @property
    def content_type(self) -> str:
        """The media type of the body without parameters, lower case; `application/octet-stream` when absent
        (as aiohttp reports it)."""
        ...

    @property
    def body(self) -> bytes:
        """The body, read before the handler runs on routes that declare `reads_body`; empty otherwise."""
        ...

    @property
    def authentication(self) -> Authentication | None:
        """The caller, on routes declared `Authenticated` (set before the handler runs); None elsewhere."""
        ...

    def authenticated_as(self, authentication: Authentication) -> None:
        """Record who the request authenticated as, for the access log (public routes that verify a
        credential from their body, such as the TokenReview webhook)."""
        ...


def caller(request: Request) -> Authentication:
    """The caller of a route declared `Authenticated`; a programming error on any other route."""
    authentication = request.authentication
    if authentication is None:
        raise RuntimeError("this handler runs on a public route: declare it Authenticated to read the caller")
    return authentication
