"""The result of a verification: one `Authentication`, whatever the credential was.

It is also the `authentication` object of the Flipt-shaped API (`/auth/v1/self`, `/auth/v1/tokens`):
camelCase on the wire, every field present.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
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
    claims: Mapping[str, Any] = Field(default_factory=dict, exclude=True, repr=False)
    """The verified claims (JSON values) behind this identity, for requirements on more than groups: a client
    token's JWT claims; none for a static token. Never serialized: API answers show username, uid and groups
    only, and claims may hold personal data."""

    def __hash__(self) -> int:
        # Claims are JSON (dicts, lists): identities equal in all else but their claims may share a hash.
        return hash((self.username, self.uid, self.groups))


class Authentication(ResponseModel):
    """One verified credential, in Flipt's shape plus the identity it grants."""

    __slots__ = ("_derived",)
    if TYPE_CHECKING:
        _derived: dict[Hashable, Any]

    id: str
    """The token id (a UUID): safe to show and log, and the key of /auth/v1/tokens/{id}."""
    method: Method
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, str]
    identity: Identity

    @property
    def derived(self) -> dict[Hashable, Any]:
        """Answers derived from this authentication (forward-auth headers, TokenReview statuses), kept with it.

        A verifier hands out the same Authentication object for a credential while the credential is
        unchanged (see `StaticTokenIndex.authentication`), so a surface encodes its answer once and reads it
        from here afterwards; a changed credential comes as a new object with nothing derived yet. Not a
        field: never serialized, never compared. A slot rather than a private attribute, which pydantic
        reads through a slow `__getattr__`.
        """
        try:
            # Through the slot itself: `self._derived` unset would go on to pydantic's `__getattr__`, which
            # costs a microsecond to format an error for every Authentication built on a request's path.
            derived: dict[Hashable, Any] = _DERIVED_SLOT.__get__(self)
        except AttributeError:
            derived = {}
            object.__setattr__(self, "_derived", derived)
        return derived


_DERIVED_SLOT = Authentication.__dict__["_derived"]
