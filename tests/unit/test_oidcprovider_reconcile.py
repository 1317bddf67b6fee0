"""The OIDCProvider reconciler against an in-memory API and a fake issuer: what a user sees after each reconcile.

The published Secret (what the servers read), status fields and conditions, for a good provider, each kind
of bad input, and an issuer that stops answering; a clock the test sets stands in for time.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fake_kube import FakeKube
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from kubegate.contracts.api_paths import path_for
from kubegate.kube import WatchEvent
from kubegate.operator import oidcprovider_plan as plan
from kubegate.operator.events import EventPoster
from kubegate.operator.oidcprovider import ProviderReconciled, ProviderReconciler
from kubegate.operator.oidcprovider_watch import SecretChanged, next_sleep
from kubegate.resources.oidcprovider import OIDCProvider
from kubegate.settings import OperatorSettings
from kubegate.validation_config.providers import DATA_KEY, ProviderConfig, decode, secret_name
from kubegate.verify.oidc.provider_http import ProviderError, ProviderUnreachable

OPS, APPS = "kubegate-system", "apps"
ISSUER = "https://idp.example/dex"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
CLIENT_SECRET = "very-secret-client-value"


def _jwk(kid: str, *, kind: str = "rsa", **extra: Any) -> dict[str, Any]:
    if kind == "rsa":
        jwk = json.loads(
            RSAAlgorithm.to_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key())
        )
    else:
        jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()))
    return {**jwk, "kid": kid, "use": "sig", **extra}


RSA_KEY = _jwk("rsa-1", alg="RS256")


class FakeIssuer:
    """Answers discovery and JWKS from dicts; `down` makes every call fail as an unreachable provider does."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}
        self.down = False
        self.calls: list[tuple[str, str | None]] = []
        self.serve(ISSUER, keys=[RSA_KEY])

    def serve(self, issuer: str, *, keys: list[dict[str, Any]], algorithms: list[str] | None = None) -> None:
        base = issuer.rstrip("/")
        document: dict[str, Any] = {
            "issuer": issuer,
            "jwks_uri": f"{base}/keys",
            "authorization_endpoint": f"{base}/auth",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "introspection_endpoint": f"{base}/token/introspect",
            "id_token_signing_alg_values_supported": algorithms or ["RS256"],
        }
        self.documents[f"{base}/.well-known/openid-configuration"] = document
        self.documents[f"{base}/keys"] = {"keys": keys}

    async def get_json(self, url: str, *, ca_bundle: str | None, bearer: str | None = None) -> dict[str, Any]:
        self.calls.append((url, ca_bundle))
        if self.down:
            raise ProviderUnreachable(f"{url} cannot be reached: ClientConnectorError")
        if url not in self.documents:
            raise ProviderError(f"{url} answered 404", status=404)
        return json.loads(json.dumps(self.documents[url]))


class World:
    def __init__(self, **settings: Any) -> None:
        self.kube = FakeKube()
        self.issuer = FakeIssuer()
        self.now = T0
        self.settings = OperatorSettings(operator_namespace=OPS, **settings)
        self.reconciler = ProviderReconciler(
            client=self.kube,
            http=self.issuer,
            settings=self.settings,
            events=EventPoster(self.kube),
            clock=lambda: self.now,
        )
        self._created = 0

    def add(self, name: str, **spec: Any) -> None:
        self._created += 1
        self.kube.put(
            OIDCProvider.path(name=name),
            {
                "apiVersion": OIDCProvider.api_version,
                "kind": OIDCProvider.kind,
                "metadata": {
                    "name": name,
                    "uid": f"uid-{name}",
                    "generation": 1,
                    "creationTimestamp": f"2026-01-01T00:00:{self._created:02d}Z",
                },
                "spec": {"issuerURL": ISSUER, "clientID": "kubegate", **spec},
            },
        )

    def add_client_secret(self, name: str = "idp", key: str = "clientSecret") -> None:
        self.kube.put(
            path_for(plural="secrets", namespace=APPS, name=name),
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": APPS},
                "data": {key: base64.b64encode(CLIENT_SECRET.encode()).decode()},
            },
        )

    async def reconcile(self, name: str = "idp") -> ProviderReconciled:
        result = await self.reconciler.reconcile(name)
        assert result is not None
        return result

    def status(self, name: str = "idp") -> dict[str, Any]:
        return dict(self.kube.objects[OIDCProvider.path(name=name)].get("status") or {})

    def conditions(self, name: str = "idp") -> dict[str, tuple[str, str, str]]:
        return {c["type"]: (c["status"], c["reason"], c["message"]) for c in self.status(name).get("conditions", [])}

    def published(self, name: str = "idp") -> ProviderConfig | None:
        secret = self.kube.objects.get(path_for(plural="secrets", namespace=OPS, name=secret_name(name)))
        return None if secret is None else decode(secret["data"][DATA_KEY])

    def events(self) -> list[dict[str, Any]]:
        return [o for p, o in self.kube.objects.items() if "/events/" in p]


