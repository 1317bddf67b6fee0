"""Read a JWT's header and payload without verifying anything. Pure.

The one place a compact JWS is split and its segments decoded: credential classification reads the
issuer and type here, the client-token verifier the key id and algorithm, the service-account exchange
the claimed account. What is read here decides only where a credential goes or whether it is refused
early; the verifier of its kind checks all of it again.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
# A JWT header or payload larger than this is not one kubegate or a provider would send.
MAX_SEGMENT = 8 * 1024


@dataclass(frozen=True, slots=True)
class UnverifiedJwt:
    """A credential with a JWT's shape: three segments, the first a JSON object naming an `alg`."""

    header: dict[str, Any]
    payload: dict[str, Any] | None
    """None when the payload segment is not a JSON object."""
    signature: str

    @property
    def signed(self) -> bool:
        """Whether it claims a signature at all: an `alg` other than `none` and a base64url signature. A
        JWT that does not is refused by every verifier (RFC 8725, section 3.1)."""
        return self.header["alg"].lower() != "none" and _SEGMENT.fullmatch(self.signature) is not None


def looks_like_jwt(credential: str) -> bool:
    """Whether `credential` has a JWT's three segments; one that has not is a static token."""
    return credential.count(".") == 2


def read_jwt(credential: str) -> UnverifiedJwt | None:
    """`credential` read as a JWT, or None when it is not one: not three segments, or a first segment that
    is not a JSON object with a string `alg` (dots alone do not make a JWT: a brought static token may
    contain two)."""
    if not looks_like_jwt(credential):
        return None
    header_part, payload_part, signature = credential.split(".")
    header = json_segment(header_part)
    if header is None or not isinstance(header.get("alg"), str):
        return None
    return UnverifiedJwt(header=header, payload=json_segment(payload_part), signature=signature)


def json_segment(segment: str) -> dict[str, Any] | None:
    """One JWT segment (header or payload) as a JSON object, decoded without any verification; None if it is
    not one."""
    if not segment or len(segment) > MAX_SEGMENT or not _SEGMENT.fullmatch(segment):
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        return None
    return decoded if isinstance(decoded, dict) else None
