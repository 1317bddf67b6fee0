"""The exchange itself: a service-account token in, a kubegate client token out.

Unverified claims (could any binding admit the service account the token names? if not, refuse with no
API call) -> TokenReview (is the token valid, for our audience, and whose is it?) -> bindings (may this
service account exchange, and which groups does it get?) -> a client token that expires with the
service-account token, capped by the configured maximum and by how long signing keys are kept.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from kubegate.client_tokens.keys import KeySet
from kubegate.client_tokens.mint import mint
from kubegate.contracts.authentication import Authentication, Identity, Method
from kubegate.contracts.metadata import (
    K8S_NAMESPACE,
    K8S_POD_NAME,
    K8S_POD_UID,
    K8S_SERVICEACCOUNT_NAME,
    K8S_SERVICEACCOUNT_UID,
)
from kubegate.contracts.token_format import new_token_id
from kubegate.methods.kubernetes.bindings import Binding, groups_for, may_admit, needs_namespace_labels
from kubegate.methods.kubernetes.claims import claimed_account
from kubegate.methods.kubernetes.review import ReviewedAccount, ReviewRefused


class NoSigningKey(Exception):  # noqa: N818 - names the condition
    """The operator has not published signing keys yet: retry later."""


@dataclass(frozen=True)
class Exchanged:
    client_token: str
    authentication: Authentication


def metadata_for(account: ReviewedAccount) -> dict[str, str]:
    """Flipt's metadata keys with kubegate's prefix; pod keys only for pod-bound tokens. Pure."""
    metadata = {
        K8S_NAMESPACE: account.namespace,
        K8S_SERVICEACCOUNT_NAME: account.name,
        K8S_SERVICEACCOUNT_UID: account.uid,
    }
    if account.pod_name:
        metadata[K8S_POD_NAME] = account.pod_name
    if account.pod_uid:
        metadata[K8S_POD_UID] = account.pod_uid
    return metadata


def expiry_for(account: ReviewedAccount, *, now: float, max_lifetime: float, keys_kept: float) -> float:
    """The service-account token's expiry, never later than the cap nor than keys are kept. Pure."""
    cap = now + min(max_lifetime, keys_kept)
    return cap if account.expires_at is None else min(account.expires_at, cap)


class Exchange:
    def __init__(
        self,
        *,
        review: Callable[[str], Awaitable[ReviewedAccount]],
        namespace_labels: Callable[[str], Awaitable[dict[str, str]]],
        bindings: Sequence[Binding],
        keys: Callable[[], KeySet | None],
        issuer: str,
        audience: str,
        max_lifetime: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._review = review
        self._namespace_labels = namespace_labels
        self._bindings = tuple(bindings)
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._max_lifetime = max_lifetime
        self._clock = clock

    async def exchange(self, service_account_token: str) -> Exchanged:
        """Raises ReviewRefused (401, the token is not valid), Refusal (401: which rule refused a valid token),
        ReviewUnavailable or NoSigningKey (503)."""
        claimed = claimed_account(service_account_token)
        if claimed is None:
            raise ReviewRefused("the token is not a JWT naming a service account")
        if not may_admit(self._bindings, *claimed):
            # Only the caller's claim, unverified: refused as an invalid token, whether a binding exists or not.
            namespace, name = claimed
            raise ReviewRefused(f"no binding admits the service account it claims: {name!r} in namespace {namespace!r}")
        account = await self._review(service_account_token)
        labels = None
        if needs_namespace_labels(self._bindings, account.namespace, account.name):
            labels = await self._namespace_labels(account.namespace)
        groups = groups_for(self._bindings, account.namespace, account.name, labels)
        keyset = self._keys()
        if keyset is None:
            raise NoSigningKey("the operator has not published client-token signing keys yet")
        now = self._clock()
        if account.expires_at is not None and account.expires_at <= now:
            # TokenReview said yes a moment ago; the token expired in between.
            raise ReviewRefused("the service-account token has expired")
        expires = expiry_for(
            account, now=now, max_lifetime=self._max_lifetime, keys_kept=keyset.max_token_lifetime_seconds
        )
        token_id = new_token_id()
        metadata = metadata_for(account)
        subject = f"serviceaccount:{account.namespace}:{account.name}"
        issued = datetime.fromtimestamp(int(now), UTC)
        expires_at = datetime.fromtimestamp(int(expires), UTC)
        token = mint(
            keyset.active(),
            issuer=self._issuer,
            audience=self._audience,
            subject=subject,
            uid=account.uid,
            token_id=token_id,
            method=Method.KUBERNETES.value,
            groups=groups,
            metadata=metadata,
            issued_at=issued,
            expires_at=expires_at,
        )
        authentication = Authentication(
            id=token_id,
            method=Method.KUBERNETES,
            expires_at=expires_at,
            created_at=issued,
            updated_at=issued,
            metadata=metadata,
            identity=Identity(username=subject, uid=account.uid, groups=groups),
        )
        return Exchanged(client_token=token, authentication=authentication)
