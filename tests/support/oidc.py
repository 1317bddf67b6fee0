"""OIDC helpers for integration tests: OIDCProvider resources for a test Dex, HTTP calls that return headers,
and tokens forged from a real Dex token (the bad inputs of issue 13)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from kubegate.devcluster import Kubectl
from kubegate.devcluster.dex import KUBEGATE_CLIENT
from support import eventually
from support.kube import condition


def client_secret(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {"clientSecret": KUBEGATE_CLIENT.secret},
    }


def wait_provider_ready(kubectl: Kubectl, name: str, *, timeout: float = 60) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        found = kubectl("get", "oidcprovider", name, "-o", "json", check=False)
        if found.returncode != 0:
            return None
        body: dict[str, Any] = json.loads(found.stdout)
        return body if condition(body).get("status") == "True" else None

    return eventually(ready, timeout=timeout, what=f"OIDCProvider {name} to be Ready")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: Any


def call(
    url: str,
    *,
    token: str | None = None,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: Any = None,
) -> Answer:
    """One HTTP call; the answer's status, headers and JSON body (status 0: nothing listening)."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, answer_headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, answer_headers, raw = error.code, dict(error.headers), error.read()
    except (urllib.error.URLError, OSError):
        return Answer(0, {}, None)
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return Answer(status, answer_headers, parsed)


def review(server_url: str, token: str) -> dict[str, Any]:
    """The status of a TokenReview posted to kubegate's webhook, as kube-apiserver posts it."""
    answer = call(
        f"{server_url}/apis/authentication.k8s.io/v1/tokenreviews",
        method="POST",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}},
    )
    assert answer.status == 200, answer
    status: dict[str, Any] = answer.body["status"]
    return status


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segments(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return _json(header), _json(payload), signature


def _json(segment: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return value


def _encode(header: Mapping[str, Any], payload: Mapping[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"


def tampered(token: str, **claims: Any) -> str:
    """`token` with claims changed and its original signature kept."""
    header, payload, signature = _segments(token)
    return f"{_encode(header, {**payload, **claims})}.{signature}"


def unsigned(token: str) -> str:
    """`token`'s claims under `alg: none`, without a signature."""
    header, payload, _ = _segments(token)
    return _encode({**header, "alg": "none"}, payload) + "."


def hmac_with_public_key(token: str, jwks: Mapping[str, Any]) -> str:
    """`token`'s claims signed HS256 with the issuer's RSA public key (PEM) as the HMAC secret: the
    algorithm-confusion attack."""
    header, payload, _ = _segments(token)
    key = RSAAlgorithm.from_jwk(json.dumps(next(k for k in jwks["keys"] if k["kid"] == header["kid"])))
    assert isinstance(key, rsa.RSAPublicKey)
    secret = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = _encode({**header, "alg": "HS256"}, payload)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def resigned(token: str, *, header: Mapping[str, Any] | None = None, **claims: Any) -> str:
    """`token`'s claims (changed by `claims`) signed RS256 by a key of our own, with `header` members added
    (a kid the issuer never published, a jku or x5u pointing elsewhere)."""
    original_header, payload, _ = _segments(token)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers = {k: v for k, v in {**original_header, **(header or {})}.items() if k != "alg"}
    return jwt.encode({**payload, **claims}, key, algorithm="RS256", headers=headers)
