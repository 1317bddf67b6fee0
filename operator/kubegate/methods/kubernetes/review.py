"""Ask the API server whether a service-account token is valid (TokenReview), with a short cache.

Successful reviews are cached for a few seconds, never past the token's expiry, under an HMAC of the
token (a random per-process key, so the cache holds nothing that could be replayed or brute-forced).
Identical reviews in flight share one API call, and at most `max_concurrent` calls are in flight: beyond
that a review is refused at once (503), so a burst of exchanges cannot become a burst on the API server.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kubegate.kube import ApiError, ApiUnavailable, KubeClient
from kubegate.methods.kubernetes.claims import SA_PREFIX, unverified_payload

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
POD_NAME = "authentication.kubernetes.io/pod-name"
POD_UID = "authentication.kubernetes.io/pod-uid"


@dataclass(frozen=True, kw_only=True)
class ReviewedAccount:
    namespace: str
    name: str
    uid: str
    """The ServiceAccount's uid."""
    pod_name: str | None
    pod_uid: str | None
    expires_at: float | None
    """The token's `exp` (POSIX seconds), read once the API server vouched for the token."""


class ReviewRefused(Exception):  # noqa: N818 - names the outcome
    """The API server does not accept the token; the message says why."""


class ReviewUnavailable(Exception):  # noqa: N818
    """The API server could not be asked: retry later (503), do not call the token invalid."""


class ReviewBusy(ReviewUnavailable):
    """As many TokenReviews as allowed are in flight already: retry in a moment (503)."""


@dataclass
class _Cached:
    account: ReviewedAccount
    until: float


def _token_expiry(token: str) -> float | None:
    payload = unverified_payload(token)
    exp = payload.get("exp") if payload is not None else None
    if not isinstance(exp, int | float):
        return None
    try:
        return float(exp)
    except OverflowError:  # an integer beyond a float's range is no time
        return None


def account_from(status: dict[str, Any], token: str, audiences: Sequence[str]) -> ReviewedAccount:
    """The service account a TokenReview status vouches for; raises ReviewRefused otherwise. Pure."""
    if not status.get("authenticated"):
        reason = str(status.get("error") or "the token is not valid")
        raise ReviewRefused(f"the Kubernetes API server refused the service-account token: {reason}")
    if audiences and not set(status.get("audiences") or ()) & set(audiences):
        raise ReviewRefused(
            f"the service-account token is not for the audience kubegate expects ({', '.join(audiences)})"
        )
    user = status.get("user") or {}
    username = str(user.get("username") or "")
    if not username.startswith(SA_PREFIX) or username.count(":") != 3:
        raise ReviewRefused("the token is not a service-account token")
    namespace, name = username.removeprefix(SA_PREFIX).split(":")
    extra = user.get("extra") or {}

    def first(key: str) -> str | None:
        values = extra.get(key) or []
        return str(values[0]) if values else None

    return ReviewedAccount(
        namespace=namespace,
        name=name,
        uid=str(user.get("uid") or ""),
        pod_name=first(POD_NAME),
        pod_uid=first(POD_UID),
        expires_at=_token_expiry(token),
    )


class TokenReviewer:
    def __init__(
        self,
        client: KubeClient,
        *,
        audiences: Sequence[str],
        cache_seconds: float = 5.0,
        max_concurrent: int = 32,
        max_cached: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._audiences = tuple(audiences)
        self._cache_seconds = cache_seconds
        self._max_concurrent = max_concurrent
        self._max_cached = max_cached
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, _Cached] = OrderedDict()
        self._in_flight: dict[bytes, asyncio.Task[ReviewedAccount]] = {}
        self.api_calls = 0
        """TokenReviews sent to the API server since start; tests read it to see what the cache saved."""

    async def review(self, token: str) -> ReviewedAccount:
        """The service account `token` belongs to; raises ReviewRefused, ReviewUnavailable or ReviewBusy."""
        key = hmac.new(self._key, token.encode(), hashlib.sha256).digest()
        cached = self._cache.get(key)
        if cached is not None and self._clock() < cached.until:
            return cached.account
        task = self._in_flight.get(key)
        if task is None:
            if len(self._in_flight) >= self._max_concurrent:
                raise ReviewBusy(f"{self._max_concurrent} service-account tokens are being reviewed already")
            # A task of its own: a caller that goes away (client disconnect) does not cancel the
            # review for the others waiting on it.
            task = asyncio.create_task(self._ask_and_cache(key, token))
            self._in_flight[key] = task
            task.add_done_callback(lambda _: self._in_flight.pop(key, None))
        return await asyncio.shield(task)

    async def _ask_and_cache(self, key: bytes, token: str) -> ReviewedAccount:
        account = await self._ask(token)
        until = self._clock() + self._cache_seconds
        if account.expires_at is not None:
            until = min(until, account.expires_at)
        self._cache[key] = _Cached(account, until)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max_cached:
            self._cache.popitem(last=False)
        return account

    async def _ask(self, token: str) -> ReviewedAccount:
        body: dict[str, Any] = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, **({"audiences": list(self._audiences)} if self._audiences else {})},
        }
        self.api_calls += 1
        try:
            answer = await self._client.create(TOKEN_REVIEWS, body)
        except ApiUnavailable as exc:
            raise ReviewUnavailable(f"the Kubernetes API server cannot be reached: {exc}") from exc
        except ApiError as exc:
            # 401/403: kubegate's own credentials or RBAC are wrong (it needs create on tokenreviews).
            raise ReviewUnavailable(
                f"the Kubernetes API server refused the TokenReview ({exc.status} {exc.reason})"
            ) from exc
        return account_from(answer.get("status") or {}, token, self._audiences)
