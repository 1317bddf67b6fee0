"""Reading kubegate's objects back from a real cluster in tests."""

from __future__ import annotations

import base64
import json
from typing import Any

from kubegate.devcluster import Kubectl
from kubegate.validation_config.model import TokenEntry
from kubegate.validation_config.shards import DATA_KEY, SHARD_LABEL, SHARD_LABEL_VALUE, decode_shard


def config_entries(kubectl: Kubectl, operator_namespace: str) -> list[TokenEntry]:
    """Every entry of the validation config, read from its shard Secrets."""
    secrets = kubectl.json("get", "secrets", "-n", operator_namespace, "-l", f"{SHARD_LABEL}={SHARD_LABEL_VALUE}")
    return [e for s in secrets["items"] for e in decode_shard(s["data"][DATA_KEY])]


def shard_versions(kubectl: Kubectl, operator_namespace: str) -> dict[str, str]:
    secrets = kubectl.json("get", "secrets", "-n", operator_namespace, "-l", f"{SHARD_LABEL}={SHARD_LABEL_VALUE}")
    return {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in secrets["items"]}


def secret_token(kubectl: Kubectl, namespace: str, name: str, key: str = "token") -> str:
    secret = kubectl.json("get", "secret", "-n", namespace, name)
    return base64.b64decode(secret["data"][key]).decode()


def static_token(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any] | None:
    result = kubectl("get", "statictoken", "-n", namespace, name, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def condition(obj: dict[str, Any] | None, type_: str = "Ready") -> dict[str, Any]:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


def events(kubectl: Kubectl, namespace: str, name: str) -> list[dict[str, Any]]:
    found = kubectl.json("get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")
    return list(found["items"])


def apply(kubectl: Kubectl, *objects: dict[str, Any], namespace: str | None = None) -> None:
    args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
    kubectl(*args, stdin="\n---\n".join(json.dumps(o) for o in objects))


def token_resource(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kubegate.dev/v1alpha1", "kind": "StaticToken", "metadata": {"name": name}, "spec": spec}
