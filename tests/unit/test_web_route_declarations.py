"""Every route of the server with its access declaration, in one list: a route added without saying who
may call it, or a change of who may, fails here and is seen in review."""

from __future__ import annotations

from server_harness import Harness

from kubegate.client_tokens.key_watch import SigningKeys
from kubegate.settings import ServerSettings

EXPECTED = {
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    ("GET", "/metrics"): "public",
    ("GET", "/auth/v1/method"): "public",
    ("POST", "/auth/v1/method/token"): "authenticated, in one of the groups kubegate:admin",
    ("POST", "/auth/v1/method/kubernetes/serviceaccount"): "public",
    ("GET", "/.well-known/openid-configuration"): "public",
    ("GET", "/.well-known/jwks.json"): "public",
    ("GET", "/auth/v1/self"): "authenticated",
    ("PUT", "/auth/v1/self/expire"): "authenticated",
    ("GET", "/auth/v1/tokens"): "authenticated, in one of the groups kubegate:admin",
    ("GET", "/auth/v1/tokens/{id}"): "authenticated",
    ("DELETE", "/auth/v1/tokens/{id}"): "authenticated, in one of the groups kubegate:admin",
    ("*", "/auth/v1/verify"): "authenticated",
    ("*", "/auth/v1/verify/{tail:.*}"): "authenticated",
    ("POST", "/apis/authentication.k8s.io/v1/tokenreviews"): "public",
    ("POST", "/apis/authentication.k8s.io/v1beta1/tokenreviews"): "public",
}


def declarations(harness: Harness) -> dict[tuple[str, str], str]:
    parts = harness.parts
    routes = parts.routes(parts.authenticator())
    declared = {(route.method, route.path): route.access.describe() for route in routes}
    assert len(declared) == len(routes), "a method and path are registered twice"
    return declared


def test_every_route_declares_who_may_call_it() -> None:
    harness = Harness(ServerSettings(insecure_http=True, issuer_url="https://kubegate.example"))
    harness.signing_keys = SigningKeys()
    harness.enable_revocations()
    assert declarations(harness) == EXPECTED


def test_the_same_routes_exist_with_every_method_off() -> None:
    """A disabled method answers with its own error instead of vanishing into the catch-all's 404."""
    assert declarations(Harness()) == EXPECTED


def test_configured_groups_appear_in_the_declarations() -> None:
    settings = ServerSettings(insecure_http=True, create_token_groups=["ci", "release"])
    declared = declarations(Harness(settings))
    assert declared[("POST", "/auth/v1/method/token")] == "authenticated, in one of the groups ci, release"
