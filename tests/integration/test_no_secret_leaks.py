"""No secret leaves its Secret: the operator and the server run at DEBUG through a realistic flow, then
every log line and every object of the cluster is searched for every secret the flow made.

The secrets: every static token (bootstrap, applied, created through the API, brought in a Secret of its
owner, and the old and new values of a rotation), every private signing key (the JWK member `d`, before
and after a key rotation), a provider's client secret, the service-account token exchanged and the client
token it became. Each may sit in its own Secret only; the bootstrap token also in one log line.
Searched: the text of each log, and of each object its JSON with every string that is base64 or gzip (as
Secret data and the validation config are) or JSON (as kopf's annotations are) decoded, recursively.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubegate.client_tokens import keys
from kubegate.devcluster import ClusterState, Kubectl
from kubegate.devcluster.dex import DexServer
from kubegate.devcluster.ports import pick_free_ports
from kubegate.devcluster.processes import Child, bootstrap_token, start_kubegate
from kubegate.validation_config.providers import secret_name
from support import eventually, http
from support.kube import condition, read_token
from support.leaks import Secret, find_leaks
from support.processes import ServerProcess, start_server

pytestmark = pytest.mark.integration
AUDIENCE = "kubegate-leaks"


def _all_objects(kubectl: Kubectl) -> list[dict[str, Any]]:
    """Every object of every listable kind, in every namespace."""
    kinds = kubectl("api-resources", "--verbs=list", "-o", "name").stdout.split()
    objects: list[dict[str, Any]] = []
    for kind in kinds:
        result = kubectl("get", kind, "--all-namespaces", "-o", "json", check=False)
        if result.returncode == 0:
            objects.extend(json.loads(result.stdout)["items"])
    return objects


@dataclass
class Flow:
    kubectl: Kubectl
    operator: Child
    server: ServerProcess
    operator_ns: str
    apps: str
    secrets: list[Secret] = field(default_factory=list)

    def keep(self, what: str, value: str, *homes: str, log_lines: int = 0) -> str:
        assert value, f"{what} is empty"
        self.secrets.append(Secret(what, value, set(homes), log_lines))
        return value

    def signing_keys(self) -> keys.KeySet:
        raw = self.kubectl(
            "get", "secret", "-n", self.operator_ns, keys.SECRET_NAME, "-o", "jsonpath={.data.keys\\.json}"
        ).stdout
        return keys.decode(raw)

    def apply(self, obj: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", stdin=json.dumps(obj))


def _static_token(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubegate.dev/v1alpha1",
        "kind": "StaticToken",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


@pytest.fixture
def flow(dev_cluster: ClusterState, kubectl: Kubectl, crds: list[str], tmp_path: Path) -> Iterator[Flow]:
    suffix = uuid.uuid4().hex[:6]
    operator_ns, apps = f"kg-leak-op-{suffix}", f"kg-leak-apps-{suffix}"
    for ns in (operator_ns, apps):
        kubectl("create", "namespace", ns)
    kubectl("create", "serviceaccount", "-n", apps, "deployer")
    bindings = tmp_path / "bindings.yaml"
    bindings.write_text(f"- namespaces: ['{apps}']\n  serviceAccounts: ['deployer']\n  groups: ['kubegate:admin']\n")
    health, port = pick_free_ports(2)
    operator = start_kubegate(
        "operator",
        [
            "operator",
            "--standalone",
            "--log-level=DEBUG",
            "--token-prefix=kg_",
            f"--operator-namespace={operator_ns}",
            f"--namespace={operator_ns}",
            f"--namespace={apps}",
            f"--health-address=127.0.0.1:{health}",
            "--client-token-max-lifetime=1h",
        ],
        kubeconfig=dev_cluster.kubeconfig,
        log_file=tmp_path / "operator.log",
    )
    server = start_server(
        "server",
        kubeconfig=dev_cluster.kubeconfig,
        operator_namespace=operator_ns,
        log_dir=tmp_path,
        port=port,
        extra=[
            "--log-level=DEBUG",
            f"--issuer-url=http://127.0.0.1:{port}",
            f"--serviceaccount-bindings-file={bindings}",
            f"--serviceaccount-audiences={AUDIENCE}",
        ],
    )
    try:
        yield Flow(kubectl, operator, server, operator_ns, apps)
    finally:
        server.stop()
        operator.stop()
        for ns in (operator_ns, apps):
            kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_no_secret_outside_its_own_secret(flow: Flow, dex_fresh: DexServer) -> None:
    kubectl, op, apps = flow.kubectl, flow.operator_ns, flow.apps
    bootstrap = flow.keep(
        "the bootstrap token", bootstrap_token(flow.operator.log_file), f"{op}/initial-bootstrap-token", log_lines=1
    )
    eventually(lambda: http.get(flow.server.url + "/auth/v1/self", token=bootstrap)[0] == 200, timeout=60, what="up")
    first_keys = eventually(flow.signing_keys, timeout=30, what="the signing keys")

    # A provider's client secret, referenced by an OIDCProvider; the operator publishes it for the servers.
    provider = f"leak-{uuid.uuid4().hex[:6]}"
    client_secret = flow.keep(
        "a client secret", "cs-" + uuid.uuid4().hex, f"{op}/leak-client", f"{op}/{secret_name(provider)}"
    )
    kubectl("create", "secret", "generic", "-n", op, "leak-client", f"--from-literal=clientSecret={client_secret}")
    flow.apply(
        dex_fresh.oidc_provider(
            provider,
            clientSecretRef={"namespace": op, "name": "leak-client", "key": "clientSecret"},
            introspection=True,
        )
    )
    eventually(
        lambda: condition(kubectl.json("get", "oidcprovider", provider)).get("status") == "True",
        timeout=30,
        what="the OIDCProvider to be Ready (its client secret published)",
    )

    # Applied, rotated, brought, and deleted StaticTokens.
    flow.apply(_static_token(apps, "applied", groups=["deployers"], rotation={"every": "720h", "overlap": "1h"}))
    applied = flow.keep("an applied token", read_token(kubectl, apps, "applied"), f"{apps}/applied")
    brought = flow.keep("a brought token", "kg_brought_" + uuid.uuid4().hex, f"{apps}/brought-by-team")
    kubectl("create", "secret", "generic", "-n", apps, "brought-by-team", f"--from-literal=token={brought}")
    flow.apply(_static_token(apps, "brought", secretRef={"name": "brought-by-team", "key": "token"}))
    flow.apply(_static_token(apps, "doomed"))
    doomed = flow.keep("a deleted token", read_token(kubectl, apps, "doomed"), f"{apps}/doomed")
    for token in (applied, brought, doomed):
        eventually(
            lambda t=token: http.get(flow.server.url + "/auth/v1/self", token=t)[0] == 200,
            timeout=60,
            what="the tokens to work",
        )
    kubectl("annotate", "statictoken", "-n", apps, "applied", "kubegate.dev/rotate=1")
    rotated = eventually(
        lambda: (t := read_token(kubectl, apps, "applied")) != applied and t, timeout=60, what="a rotated value"
    )
    flow.keep("a rotated token", rotated, f"{apps}/applied")
    kubectl("delete", "statictoken", "-n", apps, "doomed", "--wait=true")

    # Through the API: create, pasted where an id belongs, delete.
    status, created = http.post(
        flow.server.url + "/auth/v1/method/token",
        json.dumps({"name": "from-api", "description": "made through the API"}),
        token=bootstrap,
        content_type="application/json",
    )
    assert status == 200, created
    token_id = created["authentication"]["id"]
    # Shown once and stored as a hash only: it has no home at all in the cluster.
    api_token = flow.keep("a token made through the API", created["clientToken"])
    eventually(
        lambda: any(
            (item.get("status") or {}).get("tokenId") == token_id
            for item in kubectl.json("get", "statictokens", "-n", op)["items"]
        ),
        timeout=30,
        what="the operator to publish the token made through the API",
    )
    for pasted in (applied, api_token):
        assert http.get(flow.server.url + f"/auth/v1/tokens/{pasted}", token=bootstrap)[0] == 404
        assert http.request("DELETE", flow.server.url + f"/auth/v1/tokens/{pasted}", token=bootstrap)[0] == 404
    assert http.request("DELETE", flow.server.url + f"/auth/v1/tokens/{token_id}", token=bootstrap)[0] == 200

    # The service-account exchange, and a revoked client token.
    sa_token = kubectl("create", "token", "-n", apps, "deployer", "--audience", AUDIENCE).stdout.strip()
    flow.keep("a service-account token", sa_token)
    status, exchanged = http.post(
        flow.server.url + "/auth/v1/method/kubernetes/serviceaccount",
        json.dumps({"serviceAccountToken": sa_token}),
        content_type="application/json",
    )
    assert status == 200, exchanged
    client_token = flow.keep("a client token", exchanged["clientToken"])
    assert http.get(flow.server.url + "/auth/v1/self", token=client_token)[0] == 200
    jti = exchanged["authentication"]["id"]
    assert http.request("DELETE", flow.server.url + f"/auth/v1/tokens/{jti}", token=bootstrap)[0] == 200

    # A key rotation, and the annotation an older operator (kopf handling the Secret) left behind.
    kubectl("annotate", "secret", "-n", op, keys.SECRET_NAME, "kubegate.dev/rotate=1")
    rotated_keys = eventually(
        lambda: len((ks := flow.signing_keys()).keys) == 2 and ks, timeout=30, what="a key rotation"
    )
    private = {key.kid: key.private_jwk["d"] for key in (*first_keys.keys, *rotated_keys.keys)}
    for kid, d in private.items():
        flow.keep(f"the private signing key {kid}", d, f"{op}/{keys.SECRET_NAME}")
    stale = json.dumps({"data": {keys.DATA_KEY: keys.encode(rotated_keys)}})
    kubectl(
        "annotate",
        "--overwrite",
        "secret",
        "-n",
        op,
        keys.SECRET_NAME,
        f"kopf.kubegate.dev/last-handled-configuration={stale}",
    )
    eventually(
        lambda: (
            "kopf.kubegate.dev/last-handled-configuration"
            not in (kubectl.json("get", "secret", "-n", op, keys.SECRET_NAME)["metadata"].get("annotations") or {})
        ),
        timeout=30,
        what="the operator to remove the old kopf annotation",
    )
    # Let the operator and server finish logging what they did.
    eventually(
        lambda: http.get(flow.server.url + "/auth/v1/self", token=client_token)[0] == 401,
        timeout=30,
        what="the revocation to reach the server",
    )

    leaks = find_leaks(
        flow.secrets,
        _all_objects(kubectl),
        {"operator": flow.operator.log(), "server": flow.server.process.log()},
    )
    assert leaks == [], "\n".join(leaks)
    # The flow really ran at DEBUG and logged what it did (the scan had material to search).
    assert "DEBUG" in flow.operator.log()
    assert "DEBUG" in flow.server.process.log()
    # Deleted while the operator runs (its finalizer), so that no later test's operator finds it.
    kubectl("delete", "oidcprovider", provider, "--timeout=30s")
