"""The asynchronous API client: JSON in, JSON out, errors as exceptions a caller can act on."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from kubegate.kube.config import Connection
from kubegate.kube.errors import ApiUnavailable, error_for

log = logging.getLogger(__name__)

PatchType = Literal["merge", "json", "strategic", "apply"]
_PATCH_CONTENT_TYPES: dict[PatchType, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


@dataclass(frozen=True)
class WatchEvent:
    type: str
    """ADDED, MODIFIED, DELETED or BOOKMARK."""
    object: dict[str, Any]


class KubeClient:
    """One connection pool to one API server. Use as an async context manager, or call `close()`."""

    def __init__(
        self,
        connection: Connection,
        *,
        timeout: float = 30.0,
        max_connections: int = 64,
        user_agent: str = "kubegate",
        may_write: Callable[[], bool] | None = None,
    ) -> None:
        """`may_write`, when given, is asked before every request that changes something: while it says no,
        the request is not sent and raises ApiUnavailable (a leader that lost contact must not write)."""
        self.connection = connection
        self._may_write = may_write
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 5.0))
        self._max_connections = max_connections
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._reloading = asyncio.Lock()
        self._credentials_version = 0
        """Reloads so far: a request refused with the credentials of an older one retries without reloading."""

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.connection.ssl_context, limit=self._max_connections)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, headers={"User-Agent": self._user_agent}
            )
        return self._session

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = self.connection.credentials.authorization()
        if token:
            headers["Authorization"] = token
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    @asynccontextmanager
    async def _response(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        data: bytes | None = None,
        content_type: str | None = None,
        timeout: aiohttp.ClientTimeout,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The response to one request; after a 401, the response to it sent again with reloaded credentials."""
        for attempt in range(2):
            version = self._credentials_version
            async with self._get_session().request(
                method,
                self.connection.host + path,
                params=params,
                data=data,
                headers=self._headers(content_type),
                timeout=timeout,
            ) as response:
                if response.status != 401 or attempt == 1:
                    yield response
                    return
            await self._reload_credentials(version)

    async def _reload_credentials(self, refused_version: int) -> None:
        """Load the credentials again, once for all the requests the same credentials failed at the same time."""
        async with self._reloading:
            if self._credentials_version != refused_version:
                return  # another request has reloaded them meanwhile: retry with those
            credentials = self.connection.credentials
            log.info("The Kubernetes API refused the credentials (401); loading them again from %s", credentials.source)
            try:
                await credentials.reload()
            except Exception as exc:  # the retry then fails with the 401 the caller sees
                log.warning("Could not load the Kubernetes credentials from %s: %s", credentials.source, exc)
            # Counted after the reload: requests refused while it ran then retry instead of reloading again.
            self._credentials_version += 1

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one request and return the decoded JSON body.

        Raises ApiUnavailable when the server cannot be reached or is overloaded (5xx, 429), and an
        ApiError subclass for any other error status.
        """
        if self._may_write is not None and method != "GET" and not self._may_write():
            raise ApiUnavailable(f"{method} {path}: not sent: this replica may not write at the moment")
        data = None if body is None else json.dumps(body).encode()
        request_timeout = None if timeout is None else aiohttp.ClientTimeout(total=timeout)
        try:
            async with self._response(
                method,
                path,
                params=params,
                data=data,
                content_type=content_type if data is not None else None,
                timeout=request_timeout or self._timeout,
            ) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ApiUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        decoded = _decode(raw)
        if status >= 500 or status == 429:
            raise ApiUnavailable(f"{method} {path}: {status} {decoded.get('message', '')}")
        if status >= 400:
            raise error_for(status, decoded)
        return decoded

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        return await self.request("GET", path, params=params or None)

    async def create(self, path: str, body: dict[str, Any], **params: str) -> dict[str, Any]:
        return await self.request("POST", path, body=body, params=params or None)

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("PUT", path, body=body)

    async def patch(self, path: str, body: Any, *, patch_type: PatchType = "merge", **params: str) -> dict[str, Any]:
        return await self.request(
            "PATCH", path, body=body, content_type=_PATCH_CONTENT_TYPES[patch_type], params=params or None
        )

    async def delete(self, path: str, *, propagation: str | None = None) -> dict[str, Any]:
        body = None if propagation is None else {"propagationPolicy": propagation}
        return await self.request("DELETE", path, body=body)

    async def list_all(
        self,
        path: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> tuple[list[dict[str, Any]], str]:
        """Every item of a collection, paged; returns the items and the list's resourceVersion.

        `field_selector`, for example `metadata.name=x`, narrows a collection to one object that may not exist yet.
        """
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {"limit": str(page_size)}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        while True:
            page = await self.request("GET", path, params=params)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, str(meta.get("resourceVersion", ""))
            params["continue"] = token

    async def watch(
        self,
        path: str,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        """Stream changes after `resource_version` until the server ends the watch.

        Raises Gone when the version is too old (list again), ApiUnavailable when the connection breaks.
        """
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=timeout_seconds + 30)
        try:
            async with self._response("GET", path, params=params, timeout=timeout) as response:
                if response.status >= 400:
                    decoded = _decode(await response.read())
                    if response.status >= 500 or response.status == 429:
                        raise ApiUnavailable(f"watch {path}: {response.status}")
                    raise error_for(response.status, decoded)
                async for line in response.content:
                    if not line.strip():
                        continue
                    try:
                        event = json.loads(line)
                    except ValueError as exc:
                        # A garbled stream is a broken connection, not a fact about the objects.
                        raise ApiUnavailable(f"watch {path}: undecodable event ({exc})") from exc
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        raise error_for(int(obj.get("code") or 500), obj)
                    yield WatchEvent(type=str(event.get("type")), object=obj)
        except (aiohttp.ClientError, TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            raise ApiUnavailable(f"watch {path}: {type(exc).__name__}: {exc}") from exc


def _decode(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        decoded = json.loads(raw)
    except ValueError:
        return {"message": raw[:200].decode("utf-8", "replace")}
    return decoded if isinstance(decoded, dict) else {"items": decoded}
