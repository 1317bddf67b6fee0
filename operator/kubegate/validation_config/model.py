"""The entries of the validation config, one per currently valid static token."""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class TokenEntry(BaseModel):
    """One valid token: its hash and the identity it grants. Never the token itself."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")

    sha256: Sha256Hex
    """SHA-256 of the token, lowercase hex."""
    token_id: str
    """The token's id (a UUID), as in the StaticToken's status."""
    name: str
    """Name of the StaticToken."""
    namespace: str
    """Namespace of the StaticToken."""
    groups: tuple[str, ...] = ()
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    """When this token (not the resource) was created."""
    expires_at: datetime | None = None
    """When the token stops being valid; None: never."""

    @functools.cached_property
    def canonical_json(self) -> bytes:
        """The entry as a shard holds it: JSON with sorted keys and no spaces. Kept, since a shard is encoded
        again on every change of any of its entries."""
        dumped = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return json.dumps(dumped, sort_keys=True, separators=(",", ":")).encode()

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at
