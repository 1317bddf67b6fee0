"""The token method's own endpoint: `POST /auth/v1/method/token`, Flipt's "create token" call.

As Flipt does, the server generates the token and stores only its hash: it creates a StaticToken with
`spec.tokenHash` (so kubectl, Argo CD and Flux see every token), accepts the token on this replica at once
(a provisional entry in its copy of the validation config) and returns the plaintext, once. The operator
then publishes the hash for every replica, with the StaticToken's uid as the token id; no Secret is written.

A provisional entry lasts until the published config carries the token, or the token is deleted through
this server. When the config has not carried it after `--token-wait-timeout`, the server looks at the
StaticToken: gone (deleted with kubectl, say), the entry is dropped; still there, the operator is only late
(down, or behind a burst of creates): the entry stays, with a warning, and is looked at again as often.

The StaticToken's name is chosen here rather than by the API server (generateName), so that a create whose
answer was lost can be undone: no StaticToken is left whose token nobody holds.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, ConfigDict, Field, ValidationError

from kubegate.contracts.authentication import ResponseModel
from kubegate.contracts.metadata import RESERVED_PREFIX as RESERVED_METADATA_PREFIX
from kubegate.contracts.metadata import TOKEN_DESCRIPTION as DESCRIPTION_METADATA
from kubegate.contracts.metadata import TOKEN_NAME as NAME_METADATA
from kubegate.contracts.token_format import generate_token, hash_token
from kubegate.kube import ApiError, ApiUnavailable
from kubegate.methods.token.store import CreatedToken, StaticTokenStore
from kubegate.resources.common import DNS_LABEL_PATTERN
from kubegate.resources.statictoken import StaticToken, StaticTokenSpec
from kubegate.settings import ServerSettings
from kubegate.state.config import ConfigState
from kubegate.validation_config.model import TokenEntry
from kubegate.verify import Authentication
from kubegate.verify.requirements import Requirement
from kubegate.web.bodies import RequestModel, read_json
from kubegate.web.errors import ApiProblem, field_error, from_kube, invalid, unavailable
from kubegate.web.request import Request, caller
from kubegate.web.responses import Response, json_response
from kubegate.web.routes import Authenticated, Route

log = logging.getLogger(__name__)

PATH = "/auth/v1/method/token"
REQUESTED_BY_ANNOTATION = "kubegate.dev/requested-by"
CREATED_BY_LABEL = "kubegate.dev/created-by"
NAME_PREFIX = "token-"
# generateName's alphabet (no vowels, so no words), and enough characters that names never collide in practice.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_NAME_LENGTH = 10
_DNS_LABEL = re.compile(DNS_LABEL_PATTERN)

MetadataKey = Annotated[str, Field(min_length=1, max_length=253)]
MetadataValue = Annotated[str, Field(max_length=4096)]


class CreateTokenRequest(RequestModel):
    """Flipt's CreateTokenRequest. Unknown fields are ignored, as Flipt's gateway ignores them, so that a
    client written for a newer Flipt (with fields kubegate lacks) still creates its token."""

    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, Field(min_length=1, max_length=253)]
    description: Annotated[str, Field(max_length=1024)] = ""
    expires_at: AwareDatetime | None = None
    namespace_key: str = ""
    """The Kubernetes namespace of the StaticToken; empty: the server's --token-namespace."""
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=62, default_factory=dict)]


class CreateTokenResponse(ResponseModel):
    client_token: str
    authentication: Authentication


