"""The models accept and refuse what the CRD schemas generated from them make the API server do."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from kubegate.resources import OIDCProvider, StaticToken
from kubegate.resources.crd import render_all

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "examples" / name).read_text())
    return loaded


def test_crds_in_repository_equal_what_the_models_generate() -> None:
    for name, text in render_all().items():
        on_disk = (ROOT / "crds" / name).read_text(encoding="utf-8")
        assert on_disk == text, f"crds/{name} is stale: run `kubegate crds --output-dir crds`"
    assert sorted(p.name for p in (ROOT / "crds").glob("*.yaml")) == sorted(render_all())


def test_examples_parse_and_round_trip() -> None:
    token = StaticToken.from_wire(_load("statictoken.yaml"))
    assert isinstance(token, StaticToken)
    assert token.spec.ttl == "720h"
    assert token.to_wire()["spec"] == _load("statictoken.yaml")["spec"]

    provider = OIDCProvider.from_wire(_load("oidcprovider.yaml"))
    assert isinstance(provider, OIDCProvider)
    assert provider.spec.use_pkce is True  # the default, not in the file
    wire = provider.to_wire()
    assert wire["spec"]["issuerURL"] == "https://dex.example.com"
    assert wire["spec"]["clientID"] == "kubegate"
    assert wire["spec"]["requirements"][0]["match"] == "one"


def test_from_wire_refuses_another_kind() -> None:
    with pytest.raises(ValueError, match="kind StaticToken"):
        StaticToken.from_wire(_load("oidcprovider.yaml"))


def _token_spec(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kubegate.dev/v1alpha1", "kind": "StaticToken", "metadata": {}, "spec": spec}


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"ttl": "-1h"}, "ttl"),
        ({"ttl": "1d"}, "ttl"),
        ({"unknown": 1}, "unknown"),
        ({"secretName": "Not_A_Name"}, "secretName"),
        ({"rotation": {"every": "1h", "extra": True}}, "extra"),
        ({"groups": [""]}, "groups"),
    ],
)
def test_static_token_field_errors_name_the_field(spec: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        StaticToken.from_wire(_token_spec(**spec))
    assert fragment in str(info.value)


def _provider_spec(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kubegate.dev/v1alpha1", "kind": "OIDCProvider", "metadata": {}, "spec": spec}


@pytest.mark.parametrize(
    "issuer", ["http://dex.example.com", "dex.example.com", "https://", "ftp://x", "https:///path"]
)
def test_provider_issuer_must_be_https(issuer: str) -> None:
    with pytest.raises(ValidationError, match="https"):
        OIDCProvider.from_wire(_provider_spec(issuerURL=issuer))


@pytest.mark.parametrize("match", ["all", "one", 1, 3])
def test_requirement_match_accepts_all_one_or_a_count(match: str | int) -> None:
    spec = _provider_spec(
        issuerURL="https://x.example", requirements=[{"claim": "groups", "values": ["a"], "match": match}]
    )
    provider = OIDCProvider.from_wire(spec)
    assert isinstance(provider, OIDCProvider)
    assert provider.spec.requirements is not None
    assert provider.spec.requirements[0].match == match


@pytest.mark.parametrize("match", ["some", 0, -1, "2"])
def test_requirement_match_refuses_other_values(match: str | int) -> None:
    spec = _provider_spec(
        issuerURL="https://x.example", requirements=[{"claim": "groups", "values": ["a"], "match": match}]
    )
    with pytest.raises(ValidationError, match="match"):
        OIDCProvider.from_wire(spec)


def test_provider_defaults_are_those_the_crd_declares() -> None:
    provider = OIDCProvider.from_wire(_provider_spec(issuerURL="https://x.example"))
    assert isinstance(provider, OIDCProvider)
    spec = provider.to_wire()["spec"]
    assert spec["scopes"] == ["openid", "profile", "email"]
    assert spec["usePKCE"] is True
    assert spec["claims"] == {"username": "sub", "groups": "groups", "usernamePrefix": "", "groupsPrefix": ""}
