"""Tell a credential's kind before any cryptography or network call (RFC 8725, section 3.12). Pure.

Three kinds, with mutually exclusive rules:
- a client token: JWT-shaped, its (unverified) `iss` is kubegate's issuer and its `typ` kubegate's
  client-token type;
- an OIDC access token: JWT-shaped, its `iss` a configured provider, and not typed as a client token;
- a static token: anything that is not JWT-shaped, looked up by hash.
A JWT-shaped credential that fits neither JWT rule is refused here, so an untrusted issuer never causes a
network call. Nothing read here is trusted: the verifier of the chosen kind checks it all again.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kubegate.verify.jwt_segments import UnverifiedJwt, read_jwt

CLIENT_TOKEN_TYP = "kubegate-client+jwt"
"""The `typ` header of kubegate client tokens (explicit typing, RFC 8725 section 3.11)."""


class Kind(StrEnum):
    STATIC = "static"
    CLIENT = "client"
    OIDC = "oidc"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Classified:
    kind: Kind
    issuer: str | None = None
    """The unverified `iss` of a JWT-shaped credential."""
    reason: str = ""
    """Why a credential was rejected, for debug logs."""
    unverified: UnverifiedJwt | None = None
    """The JWT as read here (nothing in it verified), so that its verifier need not read it again."""


STATIC = Classified(Kind.STATIC)


def classify(credential: str, *, client_issuer: str | None, oidc_issuers: Container[str]) -> Classified:
    """The kind of `credential`; `client_issuer` is None while kubegate issues no client tokens."""
    token = read_jwt(credential)
    if token is None:
        return STATIC
    if not token.signed:
        return Classified(Kind.REJECTED, reason="unsigned or malformed JWT")
    issuer = token.payload.get("iss") if token.payload is not None else None
    if not isinstance(issuer, str):
        return Classified(Kind.REJECTED, reason="JWT payload without an iss claim")
    classified = _by_issuer(
        issuer,
        typed_client=is_client_typ(token.header.get("typ")),
        client_issuer=client_issuer,
        oidc_issuers=oidc_issuers,
    )
    if classified.kind is Kind.OIDC:
        return Classified(Kind.OIDC, issuer=issuer, unverified=token)
    return classified


def _by_issuer(
    issuer: str, *, typed_client: bool, client_issuer: str | None, oidc_issuers: Container[str]
) -> Classified:
    if client_issuer is not None and issuer == client_issuer:
        if typed_client:
            return Classified(Kind.CLIENT, issuer=issuer)
        return Classified(Kind.REJECTED, issuer=issuer, reason="kubegate-issued JWT without the client-token typ")
    if typed_client:
        return Classified(Kind.REJECTED, issuer=issuer, reason="client-token typ from another issuer")
    if issuer in oidc_issuers:
        return Classified(Kind.OIDC, issuer=issuer)
    return Classified(Kind.REJECTED, issuer=issuer, reason="untrusted issuer")


def is_client_typ(typ: Any) -> bool:
    """RFC 7515: `typ` compares case-insensitively, and `application/` may be left out."""
    if not isinstance(typ, str):
        return False
    value = typ.lower()
    return value in (CLIENT_TOKEN_TYP, "application/" + CLIENT_TOKEN_TYP)
