"""Where a request carries its credential: `Authorization: Bearer <token>` or the kubegate cookie. Pure.

Works on header values, so every surface (server, framework decorators) extracts credentials alike.
"""

from __future__ import annotations

from collections.abc import Sequence

from kubegate.contracts.token_format import is_visible_ascii
from kubegate.verify.errors import Unauthenticated

COOKIE_NAME = "kubegate_client_token"
MAX_CREDENTIAL_LENGTH = 16 * 1024
"""Longer than any token kubegate issues or an OIDC provider sends; longer input is refused unread."""


def credential_from(authorization: Sequence[str], cookie: str | None) -> str:
    """The credential of a request, from its `Authorization` header values and its cookie value.

    An `Authorization` header wins over the cookie; a header that is not one well-formed Bearer credential
    is refused rather than passed over, so that a request never authenticates as something it did not mean.
    Raises Unauthenticated with reason `missing` or `malformed`.
    """
    if authorization:
        if len(authorization) != 1:
            raise Unauthenticated("malformed")
        scheme, _, token = authorization[0].partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthenticated("malformed")
        return check_credential(token.strip(" "))
    if cookie is not None:
        return check_credential(cookie)
    raise Unauthenticated("missing")


def check_credential(token: str) -> str:
    """`token` if it can be a credential at all; raises Unauthenticated (`missing`, `malformed`) otherwise."""
    if not token:
        raise Unauthenticated("missing")
    if len(token) > MAX_CREDENTIAL_LENGTH or not is_visible_ascii(token):
        raise Unauthenticated("malformed")
    return token
