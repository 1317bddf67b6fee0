"""The bootstrap token: an admin StaticToken created at start-up, so that a new install can be used.

As Flipt's: created when the token method is on and none exists, logged once. Unlike a plain
"create if missing", a marker ConfigMap remembers that it was created, so that deleting the resource
retires it for good unless `--bootstrap-recreate` asks otherwise.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from kubegate.contracts.api_paths import path_for
from kubegate.contracts.metadata import TOKEN_NAME
from kubegate.contracts.timestamps import format_time
from kubegate.kube import AlreadyExists, KubeApi, NotFound
from kubegate.operator.statictoken import BOOTSTRAP_LABEL
from kubegate.resources.statictoken import SecretKeyRef, StaticToken, StaticTokenSpec
from kubegate.settings import BOOTSTRAP_NAME, OperatorSettings

log = logging.getLogger(__name__)
MARKER_NAME = "kubegate-bootstrap"


def bootstrap_resource(settings: OperatorSettings) -> dict[str, Any]:
    """The StaticToken the operator creates, as it would be applied with kubectl."""
    known = settings.bootstrap_secret_ref()
    spec = StaticTokenSpec(
        description="Bootstrap token created by kubegate at start-up",
        ttl=settings.bootstrap_expiration,
        groups=[settings.admin_group],
        metadata={TOKEN_NAME: "initial_bootstrap_token"},
        secret_ref=SecretKeyRef(name=known[0], key=known[1]) if known else None,
    )
    resource = StaticToken(
        metadata={
            "name": BOOTSTRAP_NAME,
            "namespace": settings.operator_namespace,
            "labels": {BOOTSTRAP_LABEL: "true", "app.kubernetes.io/managed-by": "kubegate"},
        },
        spec=spec,
    )
    return resource.to_wire()


async def ensure_bootstrap_token(client: KubeApi, settings: OperatorSettings) -> str:
    """Create the bootstrap StaticToken when due; returns what was done, for the log."""
    if not (settings.token_method and settings.bootstrap):
        return "disabled"
    namespace = settings.operator_namespace
    tokens = StaticToken.path(namespace=namespace)
    marker_path = path_for(plural="configmaps", namespace=namespace, name=MARKER_NAME)
    try:
        await client.get(f"{tokens}/{BOOTSTRAP_NAME}")
        return "exists"
    except NotFound:
        pass
    try:
        await client.get(marker_path)
        marker_exists = True
    except NotFound:
        marker_exists = False
    if marker_exists and not settings.bootstrap_recreate:
        log.info(
            "the bootstrap token %s/%s was deleted and is not created again (set --bootstrap-recreate to do so)",
            namespace,
            BOOTSTRAP_NAME,
        )
        return "retired"
    try:
        await client.create(tokens, bootstrap_resource(settings))
    except AlreadyExists:
        return "exists"
    marker = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": MARKER_NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "kubegate"},
        },
        "data": {"createdAt": format_time(datetime.now(UTC)), "statictoken": BOOTSTRAP_NAME},
    }
    try:
        await client.create(path_for(plural="configmaps", namespace=namespace), marker)
    except AlreadyExists:
        await client.replace(marker_path, marker)
    log.info("created the bootstrap StaticToken %s/%s", namespace, BOOTSTRAP_NAME)
    return "created"
