"""The result of a verification: one `Authentication`, whatever the credential was.

It is also the `authentication` object of the Flipt-shaped API (`/auth/v1/self`, `/auth/v1/tokens`):
camelCase on the wire, every field present.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Method(StrEnum):
    """Authentication methods, named as Flipt names them."""

    TOKEN = "METHOD_TOKEN"
    KUBERNETES = "METHOD_KUBERNETES"
    OIDC = "METHOD_OIDC"


class ResponseModel(BaseModel):
    """Base of API response bodies: camelCase on the wire, immutable."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class Identity(ResponseModel):
    """Who the credential stands for; the TokenReview webhook and forward auth pass it on."""

    username: str
    """For a static token `statictoken:<namespace>:<name>`; other methods name their subjects their own way."""
    uid: str
    """Identifies the credential's owner across renames; for a static token, its token id."""
    groups: tuple[str, ...] = ()


class Authentication(ResponseModel):
    """One verified credential, in Flipt's shape plus the identity it grants."""

    id: str
    """The token id (a UUID): safe to show and log, and the key of /auth/v1/tokens/{id}."""
    method: Method
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, str]
    identity: Identity
