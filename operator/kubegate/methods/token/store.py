"""StaticToken resources as the server manages them: create, expire, delete.

The server only ever writes StaticToken resources; the operator turns them into the validation config. A
token created through the API reaches its StaticToken as a hash only (`spec.tokenHash`): its plaintext is
in the create response and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from kubegate.contracts.timestamps import format_time, parse_time
from kubegate.kube import KubeApi, NotFound
from kubegate.resources.statictoken import StaticToken


@dataclass(frozen=True, kw_only=True)
class CreatedToken:
    """What the API server answered for a new StaticToken: where it is, and what names its token."""

    namespace: str
    name: str
    uid: str
    """metadata.uid: the token id of a token known only by its hash."""
    created_at: datetime
    """metadata.creationTimestamp, which the operator publishes as the token's creation too."""


class StaticTokenStore(Protocol):
    async def create(self, resource: dict[str, Any]) -> CreatedToken:
        """Create the StaticToken; raises the kube errors (ApiError, ApiUnavailable) of the call."""
        ...

    async def exists(self, namespace: str, name: str, *, uid: str) -> bool:
        """Whether this StaticToken (this very object: `uid`) exists and is not being deleted; raises ApiError,
        ApiUnavailable."""
        ...

    async def delete(self, namespace: str, name: str) -> None:
        """Delete the StaticToken (done if it is gone already); raises ApiError, ApiUnavailable."""
        ...

    async def expire(self, namespace: str, name: str, at: datetime) -> None:
        """Set the StaticToken's expiry to `at` (dropping any ttl); raises NotFound when it is gone."""
        ...


class KubeStaticTokenStore:
    def __init__(self, client: KubeApi) -> None:
        self._client = client

    async def create(self, resource: dict[str, Any]) -> CreatedToken:
        namespace = resource["metadata"]["namespace"]
        created = await self._client.create(StaticToken.path(namespace=namespace), resource)
        return created_token(created)

    async def exists(self, namespace: str, name: str, *, uid: str) -> bool:
        try:
            body = await self._client.get(StaticToken.path(namespace=namespace, name=name))
        except NotFound:
            return False
        meta = body["metadata"]
        return bool(meta.get("uid") == uid and not meta.get("deletionTimestamp"))

    async def delete(self, namespace: str, name: str) -> None:
        try:
            await self._client.delete(StaticToken.path(namespace=namespace, name=name))
        except NotFound:
            return

    async def expire(self, namespace: str, name: str, at: datetime) -> None:
        # A merge patch with null removes ttl, which excludes expiresAt (the CRD refuses both).
        patch = {"spec": {"expiresAt": format_time(at), "ttl": None}}
        await self._client.patch(StaticToken.path(namespace=namespace, name=name), patch)


def created_token(body: dict[str, Any]) -> CreatedToken:
    """The CreatedToken of a StaticToken as the API server returned it from a create."""
    meta = body["metadata"]
    created_at = parse_time(meta.get("creationTimestamp"))
    if created_at is None:
        raise ValueError(f"the API server returned StaticToken {meta.get('name')} without a creationTimestamp")
    return CreatedToken(namespace=meta["namespace"], name=meta["name"], uid=meta["uid"], created_at=created_at)
