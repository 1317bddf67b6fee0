"""Opaque OIDC access tokens: asked of the providers that opted in, by introspection or userinfo.

A provider opts in on its resource: `introspection` (RFC 7662: the token is POSTed to the introspection
endpoint, with HTTP Basic client authentication when the provider has a client secret) or, when that is
off, `userinfo` (the token is sent as a bearer token to the userinfo endpoint). The Verifier never hands
this module a credential that is a known static token or looks like a kubegate one, so no kubegate secret
reaches a provider.

Which answers vouch for a token (strict where the answer allows it):
- introspection: `active` is exactly `true`; `exp`, when present, is a number later than now (by our
  clock); `iss`, when present, is the provider's issuer; `token_use`, when present (Dex), is
  `access_token` (a refresh token is meant for the provider alone, see `accept_refresh_tokens`); and when
  the provider lists `audiences`, the answer's `aud` holds one of them, or, without `aud`, its `client_id` is
  one of them (RFC 7662's client the token was issued to). An answer that says nothing about the audience is
  refused: a token for another client must not pass because the provider was terse. Dex puts the token's
  other claims (email, groups, name) in an `ext` object: they count as claims of the answer, below the
  RFC 7662 members, which `ext` cannot replace or add.
- userinfo: a 200 with a non-empty `sub`; 400, 401 and 403 mean "not this provider's token". Userinfo does
  not say whom a token was issued to, so with `audiences` set only an answer carrying a matching `aud`
  vouches: a provider that restricts audiences needs introspection for opaque tokens.
The claims of the answer then become the identity (`identity.authentication_from_claims`) and must meet the
provider's requirements (`identity.check_requirements`: a 403 when they do not).

Every opted-in provider is asked at once (a hint narrows the question to one) and the first that vouches
wins. When none does, one that could not be asked (unreachable, timed out, answered uselessly) makes the
answer VerifierUnavailable (a 503 with Retry-After), never a 401 that may be false; only when every
provider said no is the token Unauthenticated.

Results are cached by the token's SHA-256, never the token, for at most `cache_seconds` and never past the
token's `exp`, in a cache of bounded size (the oldest entry goes first). Only tokens a provider vouched for
are cached: a failure or a "no" is asked again next time. A cached result serves only while its provider's
published config is unchanged, so a removed provider, a revoked opt-in or new requirements take effect at
once. Concurrent lookups of one new token share one round of calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol

from kubegate.contracts.authentication import Authentication
from kubegate.contracts.token_format import MAX_TOKEN_LENGTH, is_visible_ascii, token_digest
from kubegate.validation_config.providers import ProviderConfig
from kubegate.verify.errors import RequirementFailed, Unauthenticated, VerifierUnavailable
from kubegate.verify.oidc.identity import authentication_from_claims, check_requirements
from kubegate.verify.oidc.provider_http import ProviderError

NOT_THIS_PROVIDERS = frozenset({400, 401, 403})
"""Userinfo statuses that mean the token is not (or no longer) this provider's (RFC 6750 section 3.1)."""
INTROSPECTION_MEMBERS = frozenset(
    {"active", "scope", "client_id", "username", "token_type", "exp", "iat", "nbf", "sub", "aud", "iss", "jti"}
    | {"token_use", "ext"}
)
"""What an introspection answer states itself (RFC 7662 section 2.2, and Dex's `token_use` and `ext`)."""
EXTENSION = "ext"

log = logging.getLogger(__name__)


class ProviderDirectory(Protocol):
    """The published OIDC providers (the server's mirror of the operator's provider Secrets)."""

    def all(self) -> Iterable[ProviderConfig]: ...

    def by_name(self, name: str) -> ProviderConfig | None: ...

    def by_issuer(self, issuer: str) -> ProviderConfig | None: ...


class ProviderCalls(Protocol):
    """The calls this module makes to providers: `provider_http.ProviderHttp`, or a fake in tests."""

    async def get_json(self, url: str, *, ca_bundle: str | None, bearer: str | None = None) -> dict[str, Any]: ...

    async def post_form(
        self,
        url: str,
        form: Mapping[str, str],
        *,
        ca_bundle: str | None,
        basic_auth: tuple[str, str] | None = None,
    ) -> dict[str, Any]: ...


Mode = Literal["introspection", "userinfo"]


def opaque_mode(provider: ProviderConfig) -> Mode | None:
    """How `provider` is asked about opaque tokens; None when it is not."""
    if provider.introspection and provider.introspection_endpoint:
        return "introspection"
    if provider.userinfo and provider.userinfo_endpoint:
        return "userinfo"
    return None


@dataclass(frozen=True, slots=True)
class _Entry:
    provider: ProviderConfig
    authentication: Authentication
    until: float


