"""StaticToken resources as the server manages them: create one and fetch its token, expire, delete.

The server only ever writes StaticToken resources; the operator turns them into Secrets and the
validation config. The plaintext of a created token is read from its Secret once, for the response
that creates it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from kubegate.contracts.api_paths import path_for
from kubegate.contracts.timestamps import format_time
from kubegate.contracts.token_secret import stored_token, stored_token_id
from kubegate.kube import KubeApi, NotFound
from kubegate.resources.statictoken import StaticToken

_POLL_INTERVAL = 0.1


@dataclass(frozen=True, kw_only=True)
class IssuedToken:
    """The token the operator issued for a StaticToken the server created, with its plaintext."""

    namespace: str
    name: str
    token_id: str
    token: str
    """The plaintext: goes into the create response and nowhere else."""

    def __repr__(self) -> str:
        return f"IssuedToken(namespace={self.namespace!r}, name={self.name!r}, token_id={self.token_id!r})"


class TokenNotIssued(Exception):  # noqa: N818 - names the outcome
    """The StaticToken was created but gave no usable token in time (see `message`)."""

    def __init__(self, message: str, *, namespace: str, name: str) -> None:
        super().__init__(message)
        self.message = message
        self.namespace = namespace
        self.name = name


class StaticTokenStore(Protocol):
    async def create(self, resource: dict[str, Any], *, timeout: float) -> IssuedToken:
        """Create the StaticToken and wait until the operator issued its token (Ready, with a token id).

        Raises TokenNotIssued when that takes longer than `timeout` or the operator stalls on it, and
        the kube errors (ApiError, ApiUnavailable) of the create call itself.
        """
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

    async def create(self, resource: dict[str, Any], *, timeout: float) -> IssuedToken:
        namespace = resource["metadata"]["namespace"]
        created = await self._client.create(StaticToken.path(namespace=namespace), resource)
        name = created["metadata"]["name"]
        try:
            return await asyncio.wait_for(self._issued(namespace, name), timeout)
        except TimeoutError:
            raise TokenNotIssued(
                f"the operator did not issue the token of StaticToken {namespace}/{name} within {timeout:.0f}s: "
                "check that `kubegate operator` runs and watches that namespace",
                namespace=namespace,
                name=name,
            ) from None

    async def _issued(self, namespace: str, name: str) -> IssuedToken:
        while True:
            body = await self._client.get(StaticToken.path(namespace=namespace, name=name))
            status = body.get("status") or {}
            ready = _condition(status, "Ready")
            stalled = _condition(status, "Stalled")
            if stalled is not None and stalled.get("status") == "True":
                raise TokenNotIssued(
                    f"the operator refused StaticToken {namespace}/{name}: {stalled.get('message', '')}",
                    namespace=namespace,
                    name=name,
                )
            token_id = status.get("tokenId")
            if ready is not None and ready.get("status") == "True" and token_id and status.get("secretName"):
                issued = await self._read_secret(namespace, name, str(status["secretName"]), str(token_id))
                if issued is not None:
                    return issued
            await asyncio.sleep(_POLL_INTERVAL)

    async def _read_secret(self, namespace: str, name: str, secret_name: str, token_id: str) -> IssuedToken | None:
        try:
            secret = await self._client.get(path_for(plural="secrets", namespace=namespace, name=secret_name))
        except NotFound:
            return None
        token = stored_token(secret)
        if stored_token_id(secret) != token_id or token is None:
            return None  # rotated between the two reads: read the status again
        return IssuedToken(namespace=namespace, name=name, token_id=token_id, token=token)

    async def delete(self, namespace: str, name: str) -> None:
        try:
            await self._client.delete(StaticToken.path(namespace=namespace, name=name))
        except NotFound:
            return

    async def expire(self, namespace: str, name: str, at: datetime) -> None:
        # A merge patch with null removes ttl, which excludes expiresAt (the CRD refuses both).
        patch = {"spec": {"expiresAt": format_time(at), "ttl": None}}
        await self._client.patch(StaticToken.path(namespace=namespace, name=name), patch)


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in status.get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == kind:
            return condition
    return None
