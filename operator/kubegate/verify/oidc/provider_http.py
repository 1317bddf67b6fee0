"""HTTP calls to OIDC providers: discovery, JWKS, introspection, userinfo. The only place kubegate talks to
an identity provider.

Strict on purpose: only the URL given is called (redirects are never followed, so an answer cannot send
kubegate to another host), each provider's own CA bundle is trusted when it has one, bodies are bounded,
every call has a deadline, and one provider gets a bounded number of calls at once. A provider that cannot
be reached raises `ProviderUnreachable` (the caller answers 503); one that answers uselessly raises
`ProviderError`. Neither message ever holds a token or a client secret.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus, urlsplit

import aiohttp

from kubegate.verify.errors import VerifierUnavailable

MAX_BODY_BYTES = 1024 * 1024


class ProviderUnreachable(VerifierUnavailable):
    """The provider could not be asked now: connection refused or reset, TLS failure, timeout, a 5xx answer,
    or too many calls to it in flight."""


class ProviderError(Exception):
    """The provider answered, but not with what was asked for: a 3xx or 4xx status, a body that is not a JSON
    object, or one over the size limit."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ProviderHttp:
    """One per process; holds a connection pool per trusted CA bundle."""

    def __init__(
        self,
        *,
        timeout: float,
        max_concurrent: int = 16,
        max_body_bytes: int = MAX_BODY_BYTES,
        user_agent: str = "kubegate",
    ) -> None:
        self._timeout = timeout
        self._max_concurrent = max_concurrent
        self._max_body_bytes = max_body_bytes
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        self._sessions: dict[str | None, aiohttp.ClientSession] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}

    async def get_json(self, url: str, *, ca_bundle: str | None, bearer: str | None = None) -> dict[str, Any]:
        """GET `url` and return its JSON object; `bearer` is sent as `Authorization: Bearer` (userinfo)."""
        headers = {**self._headers, "Authorization": f"Bearer {bearer}"} if bearer is not None else self._headers
        return await self._call("GET", url, ca_bundle=ca_bundle, headers=headers)

    async def post_form(
        self,
        url: str,
        form: Mapping[str, str],
        *,
        ca_bundle: str | None,
        basic_auth: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """POST `form` (application/x-www-form-urlencoded) to `url` and return its JSON object; `basic_auth`:
        client id and secret (RFC 6749 section 2.3.1; each form-urlencoded, then HTTP Basic)."""
        headers = self._headers
        if basic_auth is not None:
            client_id, secret = basic_auth
            credentials = base64.b64encode(f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()).decode("ascii")
            headers = {**headers, "Authorization": f"Basic {credentials}"}
        return await self._call("POST", url, ca_bundle=ca_bundle, headers=headers, data=dict(form))

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()

    async def _call(self, method: str, url: str, *, ca_bundle: str | None, **kwargs: Any) -> dict[str, Any]:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ProviderError(f"not an absolute http(s) URL: {_where(url)}")
        where = _where(url)
        slot = self._slots.setdefault(parts.netloc.lower(), asyncio.Semaphore(self._max_concurrent))
        try:
            async with asyncio.timeout(self._timeout):
                async with slot:
                    session = self._session(ca_bundle)
                    async with session.request(method, url, allow_redirects=False, **kwargs) as response:
                        return await self._json(response, where)
        except TimeoutError:
            raise ProviderUnreachable(f"{where} did not answer within {self._timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise ProviderUnreachable(f"{where} cannot be reached: {type(exc).__name__}") from None
        except ssl.SSLError as exc:
            raise ProviderUnreachable(f"{where}: TLS failed ({exc.reason})") from None

    async def _json(self, response: aiohttp.ClientResponse, where: str) -> dict[str, Any]:
        status = response.status
        if status >= 500:
            raise ProviderUnreachable(f"{where} answered {status}")
        if status >= 300 or status < 200:
            raise ProviderError(f"{where} answered {status}", status=status)
        declared = response.content_length
        if declared is not None and declared > self._max_body_bytes:
            raise ProviderError(f"{where} sent {declared} bytes, over {self._max_body_bytes}", status=status)
        body = await _read_up_to(response.content, self._max_body_bytes + 1)
        if len(body) > self._max_body_bytes:
            raise ProviderError(f"{where} sent over {self._max_body_bytes} bytes", status=status)
        try:
            document = json.loads(body)
        except ValueError:
            raise ProviderError(f"{where} did not send JSON", status=status) from None
        if not isinstance(document, dict):
            raise ProviderError(f"{where} did not send a JSON object", status=status)
        return document

    def _session(self, ca_bundle: str | None) -> aiohttp.ClientSession:
        session = self._sessions.get(ca_bundle)
        if session is None or session.closed:
            # With a bundle, only the bundle is trusted; without one, the system's trust store.
            context = ssl.create_default_context(cadata=ca_bundle)
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context, limit=0),
                # Proxy variables are not read: a provider is called directly or not at all.
                trust_env=False,
                raise_for_status=False,
            )
            self._sessions[ca_bundle] = session
        return session


async def _read_up_to(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The body until its end or `limit` bytes. One `read(limit)` returns what has arrived so far: a body
    that comes in several TLS records or chunks would be cut short, and refused as not JSON."""
    body = bytearray()
    while len(body) < limit:
        chunk = await stream.read(limit - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def _where(url: str) -> str:
    """The URL without query or fragment, for messages: a query could carry a token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
