"""Leader election on a coordination.k8s.io/v1 Lease, the way client-go's leaderelection does it.

One replica holds the Lease and acts; the others try to acquire it every retry period. A candidate judges
a held lease expired by the time it saw the record last change, never by the holder's `renewTime`, so a
skewed clock cannot let two replicas act at once. The holder renews every retry period; when no renewal
succeeded within the renew deadline (shorter than the lease duration), it has lost the lease and must
stop acting before any candidate can see the lease as expired. Every write is a replace conditioned on the
resourceVersion just read: of two candidates one wins, the other gets a conflict and reads again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from kubegate.contracts.api_paths import path_for
from kubegate.contracts.timestamps import format_micro_time
from kubegate.kube import AlreadyExists, ApiError, ApiUnavailable, Conflict, KubeClient, NotFound

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "coordination.k8s.io", "v1", "leases"


def candidate_identity() -> str:
    """The pod name (or host name) plus a random suffix: unique per process, so that a restarted container
    in the same pod never mistakes its predecessor's lease for its own."""
    base = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{base}_{secrets.token_hex(4)}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    """Acquire, hold and release one Lease for one candidate identity."""

    def __init__(
        self,
        *,
        client: KubeClient,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float,
        renew_deadline: float,
        retry_period: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.identity = identity
        self.lease = f"{namespace}/{name}"
        self._client = client
        self._namespace = namespace
        self._name = name
        self._duration = lease_duration
        self._renew_deadline = renew_deadline
        self._retry_period = retry_period
        self._clock = clock
        self._sleep = sleep
        self._now = now
        self._observed_spec: dict[str, Any] | None = None
        self._observed_lease: dict[str, Any] | None = None
        self._observed_at = 0.0
        self._leading = False
        self._renewed_at = 0.0
        self._failing = False

    @property
    def _collection(self) -> str:
        return path_for(group=GROUP, version=VERSION, plural=PLURAL, namespace=self._namespace)

    @property
    def _path(self) -> str:
        return f"{self._collection}/{self._name}"

    @property
    def holder(self) -> str:
        """The holder in the record last read or written; empty when nobody holds the lease."""
        return str((self._observed_spec or {}).get("holderIdentity") or "")

    async def acquire(self) -> None:
        """Return once this candidate holds the lease, trying every retry period (sooner when the observed
        lease expires before then)."""
        announced = False
        while True:
            if await self._attempt():
                log.info("acquired the lease %s as %s", self.lease, self.identity)
                return
            if not announced and self.holder:
                log.info("waiting for the lease %s, held by %s", self.lease, self.holder)
                announced = True
            await self._sleep(self._next_try())

    def acting(self) -> bool:
        """Whether this candidate may act now: it holds the lease and renewed it within the renew deadline.

        Past the deadline another candidate may soon see the lease as expired, so the holder stops writing
        (its operator client asks this before every write) until a renewal succeeds again.
        """
        return self._leading and self._clock() - self._renewed_at < self._renew_deadline

    async def hold(self) -> None:
        """Renew the lease every retry period; return when another candidate has held it since.

        A renewal that fails for longer than the renew deadline (an API outage, a paused process) suspends
        acting (`acting()` says no) but not the term: the record still names this candidate, so nobody
        else acted meanwhile, and a renewal that succeeds resumes at once, keeping everything in memory
        valid. Only a record naming someone else, or nobody (a replica held it and let go), ends the term:
        what this process remembers may then be older than what another one did.
        """
        suspended_at: float | None = None
        tried_at = self._renewed_at
        while True:
            # While suspended, try more often: acting resumes as soon as the API answers again. The period
            # counts from the start of the last try, not its end: with 2 s per API call, a period after
            # each try made renewals 3 s too rare for the renew deadline, and the leader stopped every 6 s.
            period = self._retry_period if suspended_at is None else self._retry_period / 4
            await self._sleep(max(0.0, tried_at + period - self._clock()))
            tried_at = self._clock()
            if suspended_at is None and not self.acting():
                suspended_at = self._clock()
                log.warning(
                    "lease %s: not renewed within %.1fs; not acting until it is renewed",
                    self.lease,
                    self._renew_deadline,
                )
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that
                # arrives as the attempt finishes, and then the lease would be renewed after shutdown.
                async with asyncio.timeout(self._renew_deadline):
                    renewed = await self._attempt()
            except TimeoutError:
                renewed = False
            if renewed:
                if suspended_at is not None:
                    log.info(
                        "lease %s: renewed again after %.1fs; acting again", self.lease, self._clock() - suspended_at
                    )
                    suspended_at = None
                continue
            if self._observed_spec is not None and self.holder != self.identity:
                log.error("lease %s: now held by %s", self.lease, self.holder or "nobody")
                break
        self._leading = False

    async def release(self) -> None:
        """Give the lease up so that a waiting candidate takes it at its next try, without waiting for it to
        expire. Best effort: when this fails, the lease expires on its own."""
        if not self._leading:
            return
        self._leading = False
        try:
            async with asyncio.timeout(self._renew_deadline):
                released = await self._release()
        except (TimeoutError, ApiError, ApiUnavailable) as exc:
            log.warning("lease %s: not released (%s); it expires on its own", self.lease, exc)
            return
        if released:
            log.info("released the lease %s", self.lease)

    async def _release(self) -> bool:
        lease = await self._client.get(self._path)
        spec = dict(lease.get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            return False
        spec.pop("holderIdentity", None)
        # client-go releases the same way: no holder, and a duration of one second for readers that
        # ignore an empty holder.
        spec.update(leaseDurationSeconds=1, renewTime=format_micro_time(self._now()))
        await self._client.replace(self._path, {**lease, "spec": spec})
        return True

    async def _attempt(self) -> bool:
        """One try to acquire or renew; True when this candidate holds the lease now."""
        started = self._clock()
        try:
            acquired = await self._renew_last_written() or await self._try_acquire_or_renew()
        except (ApiError, ApiUnavailable) as exc:
            # Once per run of failures, not every try: an outage would otherwise log every half second.
            if not self._failing:
                forbidden = isinstance(exc, ApiError) and exc.status == 403
                hint = "; its service account needs get, create and update on leases in its namespace"
                log.warning("lease %s: %s%s (logged once until it answers)", self.lease, exc, hint if forbidden else "")
                self._failing = True
            return False
        self._failing = False
        if acquired:
            # From the start of the attempt: the renewTime written is no older than this.
            self._renewed_at = started
            self._leading = True
        return acquired

    async def _renew_last_written(self) -> bool:
        """As client-go does, the holder renews the record it last wrote with one PUT instead of a GET and a
        PUT, which halves a renewal on a slow network. False on a conflict: someone else wrote it since."""
        if not (self._leading and self._observed_lease is not None and self.holder == self.identity):
            return False
        now = format_micro_time(self._now())
        spec = self._observed_lease.get("spec") or {}
        transitions = int(spec.get("leaseTransitions") or 0)
        new_spec = self._spec(now, acquire_time=spec.get("acquireTime") or now, transitions=transitions)
        try:
            self._observe(await self._client.replace(self._path, {**self._observed_lease, "spec": new_spec}))
        except Conflict:
            return False
        return True

    async def _try_acquire_or_renew(self) -> bool:
        now = format_micro_time(self._now())
        try:
            lease = await self._client.get(self._path)
        except NotFound:
            spec = self._spec(now, acquire_time=now, transitions=0)
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Lease",
                "metadata": {"name": self._name, "namespace": self._namespace},
                "spec": spec,
            }
            try:
                written = await self._client.create(self._collection, body)
            except AlreadyExists:
                return False
            self._observe(written)
            return True
        self._observe(lease)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if self._leading and holder != self.identity:
            # Someone held it since this term began: never take it back within the same term (hold() ends it).
            return False
        if holder and holder != self.identity and self._expires_in() > 0:
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.identity and self._leading:
            new_spec = self._spec(now, acquire_time=spec.get("acquireTime") or now, transitions=transitions)
        else:
            new_spec = self._spec(now, acquire_time=now, transitions=transitions + 1)
        try:
            written = await self._client.replace(self._path, {**lease, "spec": new_spec})
        except Conflict:
            return False
        self._observe(written)
        return True

    def _spec(self, now: str, *, acquire_time: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            # The field holds whole seconds; rounding up never makes the lease shorter than the setting.
            "leaseDurationSeconds": math.ceil(self._duration),
            "acquireTime": acquire_time,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def _observe(self, lease: dict[str, Any]) -> None:
        self._observed_lease = lease
        spec = lease.get("spec") or {}
        if spec != self._observed_spec:
            self._observed_spec = dict(spec)
            self._observed_at = self._clock()

    def _expires_in(self) -> float:
        """Seconds until the observed record expires, by this candidate's clock."""
        duration = float((self._observed_spec or {}).get("leaseDurationSeconds") or self._duration)
        return self._observed_at + duration - self._clock()

    def _next_try(self) -> float:
        expires_in = self._expires_in()
        if not self.holder or expires_in <= 0:
            # Unheld or expired, and still not ours: someone else won, or the API failed. Wait a period.
            return self._retry_period
        # Try right when the holder's lease runs out, not up to a retry period later.
        return min(self._retry_period, expires_in)
