"""Static token format: generation, hashing and token ids.

Pure functions; no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid

TOKEN_BYTES = 32
PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,15}_$")
MAX_TOKEN_LENGTH = 4096
_GENERATED_RE = re.compile(r"^(?:[a-z][a-z0-9]{0,15}_)?[A-Za-z0-9_-]{43}=$")
"""What `generate_token` produces, with any valid prefix."""


def generate_token(prefix: str = "") -> str:
    """A new random token: optional recognizable prefix (such as `kg_`) + 32 random bytes in URL-safe base64
    with padding (44 characters), as Flipt's static tokens.

    The prefix lets secret scanners find leaked tokens; it carries no secret.
    """
    if prefix and not PREFIX_PATTERN.match(prefix):
        raise ValueError(
            f"token prefix {prefix!r} is invalid: use 1-16 lowercase letters or digits, starting with a "
            "letter and ending with an underscore, for example kg_"
        )
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_BYTES)).decode("ascii")


_TOKEN_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def new_token_id() -> str:
    """A token id: a random UUID, safe to show, log and put in status. Static tokens and client tokens
    (their `jti`) both get theirs here."""
    return str(uuid.uuid4())


def is_token_id(text: str) -> bool:
    """Whether `text` has the shape of the ids `new_token_id` makes. Anything else may be a credential
    pasted where an id belongs, so it is neither repeated, stored nor logged."""
    return _TOKEN_ID_RE.fullmatch(text) is not None


def token_digest(token: str) -> bytes:
    """The SHA-256 of the token (of its UTF-8 bytes), as 32 bytes: the key of a token in every index and cache."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def hash_token(token: str) -> str:
    """`token_digest` as lowercase hex: what the validation config holds."""
    return token_digest(token).hex()


def is_visible_ascii(text: str) -> bool:
    """Whether every character of `text` is visible ASCII (0x21-0x7E): no space, no control character (so
    no CR/LF), nothing beyond ASCII. String methods rather than a regex: this runs on every request."""
    return text.isascii() and text.isprintable() and " " not in text


def is_generated_shape(token: str) -> bool:
    """Whether the text has the shape `generate_token` produces, with any prefix: such a credential is a
    kubegate static token (known or not), never an opaque token of an OIDC provider."""
    return len(token) <= MAX_TOKEN_LENGTH and _GENERATED_RE.match(token) is not None
