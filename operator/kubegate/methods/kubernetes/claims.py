"""What a service-account token says about itself, read without verifying it. Pure; no I/O.

Only ever used to refuse early, never to grant: a token that is not JWT-shaped, or whose claimed service
account no binding could admit, costs the API server no TokenReview (as in Vault's Kubernetes auth).
A token that passes still goes to TokenReview, and the bindings are checked again against the identity
the API server vouches for.
"""

from __future__ import annotations

from typing import Any

from kubegate.verify.jwt_segments import read_jwt

SA_PREFIX = "system:serviceaccount:"


def unverified_payload(token: str) -> dict[str, Any] | None:
    """The claims of a JWT-shaped token (a header naming an algorithm, a JSON payload, a signature); None
    for anything else."""
    jwt = read_jwt(token)
    return jwt.payload if jwt is not None and jwt.signed else None


def claimed_account(token: str) -> tuple[str, str] | None:
    """The (namespace, name) of the service account `token` claims to belong to, unverified; None when it
    names none.

    Bound tokens carry `kubernetes.io.namespace` and `kubernetes.io.serviceaccount.name`; legacy Secret
    tokens only `sub`, `system:serviceaccount:<namespace>:<name>`.
    """
    claims = unverified_payload(token)
    if claims is None:
        return None
    kubernetes = claims.get("kubernetes.io")
    if isinstance(kubernetes, dict):
        namespace = kubernetes.get("namespace")
        account = kubernetes.get("serviceaccount")
        name = account.get("name") if isinstance(account, dict) else None
        if isinstance(namespace, str) and isinstance(name, str):
            return namespace, name
        return None
    subject = claims.get("sub")
    if isinstance(subject, str) and subject.startswith(SA_PREFIX) and subject.count(":") == 3:
        namespace, name = subject.removeprefix(SA_PREFIX).split(":")
        return namespace, name
    return None
