"""The token Secret: where a StaticToken's plaintext lives, as the operator writes it and the server reads it.

One Secret per StaticToken, beside it and owned by it. `data.token` holds the token, `data.tokenId` its
id; annotations say when it was created, which rotation request it answers and, during a rotation's
overlap, which token it replaced. Pure; no I/O.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubegate.contracts.timestamps import format_time, parse_time
from kubegate.contracts.token_format import MAX_TOKEN_LENGTH, hash_token, is_visible_ascii, new_token_id

TOKEN_KEY = "token"
TOKEN_ID_KEY = "tokenId"
SECRET_TYPE = "kubegate.dev/static-token"
MANAGED_BY = {"app.kubernetes.io/managed-by": "kubegate"}
OWNER_LABEL = "kubegate.dev/statictoken"
CREATED_ANNOTATION = "kubegate.dev/token-created-at"
PREVIOUS_ID_ANNOTATION = "kubegate.dev/previous-token-id"
PREVIOUS_SHA_ANNOTATION = "kubegate.dev/previous-token-sha256"
PREVIOUS_CREATED_ANNOTATION = "kubegate.dev/previous-token-created-at"
PREVIOUS_EXPIRES_ANNOTATION = "kubegate.dev/previous-token-expires-at"
# The rotation request a Secret's value answers. It lives on the Secret, in the same write as the value, so
# that a crash between the Secret and the status write cannot make the next run answer the request again.
HANDLED_ROTATE_ANNOTATION = "kubegate.dev/handled-rotate-request"
PREVIOUS_ANNOTATIONS = (
    PREVIOUS_ID_ANNOTATION,
    PREVIOUS_SHA_ANNOTATION,
    PREVIOUS_CREATED_ANNOTATION,
    PREVIOUS_EXPIRES_ANNOTATION,
)
MIN_BROUGHT_TOKEN_LENGTH = 16
"""The shortest token a user may bring in a Secret of their own (spec.secretRef)."""


@dataclass(frozen=True, kw_only=True)
class HashedToken:
    """A token that exists (in a Secret), described by its id and SHA-256, without its plaintext."""

    token_id: str
    sha256: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class PreviousToken:
    """The token a rotation replaced; valid until `expires_at` (the end of the overlap)."""

    token_id: str
    sha256: str
    created_at: datetime
    expires_at: datetime


def token_secret(
    *,
    owner: Mapping[str, Any],
    name: str,
    token: str,
    token_id: str,
    created_at: datetime,
    rotate_request: str | None,
    previous: PreviousToken | None = None,
) -> dict[str, Any]:
    """The Secret holding `token`, owned by the StaticToken `owner` (as the API server returns it)."""
    meta = owner["metadata"]
    annotations = {CREATED_ANNOTATION: format_time(created_at)}
    if rotate_request is not None:
        annotations[HANDLED_ROTATE_ANNOTATION] = rotate_request
    if previous is not None:
        annotations |= {
            PREVIOUS_ID_ANNOTATION: previous.token_id,
            PREVIOUS_SHA_ANNOTATION: previous.sha256,
            PREVIOUS_CREATED_ANNOTATION: format_time(previous.created_at),
            PREVIOUS_EXPIRES_ANNOTATION: format_time(previous.expires_at),
        }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": {**MANAGED_BY, OWNER_LABEL: meta["name"]},
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": owner["apiVersion"],
                    "kind": owner["kind"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {TOKEN_KEY: _encode(token), TOKEN_ID_KEY: _encode(token_id)},
    }


def moved_token_secret(old: Mapping[str, Any], *, name: str) -> dict[str, Any]:
    """The same token, owner and annotations as the Secret `old`, under another name."""
    meta = old["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": old.get("type", SECRET_TYPE),
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": meta.get("labels") or {},
            "annotations": meta.get("annotations") or {},
            "ownerReferences": meta.get("ownerReferences") or [],
        },
        "data": old.get("data") or {},
    }


def clear_previous_patch() -> dict[str, Any]:
    """A merge patch that ends the overlap: the Secret no longer names the token a rotation replaced."""
    return {"metadata": {"annotations": dict.fromkeys(PREVIOUS_ANNOTATIONS)}}


def is_owned_by(secret: Mapping[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in secret["metadata"].get("ownerReferences") or [])


def decode_token(raw: str) -> str | None:
    """The token in a Secret's base64 `data` value; None unless it is MIN_BROUGHT_TOKEN_LENGTH to
    MAX_TOKEN_LENGTH visible ASCII characters (one trailing line break, as editors add, is dropped)."""
    token = _decode(raw)
    if token is None:
        return None
    token = token.strip("\r\n")
    if not (MIN_BROUGHT_TOKEN_LENGTH <= len(token) <= MAX_TOKEN_LENGTH) or not is_visible_ascii(token):
        return None
    return token


def stored_token(secret: Mapping[str, Any]) -> str | None:
    """The token of a Secret the operator wrote; None when it holds none that is usable."""
    raw = (secret.get("data") or {}).get(TOKEN_KEY)
    return None if raw is None else decode_token(raw)


def stored_token_id(secret: Mapping[str, Any]) -> str | None:
    raw = (secret.get("data") or {}).get(TOKEN_ID_KEY)
    return None if raw is None else _decode(raw) or None


def current_token(secret: Mapping[str, Any], *, now: datetime) -> HashedToken:
    """The token a Secret holds, described by hash; raises ValueError when it holds none (see `stored_token`).

    A Secret without a token id or creation time (edited by hand) gets a new id, created `now`.
    """
    token = stored_token(secret)
    if token is None:
        raise ValueError(f"Secret {secret['metadata'].get('name')} holds no usable token")
    annotations = secret["metadata"].get("annotations") or {}
    return HashedToken(
        token_id=stored_token_id(secret) or new_token_id(),
        sha256=hash_token(token),
        created_at=parse_time(annotations.get(CREATED_ANNOTATION)) or now,
    )


def previous_token(secret: Mapping[str, Any]) -> PreviousToken | None:
    """The token a rotation replaced, while its overlap runs; None when the Secret names none."""
    annotations = secret["metadata"].get("annotations") or {}
    expires = parse_time(annotations.get(PREVIOUS_EXPIRES_ANNOTATION))
    created = parse_time(annotations.get(PREVIOUS_CREATED_ANNOTATION))
    token_id = annotations.get(PREVIOUS_ID_ANNOTATION)
    sha = annotations.get(PREVIOUS_SHA_ANNOTATION)
    if not (expires and created and token_id and sha):
        return None
    return PreviousToken(token_id=token_id, sha256=sha, created_at=created, expires_at=expires)


def _encode(text: str) -> str:
    return base64.b64encode(text.encode("ascii")).decode("ascii")


def _decode(raw: str) -> str | None:
    try:
        return base64.b64decode(raw, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
