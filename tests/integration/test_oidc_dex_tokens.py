"""Dex access tokens verified by kubegate on every surface, on a real control plane with a real Dex (issue 13).

The operator reconciles an OIDCProvider for the test's Dex (HTTPS, its CA given as caBundle); the server
verifies Dex's JWTs from the published keys, and opaque tokens by introspection. Dex's static users carry
groups (v2.45), so groups come from real tokens: alice (admins, developers), bob (developers), dave (one
AARC entitlement as a group). Dex has no opaque access tokens: its refresh tokens (opaque strings that
its introspection endpoint answers for) stand in for them.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubegate.devcluster import ClusterState, Kubectl
from kubegate.devcluster.dex import KUBEGATE_CLIENT, OTHER_CLIENT, DexServer
from kubegate.devcluster.processes import Child
from support import eventually
from support.kube import apply, token_kubeconfig, webhook_apiserver, whoami
from support.oidc import (
    Answer,
    call,
    client_secret,
    hmac_with_public_key,
    resigned,
    review,
    tampered,
    unsigned,
    wait_provider_ready,
)
from support.processes import ServerProcess, start_server

pytestmark = pytest.mark.integration

SELF = "/auth/v1/self"
VERIFY = "/auth/v1/verify"
OFFLINE = ("openid", "email", "profile", "groups", "offline_access")
CLAIMS = {"username": "email", "groups": "groups"}


@pytest.fixture
def oidc_server(dev_cluster: ClusterState, operator: Child, namespace: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """`kubegate server` with a one-second leeway (so an expired token is refused soon after its exp) and a
    short key-refetch cooldown."""
    process = start_server(
        "oidc-server",
        kubeconfig=dev_cluster.kubeconfig,
        operator_namespace=namespace,
        log_dir=tmp_path,
        extra=["--oidc-leeway=1", "--oidc-jwks-refetch-cooldown=2", "--oidc-accept-refresh-tokens"],
    )
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def add_provider(kubectl: Kubectl, namespace: str, name: str, dex: DexServer, **spec: Any) -> None:
    apply(kubectl, client_secret(namespace, f"{name}-client"))
    ref = {"namespace": namespace, "name": f"{name}-client"}
    resource = dex.oidc_provider(
        name, audiences=[KUBEGATE_CLIENT.client_id], clientSecretRef=ref, claims=CLAIMS, **spec
    )
    apply(kubectl, resource)
    wait_provider_ready(kubectl, name)


@pytest.fixture
def dex_provider(kubectl: Kubectl, dex: DexServer, operator: Child, namespace: str) -> Iterator[str]:
    """An OIDCProvider for the session's Dex, with introspection on; deleted (and waited for) at the end, so
    that the next test's provider for the same issuer is the only one."""
    name = f"dex-{namespace}"
    add_provider(kubectl, namespace, name, dex, introspection=True)
    try:
        yield name
    finally:
        kubectl("delete", "oidcprovider", name, "--ignore-not-found", "--timeout=60s")


def accepted(server: ServerProcess, token: str, path: str = SELF, **headers: str) -> Answer | None:
    """The answer once it is a 200 (the server may not have loaded the provider yet), else None."""
    answer = call(server.url + path, token=token, headers=headers)
    return answer if answer.status == 200 else None


def test_dex_tokens_on_every_surface_without_calling_dex(  # noqa: PLR0917 - pytest fixtures
    dev_cluster: ClusterState,
    kubectl: Kubectl,
    dex: DexServer,
    dex_provider: str,
    oidc_server: ServerProcess,
    tmp_path: Path,
) -> None:
    alice, bob = dex.password_grant("alice"), dex.password_grant("bob")
    other_client = dex.password_grant("alice", client_id=OTHER_CLIENT.client_id)
    fresh = dex.mint_access_tokens(20, ["alice", "bob"])
    me = eventually(lambda: accepted(oidc_server, alice), timeout=30, what="a Dex token to be accepted")
    before = dex.requests_served()

    # /auth/v1/self, in Flipt's shape.
    assert me.body["method"] == "METHOD_OIDC"
    assert me.body["identity"]["username"] == "alice@example.com"
    assert me.body["identity"]["groups"] == ["admins", "developers"]
    metadata = me.body["metadata"]
    assert metadata["io.kubegate.auth.oidc.provider"] == dex_provider
    assert metadata["io.kubegate.auth.oidc.email"] == "alice@example.com"
    assert metadata["io.kubegate.auth.oidc.name"] == "alice"
    assert metadata["io.kubegate.auth.oidc.sub"]

    # Forward auth: identity headers, and ?group= requirements.
    verified = call(oidc_server.url + VERIFY, token=alice)
    assert verified.status == 200
    assert verified.headers["X-Auth-Request-User"] == "alice@example.com"
    assert verified.headers["X-Auth-Request-Groups"] == "admins,developers"
    assert verified.headers["X-Auth-Request-Email"] == "alice@example.com"
    assert verified.headers["X-Kubegate-Method"] == "METHOD_OIDC"
    assert call(f"{oidc_server.url}{VERIFY}?group=admins", token=alice).status == 200
    refused = call(f"{oidc_server.url}{VERIFY}?group=admins", token=bob)
    assert refused.status == 403
    assert "admins" in refused.body["message"]

    # Every new token verifies from the cached keys: no call to Dex at all.
    for token in fresh:
        assert call(oidc_server.url + VERIFY, token=token).status == 200
    assert dex.requests_served() == before

    # The TokenReview webhook, as kube-apiserver calls it, and through a real kube-apiserver.
    status = review(oidc_server.url, alice)
    assert status["authenticated"] is True
    assert status["user"]["username"] == "kubegate:alice@example.com"
    with webhook_apiserver(dev_cluster, oidc_server.url, tmp_path, cache_ttl_seconds=1) as apiserver:
        kubeconfig = token_kubeconfig(
            tmp_path / "token.kubeconfig", server=apiserver.url, ca_file=kubectl.state.state_dir / "pki" / "ca.crt"
        )
        user = eventually(lambda: whoami(kubectl, kubeconfig, alice), timeout=60, what="kubectl auth whoami")
        assert user["username"] == "kubegate:alice@example.com"
        assert {"kubegate:admins", "kubegate:developers", "system:authenticated"} <= set(user["groups"])
        assert user["extra"]["kubegate.dev/method"] == ["METHOD_OIDC"]
        # A token Dex minted for another client is not for kubegate (aud), through kube-apiserver too.
        assert whoami(kubectl, kubeconfig, other_client) is None
    assert dex.requests_served() == before


