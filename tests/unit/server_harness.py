"""An auth server in memory for unit tests: a real app and config state, a fake StaticToken store.

The fake store plays the operator and the watcher: the hash of a StaticToken it "creates" appears in the
config state after a configurable delay, as it would after the operator wrote the validation config.
"""

from __future__ import annotations

import asyncio
import io
import ssl
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp

from kubegate.client_tokens.key_watch import SigningKeys
from kubegate.contracts.token_format import generate_token, hash_token
from kubegate.kube import AlreadyExists, Conflict, NotFound
from kubegate.methods.kubernetes.exchange import Exchange
from kubegate.methods.token.store import CreatedToken
from kubegate.server.app import ServerParts, build_app, config_gauges, limits
from kubegate.server.deny_list import DenyListWriter
from kubegate.server.metrics import Metrics
from kubegate.settings import ADMIN_GROUP, ServerSettings
from kubegate.state.config import ConfigState
from kubegate.state.revocations import Revocations
from kubegate.validation_config.model import TokenEntry
from kubegate.verify import OidcVerifier, StaticTokenIndex, Verifier
from kubegate.verify.client_tokens import JwksClientTokenVerifier
from kubegate.web.httpserver.access_log import AccessLog
from kubegate.web.httpserver.listener import listening

SOURCE = "kubegate-static-tokens-1-000"


class FakeTokenStore:
    def __init__(self, harness: Harness) -> None:
        self._harness = harness
        self.propagation_delay = 0.0
        """Seconds before a change shows in the config state; None: never."""
        self.create_error: BaseException | None = None
        self.delete_error: BaseException | None = None
        self.expire_error: BaseException | None = None
        self.created: list[dict[str, Any]] = []
        self.deleted: list[tuple[str, str]] = []
        self.expired: list[tuple[str, str, datetime]] = []
        self.published: list[TokenEntry] = []
        self.removed_elsewhere: set[tuple[str, str]] = set()
        """StaticTokens deleted behind the server's back (with kubectl, say)."""
        self.exists_error: BaseException | None = None
        """What the fake operator publishes (after `propagation_delay`) for the StaticTokens created."""

    async def create(self, resource: dict[str, Any]) -> CreatedToken:
        self.created.append(resource)
        if self.create_error is not None:
            raise self.create_error
        namespace, name = resource["metadata"]["namespace"], resource["metadata"]["name"]
        spec = resource["spec"]
        created = CreatedToken(
            namespace=namespace, name=name, uid=str(uuid.uuid4()), created_at=datetime.now(UTC).replace(microsecond=0)
        )
        entry = TokenEntry(
            sha256=spec["tokenHash"],
            token_id=created.uid,
            name=name,
            namespace=namespace,
            metadata=spec.get("metadata") or {},
            created_at=created.created_at,
            expires_at=spec.get("expiresAt"),
        )
        self.published.append(entry)
        self._later(lambda: self._harness.put(entry))
        return created

    async def exists(self, namespace: str, name: str, *, uid: str) -> bool:
        if self.exists_error is not None:
            raise self.exists_error
        known = any(e.token_id == uid for e in self.published)
        return known and (namespace, name) not in self.removed_elsewhere and (namespace, name) not in self.deleted

    async def delete(self, namespace: str, name: str) -> None:
        self.deleted.append((namespace, name))
        if self.delete_error is not None:
            raise self.delete_error
        self._later(lambda: self._harness.drop(namespace, name))

    async def expire(self, namespace: str, name: str, at: datetime) -> None:
        self.expired.append((namespace, name, at))
        if self.expire_error is not None:
            raise self.expire_error
        self._later(lambda: self._harness.drop(namespace, name))

    def _later(self, change: Any) -> None:
        if self.propagation_delay is None:
            return
        asyncio.get_running_loop().call_later(self.propagation_delay, change)


class FakeConfigMaps:
    """The three calls Revocations makes, with resourceVersion checks like the API server's."""

    def __init__(self) -> None:
        self.object: dict[str, Any] | None = None
        self.version = 0

    async def get(self, path: str) -> dict[str, Any]:
        if self.object is None:
            raise NotFound(status=404, reason="NotFound", message="not found")
        return self.object

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.object is not None:
            raise AlreadyExists(status=409, reason="AlreadyExists", message="exists")
        return self._store(body)

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self.object is not None
        if body["metadata"]["resourceVersion"] != self.object["metadata"]["resourceVersion"]:
            raise Conflict(status=409, reason="Conflict", message="changed")
        return self._store(body)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.object = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
        return self.object


