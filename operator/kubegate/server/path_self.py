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

from aiohttp import web
from pydantic import AwareDatetime, ValidationError

from kubegate.kube import ApiError, ApiUnavailable, NotFound
from kubegate.server.auth import authenticate
from kubegate.server.bodies import RequestModel, read_json
from kubegate.server.context import ServerContext, context_of
from kubegate.server.errors import field_error, from_kube, invalid, unavailable
from kubegate.server.path_tokens import revoke_client_token
from kubegate.server.responses import empty_response, json_response
from kubegate.server.routing import add_route
from kubegate.verify.model import Authentication, Method

log = logging.getLogger(__name__)

PATH = "/auth/v1/self"
EXPIRE_PATH = "/auth/v1/self/expire"


class ExpireSelfRequest(RequestModel):
    """Flipt's ExpireAuthenticationSelfRequest; an empty body expires the token now."""

    expires_at: AwareDatetime | None = None


def register(app: web.Application) -> None:
    add_route(app, "GET", PATH, get_self)
    add_route(app, "PUT", EXPIRE_PATH, expire_self)


async def get_self(request: web.Request) -> web.Response:
    return json_response(await authenticate(request))


async def _expire_client_token(context: ServerContext, caller: Authentication, body: ExpireSelfRequest) -> web.Response:
    """A client token cannot be re-signed with an earlier expiry: it is revoked, now and only now."""
    if context.revocations is None:
        raise invalid(f"this server cannot expire a {caller.method} authentication")
    if body.expires_at is not None and body.expires_at > datetime.now(UTC):
        raise field_error("expiresAt", "a client token can only be expired now: leave expiresAt out")
    until = caller.expires_at.timestamp() if caller.expires_at is not None else None
    await revoke_client_token(context, caller.id, until=until)
    log.info("client token %s revoked at its own request", caller.id)
    return empty_response()


def _from_query(request: web.Request) -> ExpireSelfRequest | None:
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


async def expire_self(request: web.Request) -> web.Response:
    """A static token expires by setting `spec.expiresAt` on its StaticToken (the whole resource, every
    token of it); the answer comes once this server no longer accepts the token at the new time."""
    context = context_of(request)
    caller = await authenticate(request)
    body = _from_query(request) or await read_json(request, ExpireSelfRequest, allow_empty=True)
    now = datetime.now(UTC)
    at = max(body.expires_at or now, now).astimezone(UTC).replace(microsecond=0)
    if caller.method is not Method.TOKEN:
        return await _expire_client_token(context, caller, body)
    record = context.config.index.by_id(caller.id)
    if record is None:
        raise unavailable("the token was removed while the request ran; it is no longer valid")
    try:
        await context.token_store.expire(record.namespace, record.name, at)
    except NotFound:
        pass  # deleted meanwhile: its token is going away anyway
    except (ApiError, ApiUnavailable) as exc:
        raise from_kube(exc, f"expire StaticToken {record.namespace}/{record.name}") from None
    deadline = at.timestamp()

    def applied() -> bool:
        current = context.config.index.by_id(caller.id)
        return current is None or (current.expires_at is not None and current.expires_at <= deadline)

    if not await context.config.wait_until(applied, timeout=context.settings.token_wait_timeout):
        raise unavailable(
            f"the expiry was set on StaticToken {record.namespace}/{record.name}, but this server still sees the "
            f"old one after {context.settings.token_wait_timeout:.0f}s; the token stops working once the "
            "operator updates the validation config"
        )
    log.info(
        "token %s (StaticToken %s/%s) expires at %s at its own request", caller.id, record.namespace, record.name, at
    )
    return empty_response()
