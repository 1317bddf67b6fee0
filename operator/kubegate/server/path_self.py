"""`GET /auth/v1/self` (who am I) and `PUT /auth/v1/self/expire` (end my own token), as in Flipt.

The expiry comes as Flipt's Go SDK sends it, in the query (`?expiresAt=<RFC 3339>`), or in a JSON body
(kubegate's older form); neither: now. A time in the past also means now: Flipt stores it, which refuses
the token from then on all the same, and its SDK sends 1970-01-01T00:00:00Z when the caller gives no time.
kubegate records now rather than the past time, so that the grace period before the operator deletes an
expired StaticToken (`--delete-expired-after`) counts from the moment the token ended.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pydantic import AwareDatetime, ValidationError

from kubegate.contracts.authentication import Authentication, Method
from kubegate.kube import ApiError, ApiUnavailable, NotFound
from kubegate.server.path_tokens import TokenPaths
from kubegate.web.bodies import RequestModel, read_json
from kubegate.web.errors import field_error, from_kube, invalid, unavailable
from kubegate.web.request import Request, caller
from kubegate.web.responses import Response, empty_response, json_response
from kubegate.web.routes import Authenticated, Route

log = logging.getLogger(__name__)

PATH = "/auth/v1/self"
EXPIRE_PATH = "/auth/v1/self/expire"


class ExpireSelfRequest(RequestModel):
    """Flipt's ExpireAuthenticationSelfRequest; an empty body expires the token now."""

    expires_at: AwareDatetime | None = None


class SelfService(TokenPaths):
    """The caller's own authentication: read it, or end it."""

    def routes(self) -> list[Route]:
        return [
            Route("GET", PATH, self.get_self, Authenticated()),
            Route("PUT", EXPIRE_PATH, self.expire_self, Authenticated(), reads_body=True),
        ]

    async def get_self(self, request: Request) -> Response:
        return json_response(caller(request))

    async def expire_self(self, request: Request) -> Response:
        """A static token expires by setting `spec.expiresAt` on its StaticToken (the whole resource, every
        token of it); the answer comes once this server no longer accepts the token at the new time."""
        settings, config = self._settings, self._config
        authentication = caller(request)
        body = _from_query(request) or read_json(request, ExpireSelfRequest, allow_empty=True)
        if authentication.method is not Method.TOKEN:
            return await self._expire_client_token(authentication, body)
        now = datetime.now(UTC)
        at = max(body.expires_at or now, now).astimezone(UTC).replace(microsecond=0)
        record = config.index.by_id(authentication.id)
        if record is None:
            raise unavailable("the token was removed while the request ran; it is no longer valid")
        try:
            await self._store.expire(record.namespace, record.name, at)
        except NotFound:
            pass  # deleted meanwhile: its token is going away anyway
        except (ApiError, ApiUnavailable) as exc:
            raise from_kube(exc, f"expire StaticToken {record.namespace}/{record.name}") from None
        deadline = at.timestamp()
        config.expire_provisional(authentication.id, deadline)

        def applied() -> bool:
            current = config.index.by_id(authentication.id)
            return current is None or (current.expires_at is not None and current.expires_at <= deadline)

        if not await config.wait_until(applied, timeout=settings.token_wait_timeout):
            raise unavailable(
                f"the expiry was set on StaticToken {record.namespace}/{record.name}, but this server still sees "
                f"the old one after {settings.token_wait_timeout:.0f}s; the token stops working once the "
                "operator updates the validation config"
            )
        log.info(
            "token %s (StaticToken %s/%s) expires at %s at its own request",
            authentication.id,
            record.namespace,
            record.name,
            at,
        )
        return empty_response()

    async def _expire_client_token(self, authentication: Authentication, body: ExpireSelfRequest) -> Response:
        """A client token cannot be re-signed with an earlier expiry: it is revoked, now and only now."""
        if self._revoker is None:
            raise invalid(f"this server cannot expire a {authentication.method} authentication")
        if authentication.identity.claims.get("iss") != self._settings.issuer_url:
            # An OIDC provider's own access token: kubegate did not sign it and cannot shorten it.
            raise invalid("an OIDC provider's access token cannot be expired here: revoke it at the provider")
        if body.expires_at is not None and body.expires_at > datetime.now(UTC):
            raise field_error("expiresAt", "a client token can only be expired now: leave expiresAt out")
        expires_at = authentication.expires_at
        until = expires_at.timestamp() if expires_at is not None else None
        await self._revoker.revoke(authentication.id, until=until)
        log.info("client token %s revoked at its own request", authentication.id)
        return empty_response()


def _from_query(request: Request) -> ExpireSelfRequest | None:
    """The expiry in the query, as grpc-gateway reads it (JSON or proto field name); None when absent."""
    raw = request.query.get("expiresAt") or request.query.get("expires_at")
    if not raw:
        return None
    try:
        return ExpireSelfRequest.model_validate({"expiresAt": raw})
    except ValidationError as exc:
        # Not the value itself: a client that mixed up its parameters may have put a token there.
        reason = exc.errors(include_input=False)[0]["msg"]
        raise field_error("expiresAt", f"must be an RFC 3339 time such as 2030-01-01T00:00:00Z ({reason})") from None