@dataclass(frozen=True, slots=True)
class _CouldNotAsk:
    provider: str
    why: str


_NO: Literal["no"] = "no"
_Outcome = Authentication | RequirementFailed | _CouldNotAsk | Literal["no"]


class OpaqueOidcVerifier:
    """The `OpaqueTokenVerifier` of OIDC providers; one per process."""

    def __init__(
        self,
        *,
        providers: ProviderDirectory,
        http: ProviderCalls,
        cache_seconds: float = 300.0,
        cache_size: int = 10_000,
        accept_refresh_tokens: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """
        `providers`: the published providers, read on every lookup (they come and go).
        `http`: makes the calls; a `ProviderHttp` built with the server's `oidc_provider_timeout` and
        `oidc_provider_max_concurrent`.
        `cache_seconds`: the longest a vouched-for token is remembered (`oidc_cache_seconds`); 0: never.
        `cache_size`: how many tokens are remembered at most (`oidc_cache_size`); 0: none.
        `accept_refresh_tokens`: also accept a token that introspection calls a refresh token (Dex's
        `token_use`). Off by default: a refresh token is meant for the provider alone, and one leaked from a
        confidential client would otherwise be a credential without the client's secret. Dex issues JWT
        access tokens only, so its refresh tokens are the only opaque tokens it has to test with.
        `clock`: the time in seconds since the epoch (compared with `exp`).
        """
        self._providers = providers
        self._http = http
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._token_uses = frozenset({"access_token", "refresh_token"} if accept_refresh_tokens else {"access_token"})
        self._clock = clock
        self._cache: OrderedDict[bytes, _Entry] = OrderedDict()
        self._in_flight: dict[tuple[bytes, tuple[str, ...]], asyncio.Future[Authentication]] = {}

    async def verify(self, token: str, *, provider_hint: str | None = None) -> Authentication:
        """The authentication a provider vouches for `token` with.

        `provider_hint`: a provider's name or issuer; only that provider is asked (unknown, or not opted in:
        Unauthenticated, and no provider is asked). Raises Unauthenticated when no provider vouches,
        RequirementFailed when one does but its requirements are not met, VerifierUnavailable when none
        vouches and one could not be asked.
        """
        if not token or len(token) > MAX_TOKEN_LENGTH or not is_visible_ascii(token):
            raise Unauthenticated("malformed")
        hinted = self._hinted(provider_hint) if provider_hint else None
        digest = token_digest(token)
        cached = self._cached(digest, hinted)
        if cached is not None:
            return cached
        asked = (hinted,) if hinted is not None else tuple(p for p in self._providers.all() if opaque_mode(p))
        if not asked:
            raise Unauthenticated("unknown")
        key = (digest, tuple(provider.name for provider in asked))
        flight = self._in_flight.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._lookup(token, digest, asked))
            self._in_flight[key] = flight
            flight.add_done_callback(partial(self._landed, key))
        # Shielded: a caller that goes away does not cancel the lookup the others wait for.
        return await asyncio.shield(flight)

    def _hinted(self, hint: str) -> ProviderConfig:
        provider = self._providers.by_name(hint) or self._providers.by_issuer(hint)
        if provider is None or opaque_mode(provider) is None:
            log.debug("opaque token with a provider hint that names no provider checking opaque tokens")
            raise Unauthenticated("unknown")
        return provider

    def _cached(self, digest: bytes, hinted: ProviderConfig | None) -> Authentication | None:
        entry = self._cache.get(digest)
        if entry is None:
            return None
        current = self._providers.by_name(entry.provider.name)
        if self._clock() >= entry.until or (current is not entry.provider and current != entry.provider):
            del self._cache[digest]
            return None
        if hinted is not None and hinted.name != entry.provider.name:
            return None
        return entry.authentication

    def _landed(self, key: tuple[bytes, tuple[str, ...]], flight: asyncio.Future[Authentication]) -> None:
        if self._in_flight.get(key) is flight:
            del self._in_flight[key]
        if not flight.cancelled():
            flight.exception()  # marked as read: when every caller has gone, asyncio would warn of it

    async def _lookup(self, token: str, digest: bytes, asked: tuple[ProviderConfig, ...]) -> Authentication:
        questions = {asyncio.ensure_future(self._ask(provider, token, digest)): provider for provider in asked}
        pending = set(questions)
        could_not_ask: list[_CouldNotAsk] = []
        failed: RequirementFailed | None = None
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for question in done:
                    outcome = question.result()
                    if isinstance(outcome, Authentication):
                        self._remember(digest, questions[question], outcome)
                        return outcome
                    if isinstance(outcome, RequirementFailed):
                        failed = failed or outcome
                    elif isinstance(outcome, _CouldNotAsk):
                        could_not_ask.append(outcome)
        finally:
            for question in pending:
                question.cancel()
        if failed is not None:
            raise failed
        if could_not_ask:
            names = ", ".join(sorted(c.provider for c in could_not_ask))
            raise VerifierUnavailable(
                f"the OIDC provider(s) {names} could not be asked about an opaque token; retry later"
            )
        raise Unauthenticated("unknown")

    async def _ask(self, provider: ProviderConfig, token: str, digest: bytes) -> _Outcome:
        """What `provider` says about `token`; never raises (but for cancellation)."""
        try:
            if opaque_mode(provider) == "introspection":
                claims = await self._introspect(provider, token)
            else:
                claims = await self._userinfo(provider, token)
            if claims is None:
                return _NO
            authentication = authentication_from_claims(provider, claims, digest=digest)
            check_requirements(provider, authentication)
        except RequirementFailed as failed:
            return failed
        except Unauthenticated as refused:
            log.debug("OIDC provider %s vouched for an opaque token with unusable claims (%s)", provider.name, refused)
            return _NO
        except VerifierUnavailable as unavailable:
            log.warning("OIDC provider %s could not check an opaque token: %s", provider.name, unavailable)
            return _CouldNotAsk(provider.name, str(unavailable))
        except Exception as exc:  # an answer nobody foresaw must not become a 500 or a false 401
            log.error("OIDC provider %s: checking an opaque token failed: %s", provider.name, type(exc).__name__)
            return _CouldNotAsk(provider.name, type(exc).__name__)
        return authentication

    async def _introspect(self, provider: ProviderConfig, token: str) -> Mapping[str, Any] | None:
        assert provider.introspection_endpoint is not None
        credentials = None
        if provider.client_id and provider.client_secret:
            credentials = (provider.client_id, provider.client_secret)
        try:
            answer = await self._http.post_form(
                provider.introspection_endpoint,
                {"token": token, "token_type_hint": "access_token"},
                ca_bundle=provider.ca_bundle,
                basic_auth=credentials,
            )
        except ProviderError as exc:
            # RFC 7662 answers 200 for any token; anything else (bad client credentials, a wrong endpoint)
            # leaves the question open.
            raise VerifierUnavailable(f"its introspection endpoint failed: {exc}") from None
        if answer.get("active") is not True:
            return None
        token_use = answer.get("token_use")
        if token_use is not None and not (isinstance(token_use, str) and token_use in self._token_uses):
            return None
        if not self._acceptable(provider, answer, client_id=answer.get("client_id")):
            return None
        extension = answer.get(EXTENSION)
        if not isinstance(extension, dict):
            return answer
        claims = {k: v for k, v in extension.items() if k not in INTROSPECTION_MEMBERS}
        claims.update((k, v) for k, v in answer.items() if k != EXTENSION)
        return claims

    async def _userinfo(self, provider: ProviderConfig, token: str) -> Mapping[str, Any] | None:
        assert provider.userinfo_endpoint is not None
        try:
            answer = await self._http.get_json(provider.userinfo_endpoint, ca_bundle=provider.ca_bundle, bearer=token)
        except ProviderError as exc:
            if exc.status in NOT_THIS_PROVIDERS:
                return None
            raise VerifierUnavailable(f"its userinfo endpoint failed: {exc}") from None
        subject = answer.get("sub")
        if not isinstance(subject, str) or not subject:
            return None
        return answer if self._acceptable(provider, answer, client_id=None) else None

    def _acceptable(self, provider: ProviderConfig, answer: Mapping[str, Any], *, client_id: Any) -> bool:
        """Whether the expiry, issuer and audience an answer states allow the token (see the module's text)."""
        expires = answer.get("exp")
        if expires is not None and (
            isinstance(expires, bool) or not isinstance(expires, int | float) or expires <= self._clock()
        ):
            return False
        issuer = answer.get("iss")
        if issuer is not None and issuer != provider.issuer:
            log.warning("OIDC provider %s vouched for a token of another issuer; refused", provider.name)
            return False
        if provider.audiences is None:
            return True
        audience = answer.get("aud")
        if audience is None:
            return isinstance(client_id, str) and client_id in provider.audiences
        held = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
        return any(isinstance(a, str) and a in provider.audiences for a in held)

    def _remember(self, digest: bytes, provider: ProviderConfig, authentication: Authentication) -> None:
        if self._cache_seconds <= 0 or self._cache_size <= 0:
            return
        until = self._clock() + self._cache_seconds
        if authentication.expires_at is not None:
            until = min(until, authentication.expires_at.timestamp())
        self._cache.pop(digest, None)
        self._cache[digest] = _Entry(provider, authentication, until)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