def _everything_a_user_sees(world: World, caplog: pytest.LogCaptureFixture) -> str:
    return json.dumps([world.status(), world.events()]) + caplog.text


async def test_a_good_provider_is_published_and_ready(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    world.add("idp", clientSecretRef={"namespace": APPS, "name": "idp"}, audiences=["api"], introspection=True)
    world.add_client_secret()
    with caplog.at_level(logging.DEBUG):
        result = await world.reconcile()

    assert result.outcome.kind == "ready"
    assert result.secret_ref == (APPS, "idp")
    config = world.published()
    assert config is not None
    assert config.issuer == ISSUER
    assert config.jwks_uri == f"{ISSUER}/keys"
    assert config.introspection_endpoint == f"{ISSUER}/token/introspect"
    assert config.introspection is True
    assert config.algorithms == ("RS256",)
    assert config.audiences == ("api",)
    assert config.client_id == "kubegate"
    assert config.client_secret == CLIENT_SECRET
    assert [k["kid"] for k in config.jwks["keys"]] == ["rsa-1"]
    assert config.keys_fetched_at == T0
    secret = world.kube.objects[path_for(plural="secrets", namespace=OPS, name="kubegate-oidc-idp")]
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "uid-idp"
    assert secret["metadata"]["ownerReferences"][0]["kind"] == "OIDCProvider"

    status = world.status()
    assert status["keyIDs"] == ["rsa-1"]
    assert status["keyCount"] == 1
    assert status["lastRefreshTime"] == "2026-01-01T00:00:00Z"
    assert status["endpoints"]["jwksURI"] == f"{ISSUER}/keys"
    assert status["endpoints"]["tokenEndpoint"] == f"{ISSUER}/token"
    conditions = world.conditions()
    assert conditions["Ready"][:2] == ("True", "ProviderReady")
    assert conditions["KeysPublished"][:2] == ("True", "KeysCurrent")
    assert "Stalled" not in conditions
    assert CLIENT_SECRET not in _everything_a_user_sees(world, caplog)


async def test_an_unchanged_config_is_not_written_again() -> None:
    world = World()
    world.add("idp")
    await world.reconcile()
    writes = world.kube.writes
    await world.reconcile()
    assert world.kube.writes == writes


async def test_a_refresh_rewrites_the_read_time_and_follows_new_keys() -> None:
    world = World()
    world.add("idp")
    await world.reconcile()
    world.now = T0 + timedelta(hours=1)
    world.issuer.serve(ISSUER, keys=[_jwk("rsa-2", alg="RS256")])
    await world.reconcile()
    config = world.published()
    assert config is not None
    assert config.keys_fetched_at == world.now
    assert world.status()["keyIDs"] == ["rsa-2"]
    assert world.status()["lastRefreshTime"] == "2026-01-01T01:00:00Z"


@pytest.mark.parametrize("configured", [ISSUER + "/", "https://idp.example/other"])
async def test_an_issuer_that_differs_in_any_character_stalls(configured: str) -> None:
    world = World()
    # The document at the configured URL names ISSUER.
    world.issuer.documents[plan.discovery_url(configured)] = world.issuer.documents[plan.discovery_url(ISSUER)]
    world.add("idp", issuerURL=configured)
    result = await world.reconcile()
    assert result.outcome.kind == "stalled"
    ready, stalled = world.conditions()["Ready"], world.conditions()["Stalled"]
    assert ready[:2] == ("False", "IssuerMismatch")
    assert stalled[:2] == ("True", "IssuerMismatch")
    assert repr(ISSUER) in ready[2]
    assert f"set spec.issuerURL to exactly {ISSUER!r}" in ready[2]
    assert world.published() is None
    assert world.status()["keyCount"] == 0
    assert [e["reason"] for e in world.events()] == ["IssuerMismatch"]


async def test_fixing_the_issuer_withdraws_nothing_good_and_publishes_again() -> None:
    world = World()
    world.add("idp")
    await world.reconcile()
    spec = world.kube.objects[OIDCProvider.path(name="idp")]["spec"]
    spec["issuerURL"] = ISSUER + "/"
    world.issuer.documents[plan.discovery_url(ISSUER + "/")] = world.issuer.documents[plan.discovery_url(ISSUER)]
    await world.reconcile()
    assert world.published() is None  # a mismatched issuer must not keep the old keys trusted
    spec["issuerURL"] = ISSUER
    assert (await world.reconcile()).outcome.kind == "ready"
    assert world.published() is not None


@pytest.mark.parametrize(
    ("advertised", "configured", "expected"),
    [
        (["RS256", "HS256", "none", "ES256"], None, ("RS256", "ES256")),
        ([], None, ("RS256",)),
        (["HS256"], None, ("RS256",)),
        (["RS256"], ["PS256", "RS256"], ("RS256", "PS256")),
    ],
)
def test_allowed_algorithms_are_asymmetric_only(
    advertised: list[str], configured: list[str] | None, expected: tuple[str, ...]
) -> None:
    assert plan.allowed_algorithms(configured, tuple(advertised)) == expected


async def test_algorithms_default_to_the_advertised_asymmetric_ones() -> None:
    world = World()
    ec_key = _jwk("ec-1", kind="ec", alg="ES256")
    world.issuer.serve(ISSUER, keys=[RSA_KEY, ec_key], algorithms=["RS256", "HS256", "ES256"])
    world.add("idp")
    await world.reconcile()
    config = world.published()
    assert config is not None
    assert config.algorithms == ("RS256", "ES256")
    assert world.status()["keyIDs"] == ["rsa-1", "ec-1"]


async def test_no_key_for_the_accepted_algorithms_stalls_with_jwks_invalid() -> None:
    world = World()
    world.issuer.serve(ISSUER, keys=[RSA_KEY, _jwk("enc", use="enc")])
    world.add("idp", algorithms=["ES256"])
    await world.reconcile()
    ready = world.conditions()["Ready"]
    assert ready[:2] == ("False", "JWKSInvalid")
    assert "spec.algorithms" in ready[2]
    assert world.conditions()["Stalled"][0] == "True"
    assert world.published() is None


async def test_a_jwks_with_private_material_is_refused_without_quoting_it() -> None:
    world = World()
    private = {**RSA_KEY, "d": "PRIVATE-EXPONENT-VALUE"}
    world.issuer.serve(ISSUER, keys=[private])
    world.add("idp")
    await world.reconcile()
    ready = world.conditions()["Ready"]
    assert ready[:2] == ("False", "JWKSInvalid")
    assert "rsa-1" in ready[2]
    assert "PRIVATE-EXPONENT-VALUE" not in json.dumps(world.status())
    assert world.published() is None


async def test_keys_for_encryption_or_other_algorithms_are_not_published() -> None:
    world = World()
    world.issuer.serve(ISSUER, keys=[RSA_KEY, _jwk("enc", use="enc"), _jwk("ps", alg="PS256")])
    world.add("idp")
    await world.reconcile()
    assert world.status()["keyIDs"] == ["rsa-1"]


async def test_a_missing_client_secret_stalls_until_it_is_created(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    world.add("idp", clientSecretRef={"namespace": APPS, "name": "idp", "key": "secret"})
    result = await world.reconcile()
    assert result.secret_ref == (APPS, "idp")
    assert result.secret_version is None
    ready = world.conditions()["Ready"]
    assert ready[:2] == ("False", "SecretNotFound")
    assert f"Secret {APPS}/idp" in ready[2]
    assert "'secret'" in ready[2]
    assert world.published() is None

    world.add_client_secret(key="other")
    await world.reconcile()
    ready = world.conditions()["Ready"]
    assert ready[:2] == ("False", "SecretNotFound")
    assert "has no key 'secret'" in ready[2]

    world.add_client_secret(key="secret")
    with caplog.at_level(logging.DEBUG):
        result = await world.reconcile()
    assert result.outcome.kind == "ready"
    assert result.secret_version is not None
    assert "Stalled" not in world.conditions()
    config = world.published()
    assert config is not None
    assert config.client_secret == CLIENT_SECRET
    assert CLIENT_SECRET not in _everything_a_user_sees(world, caplog)


async def test_an_unreachable_issuer_keeps_the_last_keys_until_they_are_too_old() -> None:
    world = World(provider_keys_max_age="2h")
    world.add("idp")
    await world.reconcile()
    world.issuer.down = True
    world.now = T0 + timedelta(hours=1)

    result = await world.reconcile()
    assert result.outcome.kind == "retrying"
    assert result.keys_until == T0 + timedelta(hours=2)
    conditions = world.conditions()
    assert conditions["Ready"][:2] == ("False", "DiscoveryFailed")
    assert "Stalled" not in conditions
    assert conditions["KeysPublished"][:2] == ("True", "KeysKept")
    assert "until 2026-01-01T02:00:00Z" in conditions["KeysPublished"][2]
    assert "until 2026-01-01T02:00:00Z" in conditions["Ready"][2]
    config = world.published()
    assert config is not None
    assert [k["kid"] for k in config.jwks["keys"]] == ["rsa-1"]
    assert config.keys_fetched_at == T0
    assert world.status()["keyCount"] == 1
    assert world.status()["lastRefreshTime"] == "2026-01-01T00:00:00Z"

    world.now = T0 + timedelta(hours=2)
    await world.reconcile()
    conditions = world.conditions()
    assert conditions["KeysPublished"][:2] == ("False", "KeysWithdrawn")
    config = world.published()
    assert config is not None
    assert config.jwks["keys"] == []
    assert world.status()["keyCount"] == 0
    assert world.status()["keyIDs"] == []

    world.issuer.down = False
    world.now = T0 + timedelta(hours=3)
    assert (await world.reconcile()).outcome.kind == "ready"
    assert world.status()["keyCount"] == 1


async def test_an_issuer_never_reached_publishes_nothing() -> None:
    world = World()
    world.issuer.down = True
    world.add("idp")
    result = await world.reconcile()
    assert result.outcome.kind == "retrying"
    assert world.published() is None
    assert world.conditions()["KeysPublished"][:2] == ("False", "NoKeys")


async def test_an_issuer_answering_404_is_a_discovery_failure() -> None:
    world = World()
    world.add("idp", issuerURL="https://idp.example/nowhere")
    await world.reconcile()
    ready = world.conditions()["Ready"]
    assert ready[:2] == ("False", "DiscoveryFailed")
    assert "404" in ready[2]


async def test_the_ca_bundle_is_decoded_and_checked() -> None:
    world = World()
    world.add("idp", caBundle=base64.b64encode(b"not a certificate").decode())
    await world.reconcile()
    assert world.conditions()["Ready"][:2] == ("False", "InvalidCABundle")
    assert world.issuer.calls == []


async def test_the_later_of_two_providers_with_one_issuer_stalls() -> None:
    world = World()
    world.add("first")
    world.add("second")
    await world.reconcile("second")
    await world.reconcile("first")
    assert world.conditions("first")["Ready"][0] == "True"
    ready = world.conditions("second")["Ready"]
    assert ready[:2] == ("False", "DuplicateIssuer")
    assert "OIDCProvider first" in ready[2]
    assert world.published("second") is None

    del world.kube.objects[OIDCProvider.path(name="first")]
    assert (await world.reconcile("second")).outcome.kind == "ready"


async def test_forget_withdraws_the_published_config() -> None:
    world = World()
    world.add("idp")
    await world.reconcile()
    await world.reconciler.forget("idp")
    assert world.published() is None
    await world.reconciler.forget("idp")  # twice: nothing to do


async def test_a_provider_being_deleted_is_left_alone() -> None:
    world = World()
    world.add("idp")
    world.kube.objects[OIDCProvider.path(name="idp")]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert await world.reconciler.reconcile("idp") is None
    assert await world.reconciler.reconcile("missing") is None


async def test_the_daemon_sleeps_a_refresh_interval_when_ready_and_backs_off_otherwise() -> None:
    world = World(provider_keys_max_age="2h")
    world.add("idp")
    ready = await world.reconcile()
    hour = timedelta(hours=1)
    assert next_sleep(ready, failures=0, refresh_interval=hour, now=T0, jitter=0.95) == pytest.approx(3420)
    world.issuer.down = True
    world.now = T0 + timedelta(hours=1, minutes=59, seconds=50)
    failing = await world.reconcile()
    assert next_sleep(failing, failures=1, refresh_interval=hour, now=world.now) == pytest.approx(5)
    assert next_sleep(failing, failures=3, refresh_interval=hour, now=world.now) == pytest.approx(10)  # keys go
    assert next_sleep(None, failures=10, refresh_interval=hour, now=world.now) == 300


async def test_the_client_secret_watch_wakes_only_for_a_secret_other_than_the_one_reconciled() -> None:
    woken: list[bool] = []
    reconciled: list[str | None] = [None]
    sink = SecretChanged(wake=lambda: woken.append(True), reconciled_version=lambda: reconciled[0])
    await sink.replace([])  # missing, as when last reconciled: nothing new
    assert woken == []
    secret = {"metadata": {"name": "idp", "resourceVersion": "7"}, "data": {"clientSecret": "eA=="}}
    await sink.replace([secret])  # created while nobody watched
    assert woken == [True]
    reconciled[0] = "7"
    await sink.replace([secret])
    assert woken == [True]
    sink.apply(WatchEvent("DELETED", secret))
    assert woken == [True, True]