def set_requirements(kubectl: Kubectl, name: str, requirements: list[dict[str, Any]]) -> None:
    kubectl("patch", "oidcprovider", name, "--type=merge", "-p", json.dumps({"spec": {"requirements": requirements}}))


def test_requirements_pass_and_fail_and_the_403_names_them(
    kubectl: Kubectl, dex: DexServer, dex_provider: str, oidc_server: ServerProcess
) -> None:
    tokens = {user: dex.password_grant(user) for user in ("alice", "bob", "dave")}
    eventually(lambda: accepted(oidc_server, tokens["alice"]), timeout=30, what="a Dex token to be accepted")
    entitlement = "urn:geant:example.org:group:platform#idp.example.org"
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"claim": "groups", "values": ["admins", "developers"], "match": "all"}, {"alice"}),
        ({"claim": "groups", "values": ["admins", "ops"], "match": "one"}, {"alice"}),
        ({"claim": "groups", "values": ["admins", "developers", "ops"], "match": 2}, {"alice"}),
        ({"claim": "groups", "values": ["developers"], "match": "all"}, {"alice", "bob"}),
        # dave holds a subgroup (platform:ops, with a role) of the required group: that satisfies it.
        ({"claim": "groups", "values": [entitlement], "match": "all", "entitlements": True}, {"dave"}),
    ]
    for requirement, allowed in cases:
        set_requirements(kubectl, dex_provider, [requirement])

        last: dict[str, Answer] = {}

        def applied(
            requirement: dict[str, Any] = requirement, allowed: set[str] = allowed, last: dict[str, Answer] = last
        ) -> bool:
            # Several cases refuse the same users: wait until the 403 names this case's values.
            for user, token in tokens.items():
                answer = call(oidc_server.url + SELF, token=token)
                last[user] = answer
                if user in allowed and answer.status != 200:
                    return False
                if user not in allowed and (answer.status != 403 or named(answer) != requirement["values"]):
                    return False
            return True

        try:
            eventually(applied, timeout=30, what=f"requirement {requirement} to apply", interval=0.5)
        except AssertionError:
            raise AssertionError(f"requirement {requirement} not applied; last answers: {last}") from None
        for user, token in tokens.items():
            if user in allowed:
                continue
            for path in (SELF, VERIFY):
                answer = call(oidc_server.url + path, token=token)
                assert answer.status == 403, (requirement, user, answer)
                assert named(answer) == requirement["values"], (requirement, answer.body)
                assert requirement["values"][0] in answer.body["message"]
            status = review(oidc_server.url, token)
            assert status["authenticated"] is False
            assert requirement["values"][0] in status["error"]
    set_requirements(kubectl, dex_provider, [])


def named(answer: Answer) -> list[str] | None:
    """The values of the requirement a 403 names."""
    detail: dict[str, Any] = answer.body["details"][0]["value"]["metadata"]
    values: list[str] | None = detail.get("allOf") or detail.get("anyOf") or detail.get("of")
    return values


