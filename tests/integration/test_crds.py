"""The CRDs generated from the models are accepted by a real API server, which enforces their rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubegate.devcluster import DevClusterError, Kubectl
from kubegate.resources import OIDCProvider, StaticToken

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "examples" / name).read_text())
    return loaded


def _within(given: Any, stored: Any) -> bool:
    """Whether everything `given` sets is in `stored` with the same value (lists item by item)."""
    if isinstance(given, dict):
        return isinstance(stored, dict) and all(k in stored and _within(v, stored[k]) for k, v in given.items())
    if isinstance(given, list):
        return isinstance(stored, list) and len(given) == len(stored) and all(map(_within, given, stored))
    return bool(given == stored)


def test_crds_have_columns_short_names_and_status(kubectl: Kubectl, crds: list[str]) -> None:
    token_crd = kubectl.json("get", "crd", "statictokens.kubegate.dev")
    version = token_crd["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Ready", "Expires", "Age"]
    assert version["subresources"] == {"status": {}}
    assert token_crd["spec"]["names"]["shortNames"] == ["stoken"]
    provider_crd = kubectl.json("get", "crd", "oidcproviders.kubegate.dev")
    assert provider_crd["spec"]["scope"] == "Cluster"
    assert [c["name"] for c in provider_crd["spec"]["versions"][0]["additionalPrinterColumns"]] == [
        "Issuer",
        "Ready",
        "Keys",
        "Age",
    ]
    assert "kubegate" in kubectl("api-resources", "--categories=kubegate", "-o", "name").stdout


def test_static_token_example_reads_back_with_the_same_spec(kubectl: Kubectl, crds: list[str], namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", str(ROOT / "examples" / "statictoken.yaml"))
    stored = kubectl.json("get", "-n", namespace, "statictoken", "ci-deployer")
    assert stored["spec"] == _example("statictoken.yaml")["spec"]
    # The same object through the short name and the category.
    assert "ci-deployer" in kubectl("get", "-n", namespace, "stoken").stdout
    assert "ci-deployer" in kubectl("get", "-n", namespace, "kubegate").stdout


def test_oidc_provider_example_reads_back_with_the_defaults_the_models_declare(
    kubectl: Kubectl, crds: list[str]
) -> None:
    kubectl("apply", "-f", str(ROOT / "examples" / "oidcprovider.yaml"))
    try:
        stored = kubectl.json("get", "oidcprovider", "dex")
        example = _example("oidcprovider.yaml")
        # Every field of the file comes back unchanged (beside the defaults filled in, a requirement's
        # entitlements flag among them) ...
        assert _within(example["spec"], stored["spec"])
        # ... and what the file leaves out, the API server fills with exactly the models' defaults.
        model = OIDCProvider.from_wire(example)
        assert stored["spec"] == model.to_wire()["spec"]
        assert stored["spec"]["usePKCE"] is True
    finally:
        kubectl("delete", "oidcprovider", "dex", "--wait=false", check=False)


def _apply_error(kubectl: Kubectl, obj: dict[str, Any], namespace: str | None = None) -> str:
    args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
    with pytest.raises(DevClusterError) as info:
        kubectl(*args, stdin=json.dumps(obj))
    return str(info.value)


def _token(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": StaticToken.api_version, "kind": "StaticToken", "metadata": {"name": name}, "spec": spec}


def _provider(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": OIDCProvider.api_version, "kind": "OIDCProvider", "metadata": {"name": name}, "spec": spec}


@pytest.mark.parametrize(
    ("obj", "fragments"),
    [
        (_provider("no-issuer", {"clientID": "x"}), ["spec.issuerURL", "Required value"]),
        (_provider("http-issuer", {"issuerURL": "http://dex.example.com"}), ["spec.issuerURL", "https"]),
        (
            _provider(
                "bad-match",
                {"issuerURL": "https://x.example", "requirements": [{"claim": "g", "values": ["a"], "match": "some"}]},
            ),
            ["spec.requirements[0].match", "all, one"],
        ),
        (
            _provider(
                "match-too-big",
                {"issuerURL": "https://x.example", "requirements": [{"claim": "g", "values": ["a"], "match": 2}]},
            ),
            ["spec.requirements[0].match", "more values than are listed"],
        ),
        (_token("both-expiries", {"ttl": "1h", "expiresAt": "2030-01-01T00:00:00Z"}), ["spec", "mutually exclusive"]),
        (_token("unknown-field", {"ttl": "1h", "colour": "blue"}), ['unknown field "spec.colour"']),
        (_token("negative-ttl", {"ttl": "-1h"}), ["spec.ttl", "positive duration"]),
        (_token("zero-rotation", {"rotation": {"every": "0s"}}), ["spec.rotation.every", "positive duration"]),
        (_token("bad-rotation", {"rotation": {"every": "weekly"}}), ["spec.rotation.every"]),
        (_token("long-overlap", {"rotation": {"every": "1h", "overlap": "2h"}}), ["spec.rotation.overlap", "shorter"]),
        (_token("bad-secret-name", {"secretName": "Not_A_Name"}), ["spec.secretName"]),
        (
            _token("ref-and-rotation", {"secretRef": {"name": "s"}, "rotation": {"every": "1h"}}),
            ["spec", "rotation cannot be used with secretRef"],
        ),
        (_token("upper-hash", {"tokenHash": "A" * 64}), ["spec.tokenHash", "should match"]),
        (_token("short-hash", {"tokenHash": "a" * 63}), ["spec.tokenHash"]),
        *(
            (
                _token(f"hash-and-{field.lower()}", {"tokenHash": "a" * 64, field: value}),
                ["spec", "tokenHash cannot be used with secretRef, secretName or rotation"],
            )
            for field, value in (("secretRef", {"name": "s"}), ("secretName", "s"), ("rotation", {"every": "1h"}))
        ),
    ],
    ids=lambda v: v["metadata"]["name"] if isinstance(v, dict) else None,
)
def test_api_server_rejects_invalid_resources_naming_the_field(
    kubectl: Kubectl, crds: list[str], namespace: str, obj: dict[str, Any], fragments: list[str]
) -> None:
    message = _apply_error(kubectl, obj, namespace if obj["kind"] == "StaticToken" else None)
    for fragment in fragments:
        assert fragment in message, message
    # Nothing was stored.
    kind = "statictoken" if obj["kind"] == "StaticToken" else "oidcprovider"
    args = ["get", kind, obj["metadata"]["name"]] + (["-n", namespace] if kind == "statictoken" else [])
    assert kubectl(*args, check=False).returncode != 0


def test_a_token_hash_is_set_at_creation_and_never_changed(kubectl: Kubectl, crds: list[str], namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(_token("hashed", {"tokenHash": "a" * 64})))
    changed = _apply_error(kubectl, _token("hashed", {"tokenHash": "b" * 64}), namespace)
    assert "tokenHash is immutable" in changed
    removed = _apply_error(kubectl, _token("hashed", {"description": "no hash"}), namespace)
    assert "tokenHash can be set only when the StaticToken is created" in removed
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(_token("plain", {})))
    added = _apply_error(kubectl, _token("plain", {"tokenHash": "b" * 64}), namespace)
    assert "tokenHash can be set only when the StaticToken is created" in added
    # Other fields stay editable: the server sets an expiry through the API.
    kubectl("patch", "statictoken", "hashed", "-n", namespace, "--type=merge", "-p", '{"spec":{"ttl":"1h"}}')
    assert kubectl.json("get", "statictoken", "hashed", "-n", namespace)["spec"]["tokenHash"] == "a" * 64
