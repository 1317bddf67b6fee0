"""`GET /auth/v1/tokens`, `GET /auth/v1/tokens/{id}` and `DELETE /auth/v1/tokens/{id}`: Flipt's
authentication listing and deletion, over the tokens this server accepts.

The listing takes the query Flipt's Go SDK always sends (`method=METHOD_NONE&limit=0&pageToken=`) with
Flipt's meaning: limit 0 is the default page, a larger limit than the maximum is cut to it.

An `{id}` that is not of a token id's shape may be a token pasted in by mistake: it is answered 404
without repeating it, and never stored or logged.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import logging
import time

from kubegate.contracts.authentication import Method, ResponseModel
from kubegate.contracts.token_format import is_token_id
from kubegate.kube import ApiError, ApiUnavailable
from kubegate.methods.token.store import StaticTokenStore
from kubegate.server.deny_list import DenyListWriter, RevocationListFull
from kubegate.settings import ServerSettings
from kubegate.state.config import ConfigState
from kubegate.state.public_keys import PublicKeys
from kubegate.verify import Authentication, StaticTokenRecord
from kubegate.verify.requirements import Requirement
from kubegate.web.authenticate import require
from kubegate.web.errors import field_error, from_kube, not_found, unavailable
from kubegate.web.request import Request, caller
from kubegate.web.responses import Response, empty_response, json_response
from kubegate.web.routes import Authenticated, Route

log = logging.getLogger(__name__)

PATH = "/auth/v1/tokens"
ITEM_PATH = "/auth/v1/tokens/{id}"
DEFAULT_LIMIT = 25
MAX_LIMIT = 100
ALL_METHODS = "METHOD_NONE"
"""Flipt's method filter for "every method" (its enum's zero value)."""
# Used only before the operator published its signing keys (which say how long client tokens live).
MAX_CLIENT_TOKEN_LIFETIME = 24 * 3600
_PAGE_TOKEN_PREFIX = "after:"
NOT_AN_ID_MESSAGE = (
    "no token has this id: a token id is a UUID, as GET /auth/v1/self and GET /auth/v1/tokens show it; "
    "the path never takes a token itself"
)


class ListAuthenticationsResponse(ResponseModel):
    authentications: list[Authentication]
    next_page_token: str
    """Pass as pageToken for the next page; empty on the last page."""


class ClientTokenRevoker:
    """Revokes client tokens through the deny-list, for as long as they can live."""

    def __init__(self, writer: DenyListWriter, public_keys: PublicKeys | None) -> None:
        self._writer = writer
        self._public_keys = public_keys

    async def revoke(self, token_id: str, *, until: float | None) -> None:
        """Deny a client token on every replica until it would have expired anyway.

        Client tokens are stateless: an id that is no static token is taken for one, and without its expiry
        (`until` None) it is denied for the longest lifetime a client token can have.
        """
        if until is None:
            keyset = self._public_keys.current() if self._public_keys is not None else None
            lifetime = keyset.max_token_lifetime_seconds if keyset is not None else MAX_CLIENT_TOKEN_LIFETIME
            until = time.time() + lifetime
        try:
            await self._writer.revoke(token_id, until=until)
        except RevocationListFull as exc:
            raise unavailable(str(exc)) from None
        except (ApiError, ApiUnavailable) as exc:
            raise from_kube(exc, "write the revocation list") from None


class TokenPaths:
    """What the token-management paths share: this server's tokens, where StaticTokens are written, and
    the revoker of client tokens (None on a server that issues none)."""

    def __init__(
        self,
        *,
        settings: ServerSettings,
        config: ConfigState,
        store: StaticTokenStore,
        revoker: ClientTokenRevoker | None,
    ) -> None:
        self._settings = settings
        self._config = config
        self._store = store
        self._revoker = revoker


class TokenListing(TokenPaths):
    """The tokens this server accepts: listed, read, deleted (static tokens) or revoked (client tokens)."""

    def routes(self) -> list[Route]:
        settings = self._settings
        listing = Authenticated(requirement=Requirement.one_of(settings.list_token_groups), action="listing tokens")
        deleting = Authenticated(requirement=Requirement.one_of(settings.delete_token_groups), action="deleting tokens")
        return [
            Route("GET", PATH, self.list_tokens, listing),
            # Its own token needs no group; any other needs the listing groups (checked in the handler).
            Route("GET", ITEM_PATH, self.get_token, Authenticated()),
            Route("DELETE", ITEM_PATH, self.delete_token, deleting),
        ]

    async def list_tokens(self, request: Request) -> Response:
        """Tokens ordered by id. The page token names the last id of the page, so any replica continues it."""
        query = request.query
        limit = _limit(query.get("limit"))
        after = _page_token(query.get("pageToken") or query.get("page_token") or "")
        method = query.get("method") or ALL_METHODS
        if method != ALL_METHODS and method not in {m.value for m in Method}:
            raise field_error("method", f"use one of {ALL_METHODS}, {', '.join(m.value for m in Method)}")
        # Only static tokens are stored; client tokens are stateless (see the README).
        records = self._config.index.records() if method in (ALL_METHODS, Method.TOKEN) else []
        now = time.time()
        start = bisect.bisect_right(records, after, key=lambda r: r.token_id) if after else 0
        page: list[StaticTokenRecord] = []
        position = start
        while position < len(records) and len(page) < limit:
            if not records[position].expired(now):
                page.append(records[position])
            position += 1
        more = any(not r.expired(now) for r in records[position:])
        next_token = _encode_page_token(page[-1].token_id) if more and page else ""
        return json_response(
            ListAuthenticationsResponse(authentications=[r.authentication() for r in page], next_page_token=next_token)
        )

    async def get_token(self, request: Request) -> Response:
        authentication = caller(request)
        token_id = request.params["id"]
        if token_id == authentication.id:
            return json_response(authentication)  # a client token's own: kubegate stores no copy of it
        require(authentication, Requirement.one_of(self._settings.list_token_groups), action="reading other tokens")
        return json_response(self._record(token_id).authentication())

    async def delete_token(self, request: Request) -> Response:
        """Deletes the token's StaticToken (every token of it, a previous one in a rotation overlap too) and
        answers once this server no longer accepts the token."""
        settings, config = self._settings, self._config
        username = caller(request).identity.username
        token_id = request.params["id"]
        if not is_token_id(token_id):
            raise not_found(NOT_AN_ID_MESSAGE)
        static = config.index.by_id(token_id)
        if (static is None or static.expired(time.time())) and self._revoker is not None:
            await self._revoker.revoke(token_id, until=None)
            log.info("revoked client token %s for %s", token_id, username)
            return empty_response()
        record = self._record(token_id)
        try:
            await self._store.delete(record.namespace, record.name)
        except (ApiError, ApiUnavailable) as exc:
            raise from_kube(exc, f"delete StaticToken {record.namespace}/{record.name}") from None
        config.drop_provisional(token_id)
        gone = await config.wait_until(
            lambda: config.index.by_id(token_id) is None, timeout=settings.token_wait_timeout
        )
        if not gone:
            raise unavailable(
                f"StaticToken {record.namespace}/{record.name} was deleted, but this server still accepts its "
                f"token after {settings.token_wait_timeout:.0f}s; it stops working once the operator updates the "
                "validation config (a repeated DELETE waits again)"
            )
        log.info("deleted token %s (StaticToken %s/%s) for %s", token_id, record.namespace, record.name, username)
        return empty_response()

    def _record(self, token_id: str) -> StaticTokenRecord:
        if not is_token_id(token_id):
            raise not_found(NOT_AN_ID_MESSAGE)
        record = self._config.index.by_id(token_id)
        if record is None or record.expired(time.time()):
            raise not_found(f"no valid token has id {token_id}")
        return record


def _limit(raw: str | None) -> int:
    """Flipt's page size: absent or 0 the default, above the maximum the maximum."""
    if not raw:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()):
        raise field_error("limit", f"must be a whole number; 0 means {DEFAULT_LIMIT}, the most is {MAX_LIMIT}")
    # Past a few digits it is over the maximum anyway; int() of thousands of digits would even fail.
    value = int(raw) if len(raw) <= len(str(MAX_LIMIT)) else MAX_LIMIT
    return min(value, MAX_LIMIT) or DEFAULT_LIMIT


def _encode_page_token(token_id: str) -> str:
    return base64.urlsafe_b64encode((_PAGE_TOKEN_PREFIX + token_id).encode()).decode().rstrip("=")


def _page_token(raw: str) -> str:
    if not raw:
        return ""
    try:
        decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    if not decoded.startswith(_PAGE_TOKEN_PREFIX) or len(decoded) == len(_PAGE_TOKEN_PREFIX):
        raise field_error("pageToken", "is not a page token this API returned; start again without it")
    return decoded[len(_PAGE_TOKEN_PREFIX) :]