def test_bad_tokens_get_the_generic_401_and_no_call_goes_elsewhere(
    kubectl: Kubectl, dex: DexServer, dex_fresh: DexServer, dex_provider: str, oidc_server: ServerProcess
) -> None:
    alice = dex.password_grant("alice")
    eventually(lambda: accepted(oidc_server, alice), timeout=30, what="a Dex token to be accepted")
    jwks = dex.jwks()
    elsewhere = _CountingServer()
    try:
        bad = {
            "tampered payload": tampered(alice, email="root@example.com"),
            "alg none": unsigned(alice),
            "HS256 with the public key": hmac_with_public_key(alice, jwks),
            "wrong aud": dex.password_grant("alice", client_id=OTHER_CLIENT.client_id),
            "untrusted issuer (another Dex)": dex_fresh.password_grant("alice"),
            "iss of ours, signed by another key with its kid": resigned(alice),
            "jku elsewhere": resigned(alice, header={"kid": "jku-kid", "jku": elsewhere.url}),
            "x5u elsewhere": resigned(alice, header={"kid": "x5u-kid", "x5u": elsewhere.url}),
            "oversized": alice + "A" * 12_000,
        }
        other_dex_before = dex_fresh.requests_served()
        for what, token in bad.items():
            for path in (SELF, VERIFY):
                answer = call(oidc_server.url + path, token=token)
                assert answer.status == 401, (what, path, answer)
                assert answer.headers.get("WWW-Authenticate", "").startswith("Bearer"), what
            assert review(oidc_server.url, token)["authenticated"] is False, what
        assert elsewhere.hits == 0
        assert dex_fresh.requests_served() == other_dex_before
    finally:
        elsewhere.stop()


def test_unknown_kid_costs_one_fetch_per_cooldown(
    kubectl: Kubectl, dex: DexServer, dex_provider: str, oidc_server: ServerProcess
) -> None:
    alice = dex.password_grant("alice")
    eventually(lambda: accepted(oidc_server, alice), timeout=30, what="a Dex token to be accepted")
    before = dex.requests_served()
    for i in range(20):
        assert call(oidc_server.url + SELF, token=resigned(alice, header={"kid": f"unknown-{i}"})).status == 401
    # One JWKS fetch at most for the burst (the cooldown is 2 s here, the burst shorter or about as long).
    assert dex.requests_served() - before <= 2


def test_dex_down_and_restarted(
    kubectl: Kubectl, dex_fresh: DexServer, operator: Child, namespace: str, oidc_server: ServerProcess
) -> None:
    name = f"fresh-{namespace}"
    add_provider(kubectl, namespace, name, dex_fresh, introspection=True)
    try:
        alice = dex_fresh.password_grant_tokens("alice", scopes=OFFLINE)
        bob = dex_fresh.password_grant_tokens("bob", scopes=OFFLINE)
        eventually(lambda: accepted(oidc_server, alice.access_token), timeout=30, what="a Dex token to be accepted")

        # An opaque token (a Dex refresh token) is checked by introspection, once: then it is cached.
        hint = {"X-Kubegate-OIDC-Provider": name}
        opaque = call(oidc_server.url + SELF, token=alice.refresh_token, headers=hint)
        assert opaque.status == 200, opaque
        assert opaque.body["identity"]["username"] == "alice@example.com"
        assert opaque.body["method"] == "METHOD_OIDC"
        before = dex_fresh.requests_served()
        for _ in range(10):
            assert call(oidc_server.url + VERIFY, token=alice.refresh_token, headers=hint).status == 200
        assert dex_fresh.requests_served() == before
        assert call(oidc_server.url + SELF, token="not-a-token-dex-knows", headers=hint).status == 401

        dex_fresh.stop()
        # Keys are cached: JWTs still verify. An opaque token not seen before cannot be decided: 503.
        assert call(oidc_server.url + SELF, token=alice.access_token).status == 200
        down = call(oidc_server.url + SELF, token=bob.refresh_token, headers=hint)
        assert down.status == 503, down
        assert down.headers.get("Retry-After")
        assert call(oidc_server.url + SELF, token=bob.refresh_token).status == 503

        # Restarted with memory storage: new signing keys. A new token names an unknown kid: the server
        # fetches the JWKS once and follows the rotation.
        dex_fresh.start()
        new = dex_fresh.password_grant("alice")
        assert call(oidc_server.url + SELF, token=new).status == 200
    finally:
        kubectl("delete", "oidcprovider", name, "--ignore-not-found", "--timeout=60s")


def test_an_expired_dex_token_is_refused(
    kubectl: Kubectl, operator: Child, namespace: str, oidc_server: ServerProcess, tmp_path: Path
) -> None:
    with DexServer(tmp_path / "short-dex", access_token_expiry="3s") as short:
        name = f"short-{namespace}"
        add_provider(kubectl, namespace, name, short)
        try:
            token = short.password_grant("alice")
            eventually(lambda: accepted(oidc_server, token), timeout=30, what="a Dex token to be accepted")

            def refused() -> Answer | None:
                answer = call(oidc_server.url + SELF, token=token)
                return answer if answer.status == 401 else None

            expired = eventually(refused, timeout=15, what="the token to expire", interval=0.5)
            assert expired.headers.get("WWW-Authenticate", "").startswith("Bearer")
        finally:
            kubectl("delete", "oidcprovider", name, "--ignore-not-found", "--timeout=60s")


class _CountingServer:
    """An HTTP server on loopback that counts requests: a jku or x5u target that must never be called."""

    def __init__(self) -> None:
        counter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                counter.hits += 1
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'{"keys": []}')

            def log_message(self, *_: Any) -> None:
                pass

        self.hits = 0
        self._server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
