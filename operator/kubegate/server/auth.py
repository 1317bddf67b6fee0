"""The per-request credential check shared by every authenticated path, and group requirements."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable

from aiohttp import web

from kubegate.server.context import CONTEXT, ServerContext
from kubegate.server.errors import forbidden, not_ready, unauthenticated, unavailable
from kubegate.verify import COOKIE_NAME, Authentication, Unauthenticated, VerifierUnavailable, credential_from
from kubegate.verify.credentials import check_credential

AUTHENTICATION = web.RequestKey("kubegate_authentication", Authentication)
"""Set on a request once it is authenticated; the access log reads the token id from it."""


async def verify_credential(context: ServerContext, credential: str, *, surface: str) -> Authentication:
    """Verify and count a credential received in a body; raises Unauthenticated, VerifierUnavailable."""
    try:
        checked = check_credential(credential)
    except Unauthenticated as exc:
        context.metrics.observe_verification(surface, exc.reason, 0.0)
        raise
    authentication = _verified_now(context, checked, surface)
    if authentication is None:
        authentication = await _verified_later(context, checked, surface)
    return authentication


async def authenticate(request: web.Request, *, surface: str = "api") -> Authentication:
    """The caller's authentication, from its bearer token or cookie; 401 or 503 (not loaded yet) otherwise.

    On every authenticated request's path, so kept flat: a static token is verified without an await.
    """
    context: ServerContext = request.app[CONTEXT]
    if not context.config.ready:
        raise not_ready()
    authorization = request.headers.getall("Authorization", ())
    try:
        # The header wins over the cookie, so the cookie is read only without one.
        credential = credential_from(authorization, None if authorization else _cookie(request))
    except Unauthenticated as exc:
        context.metrics.observe_verification(surface, exc.reason, 0.0)
        raise unauthenticated() from None
    try:
        authentication = _verified_now(context, credential, surface)
        if authentication is None:
            authentication = await _verified_later(context, credential, surface)
    except Unauthenticated:
        raise unauthenticated() from None
    except VerifierUnavailable as exc:
        raise unavailable(f"cannot verify the credential now: {exc}") from None
    request[AUTHENTICATION] = authentication
    return authentication


def _verified_now(context: ServerContext, credential: str, surface: str) -> Authentication | None:
    """Verify a well-formed credential that needs no waiting (a static token) and count the result;
    None for one that `_verified_later` must decide."""
    started = time.perf_counter()
    try:
        authentication = context.verifier.verify_now(credential)
    except Unauthenticated as exc:
        context.metrics.observe_verification(surface, exc.reason, time.perf_counter() - started)
        raise
    if authentication is not None:
        context.metrics.observe_verification(surface, "ok", time.perf_counter() - started)
    return authentication


async def _verified_later(context: ServerContext, credential: str, surface: str) -> Authentication:
    """Verify a well-formed credential that may need waiting (a JWT) and count the result with its latency."""
    started = time.perf_counter()
    try:
        authentication = await context.verifier.verify(credential)
    except Unauthenticated as exc:
        context.metrics.observe_verification(surface, exc.reason, time.perf_counter() - started)
        raise
    except VerifierUnavailable:
        context.metrics.observe_verification(surface, "unavailable", time.perf_counter() - started)
        raise
    context.metrics.observe_verification(surface, "ok", time.perf_counter() - started)
    return authentication


def _cookie(request: web.Request) -> str | None:
    if "Cookie" not in request.headers:
        return None
    return request.cookies.get(COOKIE_NAME)


def member_of_any(authentication: Authentication, groups: Collection[str]) -> bool:
    return any(group in groups for group in authentication.identity.groups)


def require_any_group(authentication: Authentication, groups: Iterable[str], *, action: str) -> None:
    """403 unless the caller is in at least one of `groups`; the message names the groups."""
    allowed = list(groups)
    if member_of_any(authentication, allowed):
        return
    raise forbidden(
        f"{action} requires membership in one of the groups {', '.join(allowed) or '(none configured)'}; "
        f"{authentication.identity.username} is not a member",
        requirement={"requirement": "group", "anyOf": allowed},
    )
