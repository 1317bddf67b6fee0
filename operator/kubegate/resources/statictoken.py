"""The StaticToken resource: a declared API token that the operator turns into a Secret."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import ConfigDict, Field

from kubegate.resources.common import (
    Conditions,
    DnsSubdomain,
    Model,
    SecretKey,
    StatusModel,
    list_set,
)
from kubegate.resources.duration import Duration
from kubegate.resources.kinds import ResourceKind

Group = Annotated[str, Field(min_length=1, max_length=253)]
TOKEN_HASH_PATTERN = r"^[0-9a-f]{64}$"
"""A token's SHA-256 in lower-case hex, as `contracts.token_format.hash_token` writes it and the validation
config holds it."""
TokenHash = Annotated[
    str,
    Field(
        pattern=TOKEN_HASH_PATTERN,
        min_length=64,
        max_length=64,
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "tokenHash is immutable: create a new StaticToken instead"}
            ]
        },
    ),
]
MetadataKey = Annotated[str, Field(min_length=1, max_length=253)]


class SecretKeyRef(Model):
    """A key of an existing Secret in the StaticToken's namespace that holds the token."""

    name: DnsSubdomain
    """Name of the Secret."""
    key: SecretKey = "token"
    """Key in the Secret's data that holds the token."""


class Rotation(Model):
    """Rotate the token on a schedule; the previous token stays valid for `overlap`."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.overlap) || duration(self.overlap) < duration(self.every)",
                    "message": "overlap must be shorter than every, or two old tokens would be valid at once",
                    "fieldPath": ".overlap",
                }
            ]
        }
    )

    every: Duration
    """How often a new token replaces the current one, for example 720h."""
    overlap: Duration | None = None
    """How long the previous token stays valid after a rotation, for example 1h. Default: none."""


class StaticTokenSpec(Model):
    """What the token is for, when it expires, and where it lives."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.expiresAt) && has(self.ttl))",
                    "message": "expiresAt and ttl are mutually exclusive: set at most one of them",
                },
                {
                    "rule": "!(has(self.secretRef) && has(self.secretName))",
                    "message": "secretName and secretRef are mutually exclusive: secretRef brings an "
                    "existing token, secretName names the Secret kubegate writes",
                },
                {
                    "rule": "!(has(self.secretRef) && has(self.rotation))",
                    "message": "rotation cannot be used with secretRef: kubegate never modifies a Secret "
                    "it does not own",
                },
                {
                    "rule": "!has(self.tokenHash) || !(has(self.secretRef) || has(self.secretName) || "
                    "has(self.rotation))",
                    "message": "tokenHash cannot be used with secretRef, secretName or rotation: a token known "
                    "only by its hash has no Secret and cannot be rotated",
                },
                {
                    "rule": "has(self.tokenHash) == has(oldSelf.tokenHash)",
                    "message": "tokenHash can be set only when the StaticToken is created, and never removed",
                },
            ]
        }
    )

    description: Annotated[str, Field(max_length=1024)] | None = None
    """Free text shown with the token, for example who uses it."""
    expires_at: datetime | None = None
    """When the token stops being valid (RFC 3339). Mutually exclusive with ttl."""
    ttl: Duration | None = None
    """Lifetime counted from the token's creation, for example 720h. Mutually exclusive with expiresAt."""
    secret_name: DnsSubdomain | None = None
    """Name of the Secret kubegate writes the token to. Default: the StaticToken's name."""
    secret_ref: SecretKeyRef | None = None
    """Use the token already stored in this Secret instead of generating one (kubegate never changes it)."""
    groups: Annotated[list[Group], Field(max_length=64, json_schema_extra=list_set())] | None = None
    """Groups the token's holder belongs to; they decide what the holder may do."""
    metadata: Annotated[dict[MetadataKey, Annotated[str, Field(max_length=4096)]], Field(max_length=64)] | None = None
    """Free-form string pairs carried with the authentication, as in Flipt."""
    rotation: Rotation | None = None
    """Rotate the token on a schedule."""
    token_hash: TokenHash | None = None
    """SHA-256 (lower-case hex) of a token only its creator holds; no Secret is written. Set by the kubegate server for tokens created through its API (an admission policy allows it from the server only)."""  # noqa: E501


class StaticTokenStatus(StatusModel):
    """What the operator last did with the token. Never holds the token itself."""

    conditions: Conditions | None = None
    """Ready, and Stalled while it holds, as kstatus expects."""
    observed_generation: int | None = None
    """The metadata.generation the operator last acted on."""
    token_id: str | None = None
    """Identifier of the current token (a UUID); safe to show and to log."""
    secret_name: str | None = None
    """The Secret that holds the current token; unset for a token known only by spec.tokenHash."""
    expires_at: datetime | None = None
    """When the current token expires; unset when it never does."""
    created_at: datetime | None = None
    """When the first token was created."""
    rotated_at: datetime | None = None
    """When the token was last rotated."""
    handled_rotate_request: str | None = None
    """The last value of the kubegate.dev/rotate annotation acted on; a new value rotates the token."""


class StaticToken(ResourceKind):
    """A static API token, declared as a Kubernetes resource and stored in a Secret beside it."""

    kind: ClassVar[str] = "StaticToken"
    plural: ClassVar[str] = "statictokens"
    singular: ClassVar[str] = "statictoken"
    short_names: ClassVar[tuple[str, ...]] = ("stoken",)
    namespaced: ClassVar[bool] = True
    printer_columns: ClassVar[tuple[dict[str, str], ...]] = (
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Expires", "type": "string", "jsonPath": ".status.expiresAt"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    )

    spec: StaticTokenSpec
    status: StaticTokenStatus | None = None