class TokenMethod:
    """The token method's state: where StaticTokens are written, the prefix of the tokens it makes, and this
    server's copy of the validation config, where a new token is accepted at once."""

    def __init__(self, *, settings: ServerSettings, store: StaticTokenStore, config: ConfigState) -> None:
        self._settings = settings
        self._store = store
        self._config = config
        self._checks: set[asyncio.Task[None]] = set()

    def routes(self) -> list[Route]:
        access = Authenticated(
            requirement=Requirement.one_of(self._settings.create_token_groups), action="creating tokens"
        )
        return [Route("POST", PATH, self.create_token, access, reads_body=True)]

    async def create_token(self, request: Request) -> Response:
        settings = self._settings
        requested_by = caller(request).identity.username
        body = read_json(request, CreateTokenRequest)
        namespace = _namespace(settings, body.namespace_key)
        token = generate_token(settings.static_token_prefix)
        token_hash = hash_token(token)
        resource = _resource(body, namespace=namespace, requested_by=requested_by, token_hash=token_hash)
        name = resource["metadata"]["name"]
        try:
            created = await self._store.create(resource)
        except ApiUnavailable as exc:
            # The create may have gone through with its answer lost: remove what nobody can use.
            raise await self._undo(
                namespace, name, f"could not create StaticToken {namespace}/{name} ({exc})"
            ) from None
        except ApiError as exc:
            raise from_kube(exc, f"create a StaticToken in namespace {namespace}") from None
        entry = _entry(body, created, token_hash)
        record = self._config.add_provisional(entry)
        self._check_later(entry, late=False)
        log.info("created token %s (StaticToken %s/%s) for %s", created.uid, namespace, created.name, requested_by)
        return json_response(CreateTokenResponse(client_token=token, authentication=record.authentication()))

    def _check_later(self, entry: TokenEntry, *, late: bool) -> None:
        def start() -> None:
            task = asyncio.create_task(self._check(entry, late=late), name=f"provisional-{entry.token_id}")
            self._checks.add(task)
            task.add_done_callback(self._checks.discard)

        asyncio.get_running_loop().call_later(self._settings.token_wait_timeout, start)

    async def _check(self, entry: TokenEntry, *, late: bool) -> None:
        """The published config has not carried the token in time: drop it if its StaticToken is gone."""
        if not self._config.is_provisional(entry):
            return
        try:
            exists = await self._store.exists(entry.namespace, entry.name, uid=entry.token_id)
        except (ApiError, ApiUnavailable) as exc:
            log.debug("cannot tell whether StaticToken %s/%s exists (%s)", entry.namespace, entry.name, exc)
            exists = True  # the memory serves while the API is away, as for the published config
        if not exists:
            self._config.drop_provisional(entry.token_id)
            log.info(
                "token %s: StaticToken %s/%s was deleted before the operator published it; this server no longer "
                "accepts it",
                entry.token_id,
                entry.namespace,
                entry.name,
            )
            return
        if not late:
            log.warning(
                "token %s (StaticToken %s/%s) is not in the published validation config %.0fs after it was created: "
                "only this server accepts it until the operator publishes it; check that the operator runs and "
                "watches namespace %s",
                entry.token_id,
                entry.namespace,
                entry.name,
                self._settings.token_wait_timeout,
                entry.namespace,
            )
        self._check_later(entry, late=True)

    async def _undo(self, namespace: str, name: str, why: str) -> ApiProblem:
        """Delete a StaticToken whose token cannot be returned, so that no token exists that nobody holds."""
        try:
            await asyncio.shield(self._store.delete(namespace, name))
        except (ApiError, ApiUnavailable) as exc:
            log.warning("could not delete StaticToken %s/%s after a failed create: %s", namespace, name, exc)
            return unavailable(
                f"{why}. Deleting it in case it was created failed too ({exc}): delete it with "
                f"`kubectl delete statictoken -n {namespace} {name}` if it exists (its token was never returned, "
                "so nobody holds it), then retry"
            )
        return unavailable(f"{why}. No StaticToken was left behind and no token was created; retry later")


def _entry(body: CreateTokenRequest, created: CreatedToken, token_hash: str) -> TokenEntry:
    """The validation-config entry the operator will publish for the new StaticToken, as this server holds
    it until then."""
    return TokenEntry(
        sha256=token_hash,
        token_id=created.uid,
        name=created.name,
        namespace=created.namespace,
        metadata=_token_metadata(body),
        created_at=created.created_at,
        expires_at=body.expires_at,
    )


def _token_metadata(body: CreateTokenRequest) -> dict[str, str]:
    return {**body.metadata, NAME_METADATA: body.name, DESCRIPTION_METADATA: body.description}


def _namespace(settings: ServerSettings, namespace_key: str) -> str:
    namespace = namespace_key or settings.token_namespace
    allowed = settings.token_namespaces
    if not _is_dns_label(namespace):
        raise field_error("namespaceKey", f"{namespace!r} is not a Kubernetes namespace name")
    if allowed and namespace not in allowed:
        raise field_error("namespaceKey", f"tokens may be created only in the namespaces {', '.join(allowed)}")
    return namespace


def _is_dns_label(value: str) -> bool:
    return len(value) <= 63 and _DNS_LABEL.fullmatch(value) is not None


def _resource(body: CreateTokenRequest, *, namespace: str, requested_by: str, token_hash: str) -> dict[str, Any]:
    reserved = sorted(k for k in body.metadata if k.startswith(RESERVED_METADATA_PREFIX))
    if reserved:
        raise field_error(
            "metadata", f"keys starting with {RESERVED_METADATA_PREFIX} are kubegate's: {', '.join(reserved)}"
        )
    if body.expires_at is not None and body.expires_at <= datetime.now(UTC):
        raise field_error("expiresAt", "must be in the future")
    try:
        spec = StaticTokenSpec(
            description=body.description or None,
            expires_at=body.expires_at,
            metadata=_token_metadata(body),
            token_hash=token_hash,
        )
    except ValidationError as exc:
        raise invalid(f"the token cannot be stored: {exc.errors()[0]['msg']}") from None
    resource = StaticToken(
        metadata={
            "name": NAME_PREFIX + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(_NAME_LENGTH)),
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "kubegate", CREATED_BY_LABEL: "kubegate-server"},
            "annotations": {REQUESTED_BY_ANNOTATION: requested_by},
        },
        spec=spec,
    )
    return resource.to_wire()