class Harness:
    def __init__(
        self, settings: ServerSettings | None = None, *, ready: bool = True, oidc: OidcVerifier | None = None
    ) -> None:
        self.oidc = oidc
        self.settings = settings or ServerSettings(insecure_http=True, token_wait_timeout=1.0)
        self.index = StaticTokenIndex()
        self.config = ConfigState(self.index)
        if ready:
            self.config.synced("1")
        self.store = FakeTokenStore(self)
        self.metrics = Metrics()
        config_gauges(self.metrics, self.config)
        self._entries: dict[str, list[TokenEntry]] = defaultdict(list)
        self.signing_keys: SigningKeys | None = None
        self.revocations: Revocations | None = None
        self.deny_list: DenyListWriter | None = None
        self.client_tokens: JwksClientTokenVerifier | None = None
        self.exchange: Exchange | None = None

    @property
    def parts(self) -> ServerParts:
        return ServerParts(
            settings=self.settings,
            config=self.config,
            verifier=Verifier(static_tokens=self.index, oidc=self.oidc, client_tokens=self.client_tokens),
            metrics=self.metrics,
            token_store=self.store,
            public_keys=self.signing_keys.public if self.signing_keys is not None else None,
            revocations=self.revocations,
            deny_list=self.deny_list,
            kubernetes_exchange=self.exchange,
        )

    def add_token(
        self,
        name: str = "app",
        *,
        namespace: str = "team",
        groups: tuple[str, ...] = (),
        metadata: dict[str, str] | None = None,
        expires_at: datetime | None = None,
        created_at: datetime | None = None,
        token: str | None = None,
    ) -> tuple[str, TokenEntry]:
        token = token or generate_token("kg_")
        entry = TokenEntry(
            sha256=hash_token(token),
            token_id=str(uuid.uuid4()),
            name=name,
            namespace=namespace,
            groups=groups,
            metadata=metadata or {},
            created_at=created_at or datetime.now(UTC).replace(microsecond=0),
            expires_at=expires_at,
        )
        self.put(entry)
        return token, entry

    def enable_revocations(self) -> FakeConfigMaps:
        """Turn the client-token deny-list on; the ConfigMap it writes is the returned fake's `object`."""
        configmaps = FakeConfigMaps()
        self.revocations = Revocations()
        self.deny_list = DenyListWriter(configmaps, "kubegate-system", self.revocations)  # type: ignore[arg-type]
        return configmaps

    def admin(self) -> str:
        token, _ = self.add_token("admin", namespace="kubegate-system", groups=(ADMIN_GROUP,))
        return token

    def put(self, entry: TokenEntry) -> None:
        entries = [e for e in self._entries[SOURCE] if e.token_id != entry.token_id]
        self._entries[SOURCE] = [*entries, entry]
        self.config.replace_source(SOURCE, uuid.uuid4().hex, self._entries[SOURCE])

    def published_entries(self) -> list[TokenEntry]:
        """What the (fake) operator has published so far."""
        return list(self._entries[SOURCE])

    def drop(self, namespace: str, name: str) -> None:
        self._entries[SOURCE] = [e for e in self._entries[SOURCE] if (e.namespace, e.name) != (namespace, name)]
        self.config.replace_source(SOURCE, uuid.uuid4().hex, self._entries[SOURCE])

    @asynccontextmanager
    async def client(self) -> AsyncIterator[aiohttp.ClientSession]:
        """A client of this server, served on a free loopback port; paths are relative to it."""
        async with self.serve() as served, aiohttp.ClientSession(served.url) as client:
            yield client

    @asynccontextmanager
    async def serve(self, *, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[Served]:
        """Serve on a free loopback port with kubegate's access log, as `kubegate server` does."""
        served = Served()
        async with listening(
            build_app(self.parts),
            limits=limits(self.settings),
            ssl_context=ssl_context,
            access_log=served.sink,
            shutdown_timeout=2.0,
        ) as listener:
            served.port = int(listener.addresses[0].rpartition(":")[2])
            yield served


class Served:
    """A harness server listening on loopback."""

    def __init__(self) -> None:
        self.port = 0
        self._stream = io.StringIO()
        self.sink = AccessLog(self._stream)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> list[str]:
        """The access-log lines written so far."""
        self.sink.flush()
        return self._stream.getvalue().splitlines()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
