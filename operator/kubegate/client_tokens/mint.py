"""Issue a client token: an ES256 JWT with kubegate's issuer and explicit type. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import jwt

from kubegate.client_tokens.keys import SigningKey
from kubegate.verify.classify import CLIENT_TOKEN_TYP
from kubegate.verify.client_tokens import ALGORITHM


def mint(
    key: SigningKey,
    *,
    issuer: str,
    audience: str,
    subject: str,
    uid: str,
    token_id: str,
    method: str,
    groups: Sequence[str],
    metadata: Mapping[str, str],
    issued_at: datetime,
    expires_at: datetime,
) -> str:
    if expires_at <= issued_at:
        raise ValueError("a client token must expire after it is issued")
    claims = {
        "iss": issuer,
        "sub": subject,
        "uid": uid,
        "aud": audience,
        "iat": int(issued_at.timestamp()),
        "nbf": int(issued_at.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": token_id,
        "method": method,
        "groups": list(groups),
        "metadata": dict(metadata),
    }
    headers = {"kid": key.kid, "typ": CLIENT_TOKEN_TYP}
    return jwt.encode(claims, key.private_key(), algorithm=ALGORITHM, headers=headers)
