"""Lease leader election: who acquires when, renewing, losing the lease in time, releasing it."""

from __future__ import annotations

import asyncio
import copy
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from kubegate.kube import AlreadyExists, ApiUnavailable, Conflict, NotFound
from kubegate.operator.leader import LeaderElector

DURATION, RENEW_DEADLINE, RETRY = 10.0, 7.0, 2.0
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class FakeTime:
    """A monotonic clock that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


class FakeLeases:
    """One Lease with resourceVersions: create fails when it exists, replace when the version is stale."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.failing = False
        self.before_get: Callable[[], None] = lambda: None
        self.before_replace: Callable[[], None] = lambda: None

    def put(self, spec: dict[str, Any]) -> None:
        """Someone else writes the lease."""
        self.version += 1
        meta = {"name": "kubegate-operator", "namespace": "ns", "resourceVersion": str(self.version)}
        self.lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    @property
    def spec(self) -> dict[str, Any]:
        assert self.lease is not None
        return dict(self.lease["spec"])

    def _check(self) -> None:
        if self.failing:
            raise ApiUnavailable("GET leases: 503")

    async def get(self, path: str, **_: str) -> dict[str, Any]:
        self.before_get()
        self._check()
        if self.lease is None:
            raise NotFound(status=404, reason="NotFound", message="leases not found")
        return copy.deepcopy(self.lease)

    async def create(self, path: str, body: dict[str, Any], **_: str) -> dict[str, Any]:
        self._check()
        if self.lease is not None:
            raise AlreadyExists(status=409, reason="AlreadyExists", message="exists")
        self.put(copy.deepcopy(body["spec"]))
        return copy.deepcopy(self.lease)  # type: ignore[arg-type]

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.before_replace()
        self._check()
        assert self.lease is not None
        if body["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise Conflict(status=409, reason="Conflict", message="the object has been modified")
        self.put(copy.deepcopy(body["spec"]))
        return copy.deepcopy(self.lease)


def elector(leases: FakeLeases, clock: FakeTime, identity: str = "me", **timings: float) -> LeaderElector:
    return LeaderElector(
        client=leases,  # type: ignore[arg-type]
        namespace="ns",
        name="kubegate-operator",
        identity=identity,
        lease_duration=timings.get("duration", DURATION),
        renew_deadline=timings.get("renew_deadline", RENEW_DEADLINE),
        retry_period=timings.get("retry", RETRY),
        clock=clock,
        sleep=clock.sleep,
    )


def held_by(holder: str, *, renew_time: str = "2026-01-01T00:00:00.000000Z") -> dict[str, Any]:
    return {
        "holderIdentity": holder,
        "leaseDurationSeconds": int(DURATION),
        "acquireTime": "2026-01-01T00:00:00.000000Z",
        "renewTime": renew_time,
        "leaseTransitions": 3,
    }


async def test_an_absent_lease_is_created_and_held() -> None:
    leases, clock = FakeLeases(), FakeTime()
    await elector(leases, clock, duration=4.5, renew_deadline=3, retry=1).acquire()
    spec = leases.spec
    assert spec["holderIdentity"] == "me"
    assert spec["leaseDurationSeconds"] == 5  # whole seconds, never shorter than asked
    assert spec["leaseTransitions"] == 0
    assert MICRO_TIME.match(spec["renewTime"])
    assert MICRO_TIME.match(spec["acquireTime"])
    assert clock.now == 1000.0  # at once


async def test_an_unheld_lease_is_taken_at_once() -> None:
    leases, clock = FakeLeases(), FakeTime()
    spec = held_by("gone")
    del spec["holderIdentity"]
    leases.put(spec)
    await elector(leases, clock).acquire()
    assert leases.spec["holderIdentity"] == "me"
    assert leases.spec["leaseTransitions"] == 4
    assert clock.now == 1000.0


async def test_a_held_lease_is_taken_one_duration_after_its_last_renewal_was_seen() -> None:
    leases, clock = FakeLeases(), FakeTime()
    leases.put(held_by("other"))
    renewals = iter(range(3))

    def other_renews_three_times() -> None:
        if clock.now >= 1004.0 and next(renewals, None) is not None:
            leases.put(held_by("other", renew_time=f"2026-01-01T00:00:0{clock.now - 1000:.0f}.000000Z"))

    leases.before_get = other_renews_three_times
    await elector(leases, clock).acquire()
    # The last renewal was seen at 1008 (reads at 1000, 1002, ..., each renewal seen by the next read);
    # the lease is taken exactly one duration later, not a retry period after that.
    assert clock.now == pytest.approx(1008.0 + DURATION)
    assert leases.spec["holderIdentity"] == "me"
    assert leases.spec["leaseTransitions"] == 4


async def test_expiry_is_judged_by_our_clock_not_the_holders_renew_time() -> None:
    """A renewTime an hour old (a holder whose clock is behind) does not make the lease expired."""
    leases, clock = FakeLeases(), FakeTime()
    leases.put(held_by("other", renew_time="2000-01-01T00:00:00.000000Z"))
    candidate = elector(leases, clock)
    task = asyncio.create_task(candidate.acquire())
    while clock.now < 1000.0 + DURATION - RETRY:
        await asyncio.sleep(0)
        assert not task.done()
        assert leases.spec["holderIdentity"] == "other"
    await task
    assert clock.now == pytest.approx(1000.0 + DURATION)


async def test_of_two_candidates_one_wins_and_the_other_waits() -> None:
    leases, clock = FakeLeases(), FakeTime()
    leases.put(held_by(""))

    def rival_writes_first() -> None:
        leases.before_replace = lambda: None
        leases.put(held_by("rival"))

    leases.before_replace = rival_writes_first
    candidate = elector(leases, clock)
    task = asyncio.create_task(candidate.acquire())
    while clock.now < 1000.0 + DURATION - RETRY:  # the rival's fresh lease has not expired yet
        await asyncio.sleep(0)
        assert not task.done()
    assert leases.spec["holderIdentity"] == "rival"
    assert candidate.holder == "rival"
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_the_holder_renews_every_retry_period_and_keeps_its_acquire_time() -> None:
    leases, clock = FakeLeases(), FakeTime()
    leader = elector(leases, clock)
    await leader.acquire()
    acquired = leases.spec
    renewals: list[float] = []
    five = asyncio.Event()

    def renewing() -> None:
        renewals.append(clock.now)
        if len(renewals) == 5:
            five.set()

    leases.before_replace = renewing
    holding = asyncio.create_task(leader.hold())
    await five.wait()
    holding.cancel()
    await asyncio.gather(holding, return_exceptions=True)
    assert renewals == [1000.0 + RETRY * i for i in range(1, 6)]
    assert leases.spec["acquireTime"] == acquired["acquireTime"]
    assert leases.spec["leaseTransitions"] == acquired["leaseTransitions"]
    assert leases.spec["holderIdentity"] == "me"


async def test_without_renewal_past_the_deadline_it_stops_acting_and_resumes_the_same_term_when_renewed() -> None:
    leases, clock = FakeLeases(), FakeTime()
    leader = elector(leases, clock)
    await leader.acquire()
    acquired = leases.spec
    assert leader.acting()
    seen: list[tuple[float, bool]] = []

    def api_away_for_a_minute() -> None:
        leases.failing = 1000.0 + 2 * RETRY < clock.now < 1000.0 + 60
        seen.append((clock.now, leader.acting()))

    leases.before_get = leases.before_replace = api_away_for_a_minute
    holding = asyncio.create_task(leader.hold())
    await _until(lambda: clock.now >= 1000.0 + 70, step=0)
    holding.cancel()
    await asyncio.gather(holding, return_exceptions=True)
    last_renewal = 1000.0 + 2 * RETRY
    # Acting until the renew deadline after the last renewal, not after it; acting again once renewed.
    assert all(acting for at, acting in seen if at < last_renewal + RENEW_DEADLINE)
    assert not any(acting for at, acting in seen if last_renewal + RENEW_DEADLINE <= at <= 1000.0 + 60)
    assert leader.acting()
    # While suspended it tried every quarter period, so it resumed within that of the API's return.
    renewed = [at for at, _ in seen if at >= 1000.0 + 60]
    assert renewed[0] <= 1000.0 + 60 + RETRY / 4
    # The same term: nobody else acted, so nothing it remembers is stale.
    assert leases.spec["acquireTime"] == acquired["acquireTime"]
    assert leases.spec["leaseTransitions"] == acquired["leaseTransitions"]


async def test_on_an_api_that_takes_2s_a_call_the_holder_renews_with_one_put_and_never_stops_acting() -> None:
    leases, clock = FakeLeases(), FakeTime()
    leader = elector(leases, clock)
    await leader.acquire()
    calls: list[str] = []
    acting_when_renewed: list[bool] = []
    get, replace = leases.get, leases.replace

    async def slow_get(path: str, **_: str) -> dict[str, Any]:
        calls.append("GET")
        await clock.sleep(2.0)
        return await get(path)

    async def slow_replace(path: str, body: dict[str, Any]) -> dict[str, Any]:
        calls.append("PUT")
        await clock.sleep(2.0)
        acting_when_renewed.append(leader.acting())  # the oldest its last renewal gets
        return await replace(path, body)

    leases.get, leases.replace = slow_get, slow_replace  # type: ignore[method-assign]
    holding = asyncio.create_task(leader.hold())
    await _until(lambda: clock.now >= 1000.0 + 60, step=0)
    holding.cancel()
    await asyncio.gather(holding, return_exceptions=True)
    assert len(calls) >= 20
    assert set(calls) == {"PUT"}
    assert all(acting_when_renewed)


class CutOff:
    """The leader's view of the API: fails while `cut`, otherwise the shared leases."""

    def __init__(self, leases: FakeLeases) -> None:
        self.leases = leases
        self.cut = False

    async def get(self, path: str, **_: str) -> dict[str, Any]:
        if self.cut:
            raise ApiUnavailable("GET leases: connection refused")
        return await self.leases.get(path)

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.leases.create(path, body)

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.cut:
            raise ApiUnavailable("PUT leases: connection refused")
        return await self.leases.replace(path, body)


async def test_a_term_ends_when_another_candidate_took_the_lease_while_the_leader_was_cut_off() -> None:
    leases, clock = FakeLeases(), FakeTime()
    view = CutOff(leases)
    leader = elector(view, clock)  # type: ignore[arg-type]
    standby = elector(leases, clock, identity="standby")
    await leader.acquire()
    view.cut = True
    holding = asyncio.create_task(leader.hold())
    # The stand-by sees the record unchanged for a whole duration, then takes it.
    await asyncio.wait_for(standby.acquire(), timeout=5)
    assert clock.now >= 1000.0 + DURATION
    assert not leader.acting()  # it stopped acting before the stand-by could start
    view.cut = False
    await asyncio.wait_for(holding, timeout=5)  # it sees the new holder: its term is over
    assert leases.spec["holderIdentity"] == "standby"
    assert not leader.acting()


async def test_a_leader_never_takes_back_an_expired_lease_someone_else_held_in_its_term() -> None:
    leases, clock = FakeLeases(), FakeTime()
    leader = elector(leases, clock)
    await leader.acquire()
    leases.put(held_by("other"))  # another replica held it meanwhile (and is gone: its record will expire)
    await leader.hold()
    clock.now += 10 * DURATION
    assert not leader.acting()
    assert leases.spec["holderIdentity"] == "other"


async def test_leadership_is_lost_at_once_when_another_candidate_holds_the_lease() -> None:
    leases, clock = FakeLeases(), FakeTime()
    leader = elector(leases, clock)
    await leader.acquire()
    leases.put(held_by("usurper"))
    await leader.hold()
    assert clock.now == 1000.0 + RETRY


async def test_a_renewal_that_hangs_stops_acting_by_the_deadline() -> None:
    leases = FakeLeases()
    leader = LeaderElector(
        client=leases,  # type: ignore[arg-type]
        namespace="ns",
        name="kubegate-operator",
        identity="me",
        lease_duration=0.5,
        renew_deadline=0.3,
        retry_period=0.1,
    )
    await leader.acquire()
    acquired = time.monotonic()
    replace = leases.replace

    async def hang(path: str, body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    leases.replace = hang  # type: ignore[method-assign]
    holding = asyncio.create_task(leader.hold())
    try:
        await _until(lambda: not leader.acting())
        assert 0.3 <= time.monotonic() - acquired < 0.4
        leases.replace = replace  # type: ignore[method-assign]
        await asyncio.wait_for(_until(leader.acting), timeout=2)  # the hung try times out; the next renews
    finally:
        holding.cancel()
        await asyncio.gather(holding, return_exceptions=True)


async def _until(check: Callable[[], bool], *, step: float = 0.01, tries: int = 100_000) -> None:
    for _ in range(tries):
        if check():
            return
        await asyncio.sleep(step)
    raise AssertionError("the condition never held")


async def test_release_lets_a_waiting_candidate_take_over_at_its_next_try() -> None:
    leases, clock = FakeLeases(), FakeTime()
    leader, standby = elector(leases, clock), elector(leases, clock, identity="standby")
    await leader.acquire()
    waiting = asyncio.create_task(standby.acquire())
    await asyncio.sleep(0)  # one try: it has seen the lease held
    assert not waiting.done()
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert standby.holder == "me"
    released_at = clock.now
    await leader.release()
    assert "holderIdentity" not in leases.spec
    assert leases.spec["leaseDurationSeconds"] == 1
    await standby.acquire()
    assert clock.now - released_at <= RETRY  # not a lease duration
    assert leases.spec["holderIdentity"] == "standby"


async def test_release_never_overwrites_another_holder() -> None:
    leases, clock = FakeLeases(), FakeTime()
    leader = elector(leases, clock)
    await leader.acquire()
    leases.put(held_by("usurper"))
    await leader.release()
    assert leases.spec["holderIdentity"] == "usurper"
