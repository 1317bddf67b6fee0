"""The token method's own endpoint: `POST /auth/v1/method/token`, Flipt's "create token" call.

It creates a StaticToken resource (so kubectl, Argo CD and Flux see every token), waits until the
operator issued the token and this server accepts it, and only then returns it. The wait is bounded by
`--token-wait-timeout`; on timeout the StaticToken is deleted again, so a failed call leaves no token
behind (the answer says so, or says which resource to delete when even that failed).
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AwareDatetime, ConfigDict, Field, ValidationError

from kubegate.contracts.authentication import ResponseModel
from kubegate.contracts.metadata import RESERVED_PREFIX as RESERVED_METADATA_PREFIX
from kubegate.contracts.metadata import TOKEN_DESCRIPTION as DESCRIPTION_METADATA
from kubegate.contracts.metadata import TOKEN_NAME as NAME_METADATA
from kubegate.kube import ApiError, ApiUnavailable
from kubegate.methods.token.store import StaticTokenStore, TokenNotIssued
from kubegate.resources.common import DNS_LABEL_PATTERN
from kubegate.resources.statictoken import StaticToken, StaticTokenSpec
from kubegate.settings import ServerSettings
from kubegate.state.config import ConfigState
from kubegate.verify import Authentication, token_digest
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
GENERATE_NAME = "token-"
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
    """The token method's state: where StaticTokens are written, and this server's copy of the validation
    config, on which it waits for a new token to arrive."""

    def __init__(self, *, settings: ServerSettings, store: StaticTokenStore, config: ConfigState) -> None:
        self._settings = settings
        self._store = store
        self._config = config

    def routes(self) -> list[Route]:
        access = Authenticated(
            requirement=Requirement.one_of(self._settings.create_token_groups), action="creating tokens"
        )
        return [Route("POST", PATH, self.create_token, access, reads_body=True)]

    async def create_token(self, request: Request) -> Response:
        settings, config = self._settings, self._config
        requested_by = caller(request).identity.username
        body = read_json(request, CreateTokenRequest)
        namespace = _namespace(settings, body.namespace_key)
        resource = _resource(body, namespace=namespace, requested_by=requested_by)
        try:
            issued = await self._store.create(resource, timeout=settings.token_wait_timeout)
        except (ApiError, ApiUnavailable) as exc:
            raise from_kube(exc, f"create a StaticToken in namespace {namespace}") from None
        except TokenNotIssued as exc:
            raise await self._undo(exc.namespace, exc.name, exc.message) from None
        digest = token_digest(issued.token)
        accepted = await config.wait_until(
            lambda: config.index.lookup(digest) is not None, timeout=settings.token_wait_timeout
        )
        record = config.index.lookup(digest)
        if not accepted or record is None:
            raise await self._undo(
                issued.namespace,
                issued.name,
                f"the token of StaticToken {issued.namespace}/{issued.name} was issued, but did not reach this "
                f"server's validation config within {settings.token_wait_timeout:.0f}s",
            )
        log.info(
            "created token %s (StaticToken %s/%s) for %s", issued.token_id, issued.namespace, issued.name, requested_by
        )
        return json_response(CreateTokenResponse(client_token=issued.token, authentication=record.authentication()))

    async def _undo(self, namespace: str, name: str, why: str) -> ApiProblem:
        """Delete a StaticToken whose token cannot be returned, so that no token exists that nobody holds."""
        try:
            await asyncio.shield(self._store.delete(namespace, name))
        except (ApiError, ApiUnavailable) as exc:
            log.warning("could not delete StaticToken %s/%s after a failed create: %s", namespace, name, exc)
            return unavailable(
                f"{why}. Deleting the StaticToken failed too ({exc}): it may still become valid; delete it with "
                f"`kubectl delete statictoken -n {namespace} {name}`, then retry"
            )
        return unavailable(f"{why}. The StaticToken was deleted again, so no token was created; retry later")


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


def _resource(body: CreateTokenRequest, *, namespace: str, requested_by: str) -> dict[str, object]:
    reserved = sorted(k for k in body.metadata if k.startswith(RESERVED_METADATA_PREFIX))
    if reserved:
        raise field_error(
            "metadata", f"keys starting with {RESERVED_METADATA_PREFIX} are kubegate's: {', '.join(reserved)}"
        )
    if body.expires_at is not None and body.expires_at <= datetime.now(UTC):
        raise field_error("expiresAt", "must be in the future")
    metadata = {**body.metadata, NAME_METADATA: body.name, DESCRIPTION_METADATA: body.description}
    try:
        spec = StaticTokenSpec(description=body.description or None, expires_at=body.expires_at, metadata=metadata)
    except ValidationError as exc:
        raise invalid(f"the token cannot be stored: {exc.errors()[0]['msg']}") from None
    resource = StaticToken(
        metadata={
            "generateName": GENERATE_NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "kubegate", CREATED_BY_LABEL: "kubegate-server"},
            "annotations": {REQUESTED_BY_ANNOTATION: requested_by},
        },
        spec=spec,
    )
    return resource.to_wire()
