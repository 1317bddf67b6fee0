"""Service-account exchange and client tokens on a real control plane: TokenReview decides, the operator
keeps the keys, every replica verifies offline, revocation reaches every replica."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet as JoseKeySet

from kubegate.client_tokens import keys
from kubegate.devcluster import ClusterState, Kubectl, start_apiserver, stop_apiserver
from kubegate.devcluster.ports import pick_free_ports
from kubegate.devcluster.processes import Child, start_kubegate
from support import eventually, http
from support.kube import token_kubeconfig, webhook_kubeconfig
from support.processes import ServerProcess, start_server

pytestmark = pytest.mark.integration
AUDIENCE = "kubegate-test"
EXCHANGE = "/auth/v1/method/kubernetes/serviceaccount"


@dataclass
class Env:
    kubectl: Kubectl
    cluster: ClusterState
    operator_namespace: str
    apps: str
    servers: list[ServerProcess]
    operator: Child
    tmp: Path

    @property
    def server(self) -> ServerProcess:
        return self.servers[0]

    def sa_token(self, name: str, *, pod: str | None = None, audience: str = AUDIENCE, namespace: str = "") -> str:
        args = ["create", "token", name, "-n", namespace or self.apps, "--audience", audience, "--duration", "10m"]
        if pod:
            args += ["--bound-object-kind", "Pod", "--bound-object-name", pod]
        return self.kubectl(*args).stdout.strip()


def _pod(name: str, service_account: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"serviceAccountName": service_account, "containers": [{"name": "app", "image": "busybox"}]},
        }
    )


@pytest.fixture(scope="module")
def env(
    dev_cluster: ClusterState, kubectl: Kubectl, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    suffix = uuid.uuid4().hex[:6]
    operator_ns, apps, other = f"kg-x-op-{suffix}", f"kg-x-apps-{suffix}", f"kg-x-other-{suffix}"
    for ns in (operator_ns, apps, other):
        kubectl("create", "namespace", ns)
    tmp = tmp_path_factory.mktemp("exchange")
    bindings = tmp / "bindings.yaml"
    bindings.write_text(
        f"- namespaces: ['{apps}']\n  serviceAccounts: ['web', 'worker-*']\n  groups: ['web-apps']\n"
        f"- namespaces: ['{other}']\n  serviceAccounts: ['allowed']\n"
    )
    (health,) = pick_free_ports(1)
    operator = start_kubegate(
        "operator",
        [
            "operator",
            "--standalone",
            f"--operator-namespace={operator_ns}",
            f"--namespace={operator_ns}",
            f"--health-address=127.0.0.1:{health}",
            "--client-token-max-lifetime=2h",
        ],
        kubeconfig=dev_cluster.kubeconfig,
        log_file=tmp / "operator.log",
    )
    servers: list[ServerProcess] = []
    ports = pick_free_ports(2)
    try:
        for i, port in enumerate(ports):
            # Replicas share one issuer: the external address clients and verifiers know them by.
            server = start_server(
                f"server-{i}",
                kubeconfig=dev_cluster.kubeconfig,
                operator_namespace=operator_ns,
                log_dir=tmp,
                extra=[
                    f"--issuer-url=http://127.0.0.1:{ports[0]}",
                    f"--serviceaccount-bindings-file={bindings}",
                    f"--serviceaccount-audiences={AUDIENCE}",
                    "--serviceaccount-review-cache-seconds=2",
                ],
                port=port,
            )
            servers.append(server)
        for server in servers:
            eventually(lambda s=server: http.get(s.url + "/.well-known/jwks.json")[0] == 200, timeout=60, what="keys")
        for ns, sa in ((apps, "web"), (apps, "worker-1"), (apps, "stranger"), (other, "allowed"), (other, "web")):
            kubectl("create", "serviceaccount", "-n", ns, sa)
        kubectl("create", "-n", apps, "-f", "-", stdin=_pod("web-0", "web"))
        yield Env(kubectl, dev_cluster, operator_ns, apps, servers, operator, tmp)
    finally:
        for server in servers:
            server.stop()
        operator.stop()
        for ns in (operator_ns, apps, other):
            kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _exchange(server: ServerProcess, token: str, *, snake: bool = False) -> tuple[int, dict[str, Any]]:
    field = "service_account_token" if snake else "serviceAccountToken"
    return http.post(server.url + EXCHANGE, json.dumps({field: token}))


def _self(server: ServerProcess, client_token: str) -> tuple[int, dict[str, Any]]:
    return http.get(server.url + "/auth/v1/self", token=client_token)


def test_pod_bound_token_exchange_names_the_pod_and_expires_with_the_token(env: Env) -> None:
    sa_token = env.sa_token("web", pod="web-0")
    status, body = _exchange(env.server, sa_token, snake=True)  # as Flipt's documented curl sends it
    assert status == 200, body
    auth = body["authentication"]
    assert auth["method"] == "METHOD_KUBERNETES"
    pod = env.kubectl.json("get", "pod", "-n", env.apps, "web-0")
    sa = env.kubectl.json("get", "serviceaccount", "-n", env.apps, "web")
    assert auth["metadata"] == {
        "io.kubegate.auth.k8s.namespace": env.apps,
        "io.kubegate.auth.k8s.pod.name": "web-0",
        "io.kubegate.auth.k8s.pod.uid": pod["metadata"]["uid"],
        "io.kubegate.auth.k8s.serviceaccount.name": "web",
        "io.kubegate.auth.k8s.serviceaccount.uid": sa["metadata"]["uid"],
    }
    sa_exp = jwt.decode(sa_token, options={"verify_signature": False})["exp"]
    status, me = _self(env.server, body["clientToken"])
    assert status == 200
    assert me["metadata"] == auth["metadata"]
    assert int(time_of(me["expiresAt"])) == sa_exp
    # Any replica verifies it offline.
    assert _self(env.servers[1], body["clientToken"])[0] == 200


def time_of(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _token_reviews(kubectl: Kubectl) -> int:
    """TokenReviews kube-apiserver has answered since it started, from its own metrics."""
    text = kubectl("get", "--raw", "/metrics").stdout
    pattern = re.compile(r'^apiserver_request_total\{(?=[^}]*resource="tokenreviews")[^}]*\} (\S+)$', re.M)
    return int(sum(float(m.group(1)) for m in pattern.finditer(text)))


def _forged(namespace: str, name: str) -> str:
    """Claims of a bound service account, signed with a key the cluster does not know."""
    claims = {
        "sub": f"system:serviceaccount:{namespace}:{name}",
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": str(uuid.uuid4())}},
        "exp": int(time.time()) + 600,
    }
    return jwt.encode(claims, "not-the-cluster-key-but-long-enough", algorithm="HS256")


def test_invalid_tokens_all_get_the_same_401(env: Env) -> None:
    other = env.apps.replace("kg-x-apps", "kg-x-other")
    answers = [
        _exchange(env.server, env.sa_token("web", audience="someone-else")),  # refused by TokenReview
        _exchange(env.server, _forged(env.apps, "web")),  # refused by TokenReview
        _exchange(env.server, env.sa_token("stranger")),  # refused before it: no binding names it
        _exchange(env.server, env.sa_token("web", namespace=other)),  # refused before it
        _exchange(env.server, "not-a-jwt-at-all"),
    ]
    assert {status for status, _ in answers} == {401}
    assert len({json.dumps(body, sort_keys=True) for _, body in answers}) == 1, answers
    assert "not valid" in answers[0][1]["message"]
    log = env.server.process.log()
    assert "refused the service-account token" in log  # the server's log says why
    assert "no binding admits the service account it claims: 'stranger'" in log


def test_garbage_and_unbound_tokens_cost_the_api_server_no_token_review(env: Env) -> None:
    other = env.apps.replace("kg-x-apps", "kg-x-other")
    refused = [
        "not-a-jwt-at-all",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.e30.",
        env.sa_token("stranger"),
        env.sa_token("web", namespace=other),
        _forged("kube-system", "admin"),
    ]
    before = _token_reviews(env.kubectl)
    for token in refused * 5:
        assert _exchange(env.server, token)[0] == 401
    assert _token_reviews(env.kubectl) == before
    # The count does move for a token a binding admits: the assertion above can fail.
    assert _exchange(env.server, env.sa_token("worker-1"))[0] == 200
    assert _token_reviews(env.kubectl) > before


def test_an_expired_service_account_token_is_refused(env: Env) -> None:
    # TokenRequest will not issue tokens shorter than 10 minutes, so sign an expired one with the
    # cluster's own service-account key: the API server refuses it exactly as it would a real old token.
    sa = env.kubectl.json("get", "serviceaccount", "-n", env.apps, "web")
    now = int(time.time())
    claims = {
        "iss": env.cluster.service_account_issuer,
        "sub": f"system:serviceaccount:{env.apps}:web",
        "aud": [AUDIENCE],
        "iat": now - 3600,
        "nbf": now - 3600,
        "exp": now - 1800,
        "kubernetes.io": {"namespace": env.apps, "serviceaccount": {"name": "web", "uid": sa["metadata"]["uid"]}},
    }
    key = (env.cluster.state_dir / "pki" / "service-account.key").read_bytes()
    expired = jwt.encode(claims, key, algorithm="RS256")
    status, body = _exchange(env.server, expired)
    assert status == 401
    assert "not valid" in body["message"]


def test_a_deleted_pod_ends_the_exchange(env: Env) -> None:
    env.kubectl("create", "-n", env.apps, "-f", "-", stdin=_pod("web-1", "web"))
    sa_token = env.sa_token("web", pod="web-1")
    assert _exchange(env.server, sa_token)[0] == 200
    env.kubectl("delete", "pod", "-n", env.apps, "web-1", "--wait=true")
    # kube-apiserver keeps successful token authentications for 10 s, kubegate reviews for 2 s here.
    _, body = eventually(
        lambda: (r := _exchange(env.server, sa_token))[0] == 401 and r, timeout=40, what="the exchange to be refused"
    )
    assert "not valid" in body["message"]


def test_a_client_token_works_against_kube_apiserver_through_the_webhook(env: Env) -> None:
    status, body = _exchange(env.server, env.sa_token("worker-1"))
    assert status == 200
    webhook = webhook_kubeconfig(env.tmp / "webhook.yaml", env.server.url)
    extra = start_apiserver(
        env.cluster.state_dir,
        name="exchange-webhook",
        args=[f"--authentication-token-webhook-config-file={webhook}", "--authentication-token-webhook-version=v1"],
        die_with_parent=True,
    )
    try:
        kubeconfig = token_kubeconfig(
            env.tmp / "token.kubeconfig", server=extra.url, ca_file=env.cluster.state_dir / "pki" / "ca.crt"
        )
        whoami = env.kubectl.json("auth", "whoami", "--token", body["clientToken"], kubeconfig=kubeconfig)
        user = whoami["status"]["userInfo"]
        assert user["username"] == f"kubegate:serviceaccount:{env.apps}:worker-1"
        assert user["groups"][:1] == ["kubegate:web-apps"]
    finally:
        stop_apiserver(env.cluster.state_dir, name="exchange-webhook")


def _keyset(env: Env) -> keys.KeySet:
    raw = env.kubectl(
        "get", "secret", "-n", env.operator_namespace, keys.SECRET_NAME, "-o", "jsonpath={.data.keys\\.json}"
    )
    return keys.decode(base64.b64encode(base64.b64decode(raw.stdout)).decode())


def test_key_rotation_keeps_old_tokens_and_signs_new_ones_with_the_new_kid(env: Env) -> None:
    _, before = _exchange(env.server, env.sa_token("web"))
    old_kid = jwt.get_unverified_header(before["clientToken"])["kid"]
    assert old_kid == _keyset(env).active().kid
    env.kubectl(
        "annotate", "secret", "-n", env.operator_namespace, keys.SECRET_NAME, f"kubegate.dev/rotate={uuid.uuid4().hex}"
    )
    new_kid = eventually(lambda: (kid := _keyset(env).active().kid) != old_kid and kid, timeout=30, what="a new key")

    def signed_with_new_key() -> dict[str, Any] | None:
        status, body = _exchange(env.server, env.sa_token("web"))
        return body if status == 200 and jwt.get_unverified_header(body["clientToken"])["kid"] == new_kid else None

    after = eventually(signed_with_new_key, timeout=10, what="tokens signed with the new key", interval=0.5)
    for server in env.servers:
        assert _self(server, before["clientToken"])[0] == 200  # still within its lifetime: still valid
        assert _self(server, after["clientToken"])[0] == 200


def test_a_third_party_library_verifies_with_discovery_and_jwks(env: Env) -> None:
    _, body = _exchange(env.server, env.sa_token("web"))
    status, discovery = http.get(env.server.url + "/.well-known/openid-configuration")
    assert status == 200
    assert discovery["issuer"] == env.server.url
    status, jwks = http.get(discovery["jwks_uri"])
    assert status == 200
    decoded = jose_jwt.decode(body["clientToken"], JoseKeySet.import_key_set(jwks), algorithms=["ES256"])
    assert decoded.claims["iss"] == discovery["issuer"]
    assert decoded.claims["jti"] == body["authentication"]["id"]


def test_revocation_reaches_every_replica_within_two_seconds(env: Env) -> None:
    admin = _bootstrap_like_admin(env)
    _, body = _exchange(env.server, env.sa_token("web"))
    token_id = body["authentication"]["id"]
    for server in env.servers:
        assert _self(server, body["clientToken"])[0] == 200
    status, _ = http.delete(env.servers[0].url + f"/auth/v1/tokens/{token_id}", token=admin)
    assert status == 200
    revoked_at = time.monotonic()
    eventually(lambda: _self(env.servers[1], body["clientToken"])[0] == 401, timeout=2, what="the other replica")
    print(f"revocation seen by the second replica after {time.monotonic() - revoked_at:.2f}s")
    configmap = env.kubectl.json("get", "configmap", "-n", env.operator_namespace, "kubegate-revoked-client-tokens")
    assert token_id in configmap["data"]["revoked.json"]


def _bootstrap_like_admin(env: Env) -> str:
    """A StaticToken in the admin group, read from its Secret once the operator made it."""
    env.kubectl(
        "apply",
        "-n",
        env.operator_namespace,
        "-f",
        "-",
        stdin=json.dumps(
            {
                "apiVersion": "kubegate.dev/v1alpha1",
                "kind": "StaticToken",
                "metadata": {"name": "exchange-admin"},
                "spec": {"groups": ["kubegate:admin"]},
            }
        ),
    )

    def token() -> str | None:
        result = env.kubectl(
            "get", "secret", "-n", env.operator_namespace, "exchange-admin", "-o", "jsonpath={.data.token}", check=False
        )
        if result.returncode != 0 or not result.stdout:
            return None
        value = base64.b64decode(result.stdout).decode()
        return value if http.get(env.server.url + "/auth/v1/self", token=value)[0] == 200 else None

    found: str = eventually(token, timeout=60, what="the admin token to be accepted")
    return found


def test_api_unreachable_gives_503_not_401(env: Env, tmp_path: Path) -> None:
    sa_token = env.sa_token("web")
    extra = start_apiserver(env.cluster.state_dir, name="exchange-outage", die_with_parent=True)
    bindings = env.tmp / "bindings.yaml"
    (port,) = pick_free_ports(1)
    server = start_server(
        "server-outage",
        kubeconfig=extra.kubeconfig,
        operator_namespace=env.operator_namespace,
        log_dir=tmp_path,
        extra=[
            f"--issuer-url=http://127.0.0.1:{port}",
            f"--serviceaccount-bindings-file={bindings}",
            f"--serviceaccount-audiences={AUDIENCE}",
        ],
        port=port,
    )
    try:
        eventually(lambda: http.get(server.url + "/.well-known/jwks.json")[0] == 200, timeout=60, what="keys")
        stop_apiserver(env.cluster.state_dir, name="exchange-outage")
        status, body = _exchange(server, sa_token)
        assert status == 503, body
        assert "cannot be reached" in body["message"]
    finally:
        server.stop()
        stop_apiserver(env.cluster.state_dir, name="exchange-outage")
