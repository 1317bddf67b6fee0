"""manifests/ grant the operator and the server what their code asks the API for (the real API server
refuses the rest; a missing verb shows only in a deployed cluster, so it is checked here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _rules(component: str, kind: str) -> list[dict[str, Any]]:
    documents = yaml.safe_load_all((ROOT / "manifests" / component / "rbac.yaml").read_text())
    (role,) = [d for d in documents if d and d["kind"] == kind]
    return list(role["rules"])


def _allows(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)


@pytest.mark.parametrize(
    ("group", "resource", "verb"),
    [
        # kopf watches OIDCProviders (cluster-scoped), adds its finalizer and progress annotations.
        *(("kubegate.dev", "oidcproviders", v) for v in ("get", "list", "watch", "patch")),
        ("kubegate.dev", "oidcproviders/status", "patch"),
        # The client Secret named by spec.clientSecretRef, in any namespace, watched by the provider's daemon.
        *(("", "secrets", v) for v in ("get", "list", "watch")),
        # The published provider Secret in the operator namespace.
        *(("", "secrets", v) for v in ("create", "update", "delete")),
        ("", "events", "create"),
    ],
)
def test_the_operator_may_reconcile_oidc_providers(group: str, resource: str, verb: str) -> None:
    assert _allows(_rules("operator", "ClusterRole"), group, resource, verb)


@pytest.mark.parametrize("verb", ["get", "list", "watch"])
def test_the_server_may_watch_the_published_providers(verb: str) -> None:
    assert _allows(_rules("server", "Role"), "", "secrets", verb)
