"""The per-request credential check every `Authenticated` route gets, and group requirements.

The adapter runs it before the handler; public routes that take a credential in their body (the
TokenReview webhook) call `verify_credential`. Both count every verification by surface and result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from kubegate.verify import COOKIE_NAME, Authentication, Unauthenticated, Verifier, VerifierUnavailable, credential_from
from kubegate.verify.credentials import check_credential
from kubegate.verify.errors import RequirementFailed
from kubegate.verify.requirements import Requirement
from kubegate.web.errors import forbidden, not_ready, unauthenticated, unavailable
from kubegate.web.request import Request

PROVIDER_HINT_HEADER = "X-Kubegate-OIDC-Provider"
"""Names the OIDC provider (its name or issuer URL) an opaque access token comes from, as FLAAT's OP hint:
only that provider is asked. Also accepted as the query parameter `oidc_provider`."""
PROVIDER_HINT_QUERY = "oidc_provider"


class VerificationObserver(Protocol):
    """Counts verifications (the server's metrics)."""

    def observe_verification(self, surface: str, result: str, seconds: float) -> None: ...


class Authenticator:
    def __init__(self, *, verifier: Verifier, ready: Callable[[], bool], observer: VerificationObserver) -> None:
        """`ready`: whether the static tokens are loaded; until then every check answers 503."""
        self.verifier = verifier
        self.ready = ready
        self._observe = observer.observe_verification

    async def authenticate(self, request: Request, *, surface: str) -> Authentication:
        """The caller's authentication, from its bearer token or cookie; 401 or 503 (not loaded yet) otherwise.

        On every authenticated request's path, so kept flat: a static token is verified without an await.
        """
        credential = self._credential(request, surface)
        authentication = self._now(credential, surface)
        if authentication is not None:
            return authentication
        try:
            return await self._verified_later(credential, surface, provider_hint(request))
        except Unauthenticated:
            raise unauthenticated() from None
        except RequirementFailed as exc:
            raise forbidden(exc.message, requirement=exc.detail) from None
        except VerifierUnavailable as exc:
            raise unavailable(f"cannot verify the credential now: {exc}") from None

    def authenticate_now(self, request: Request, *, surface: str) -> Authentication | None:
        """`authenticate` for a credential that needs no waiting (a static token, a seen OIDC token); None for
        any other, having counted nothing: then `authenticate` decides it."""
        return self._now(self._credential(request, surface), surface)

    async def verify_credential(
        self, credential: str, *, surface: str, provider_hint: str | None = None
    ) -> Authentication:
        """Verify and count a credential received in a body; raises Unauthenticated, RequirementFailed,
        VerifierUnavailable."""
        checked = self._checked(credential, surface)
        authentication = self._verified_now(checked, surface)
        if authentication is None:
            authentication = await self._verified_later(checked, surface, provider_hint)
        return authentication

    def verify_credential_now(self, credential: str, *, surface: str) -> Authentication | None:
        """`verify_credential` for a credential that needs no waiting; None for any other, having counted
        nothing."""
        return self._verified_now(self._checked(credential, surface), surface)

    def _checked(self, credential: str, surface: str) -> str:
        try:
            return check_credential(credential)
        except Unauthenticated as exc:
            self._observe(surface, exc.reason, 0.0)
            raise

    def _credential(self, request: Request, surface: str) -> str:
        if not self.ready():
            raise not_ready()
        authorization = request.headers.getall("Authorization", ())
        try:
            # The header wins over the cookie, so the cookie is read only without one.
            return credential_from(authorization, None if authorization else _cookie(request))
        except Unauthenticated as exc:
            self._observe(surface, exc.reason, 0.0)
            raise unauthenticated() from None

    def _now(self, credential: str, surface: str) -> Authentication | None:
        try:
            return self._verified_now(credential, surface)
        except Unauthenticated:
            raise unauthenticated() from None
        except RequirementFailed as exc:
            raise forbidden(exc.message, requirement=exc.detail) from None

    def _verified_now(self, credential: str, surface: str) -> Authentication | None:
        """Verify a well-formed credential that needs no waiting (a static token) and count the result;
        None for one that `_verified_later` must decide."""
        started = time.perf_counter()
        try:
            authentication = self.verifier.verify_now(credential)
        except Unauthenticated as exc:
            self._observe(surface, exc.reason, time.perf_counter() - started)
            raise
        except RequirementFailed:
            self._observe(surface, "forbidden", time.perf_counter() - started)
            raise
        if authentication is not None:
            self._observe(surface, "ok", time.perf_counter() - started)
        return authentication

    async def _verified_later(self, credential: str, surface: str, hint: str | None) -> Authentication:
        """Verify a well-formed credential that may need waiting (a JWT, an opaque OIDC token) and count the
        result with its latency."""
        started = time.perf_counter()
        try:
            authentication = await self.verifier.verify(credential, provider_hint=hint)
        except Unauthenticated as exc:
            self._observe(surface, exc.reason, time.perf_counter() - started)
            raise
        except RequirementFailed:
            self._observe(surface, "forbidden", time.perf_counter() - started)
            raise
        except VerifierUnavailable:
            self._observe(surface, "unavailable", time.perf_counter() - started)
            raise
        self._observe(surface, "ok", time.perf_counter() - started)
        return authentication


def provider_hint(request: Request) -> str | None:
    """The OIDC provider hint of a request: the header, else the query parameter; None without either."""
    hint = request.headers.get(PROVIDER_HINT_HEADER) or request.query.get(PROVIDER_HINT_QUERY)
    return hint or None


def _cookie(request: Request) -> str | None:
    if "Cookie" not in request.headers:
        return None
    return request.cookies.get(COOKIE_NAME)


def require(authentication: Authentication, requirement: Requirement, *, action: str | None = None) -> None:
    """403 unless the caller satisfies `requirement`; the message says what `action` requires and what the
    caller lacks, the detail carries the requirement."""
    result = requirement.evaluate(authentication)
    if not result.satisfied:
        raise forbidden(result.message(authentication.identity.username, action=action), requirement=result.detail())
