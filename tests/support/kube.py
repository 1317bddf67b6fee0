"""Reading kubegate's objects back from a real cluster in tests."""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubegate.devcluster import ClusterState, ExtraApiserver, Kubectl, start_apiserver, stop_apiserver
from kubegate.validation_config.model import TokenEntry
from kubegate.validation_config.shards import DATA_KEY, SHARD_LABEL, SHARD_LABEL_VALUE, decode_shard
from support import eventually


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


def apply_static_token(kubectl: Kubectl, namespace: str, name: str, *, groups: list[str] | None = None) -> None:
    apply(kubectl, token_resource(name, groups=groups or []), namespace=namespace)


def read_token(kubectl: Kubectl, namespace: str, secret: str, *, timeout: float = 60.0) -> str:
    """The token the operator wrote to `secret`, once it is there."""

    def token() -> str | None:
        result = kubectl("get", "secret", secret, "-n", namespace, "-o", "jsonpath={.data.token}", check=False)
        if result.returncode != 0 or not result.stdout:
            return None
        return base64.b64decode(result.stdout).decode()

    value: str = eventually(token, timeout=timeout, what=f"Secret {namespace}/{secret} to hold a token")
    return value


def token_kubeconfig(path: Path, *, server: str, ca_file: Path) -> Path:
    """A kubeconfig with no credentials of its own, for `kubectl --token`."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    path.write_text(json.dumps(config))
    return path


def webhook_kubeconfig(path: Path, server_url: str) -> Path:
    """The file kube-apiserver reads: `clusters` is the webhook, `users` how the apiserver calls it."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "kubegate", "cluster": {"server": f"{server_url}/apis/authentication.k8s.io/v1/tokenreviews"}}
        ],
        "users": [{"name": "kube-apiserver", "user": {}}],
        "contexts": [{"name": "webhook", "context": {"cluster": "kubegate", "user": "kube-apiserver"}}],
        "current-context": "webhook",
    }
    path.write_text(json.dumps(config))
    return path


@contextlib.contextmanager
def webhook_apiserver(
    cluster: ClusterState, server_url: str, work_dir: Path, *, cache_ttl_seconds: int
) -> Iterator[ExtraApiserver]:
    """A second kube-apiserver of `cluster` that authenticates bearer tokens with kubegate's TokenReview
    webhook at `server_url`. Plain http:// works in the webhook kubeconfig (kube-apiserver does not insist
    on TLS); production deployments use https:// with certificate-authority set."""
    config = webhook_kubeconfig(work_dir / "webhook.kubeconfig", server_url)
    name = f"webhook-{uuid.uuid4().hex[:6]}"
    extra = start_apiserver(
        cluster.state_dir,
        name=name,
        args=[
            f"--authentication-token-webhook-config-file={config}",
            "--authentication-token-webhook-version=v1",
            f"--authentication-token-webhook-cache-ttl={cache_ttl_seconds}s",
        ],
        die_with_parent=True,
    )
    try:
        yield extra
    finally:
        stop_apiserver(cluster.state_dir, name=name)


def whoami(kubectl: Kubectl, kubeconfig: Path, token: str) -> dict[str, Any] | None:
    """`kubectl --token <token> auth whoami`: the user kube-apiserver saw, or None when it was refused."""
    result = kubectl("--token", token, "auth", "whoami", "-o", "json", kubeconfig=kubeconfig, check=False)
    if result.returncode != 0:
        assert "Unauthorized" in result.stderr, result.stderr
        return None
    info: dict[str, Any] = json.loads(result.stdout)["status"]["userInfo"]
    return info
