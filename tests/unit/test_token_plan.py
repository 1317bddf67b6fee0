from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from kubegate.contracts.token_secret import HashedToken, PreviousToken
from kubegate.operator import token_plan
from kubegate.resources.statictoken import StaticTokenSpec

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CURRENT = HashedToken(token_id="cur", sha256="a" * 64, created_at=T0)


def spec(**fields: object) -> StaticTokenSpec:
    return StaticTokenSpec.model_validate(fields)


def test_expiry_comes_from_expires_at_or_ttl_or_nothing() -> None:
    assert token_plan.token_expiry(spec(), T0) is None
    assert token_plan.token_expiry(spec(ttl="2h"), T0) == T0 + timedelta(hours=2)
    assert token_plan.token_expiry(spec(expiresAt="2026-02-01T00:00:00Z"), T0) == datetime(2026, 2, 1, tzinfo=UTC)


def test_scheduled_rotation_is_due_after_every() -> None:
    s = spec(rotation={"every": "1h"})
    args = {"spec": s, "current": CURRENT, "annotation": None, "handled_annotation": None}
    assert token_plan.rotation_reason(**args, now=T0 + timedelta(minutes=59)) is None
    assert "scheduled" in (token_plan.rotation_reason(**args, now=T0 + timedelta(hours=1)) or "")


def test_a_new_annotation_value_rotates_once() -> None:
    s = spec()
    assert token_plan.rotation_reason(spec=s, current=CURRENT, annotation="1", handled_annotation=None, now=T0)
    assert token_plan.rotation_reason(spec=s, current=CURRENT, annotation="1", handled_annotation="1", now=T0) is None
    assert token_plan.rotation_reason(spec=s, current=CURRENT, annotation="2", handled_annotation="1", now=T0)


def test_previous_token_lives_for_the_overlap_but_not_past_its_own_expiry() -> None:
    now = T0 + timedelta(hours=1)
    assert token_plan.previous_expiry(spec(rotation={"every": "1h"}), CURRENT, now) is None
    with_overlap = spec(rotation={"every": "1h", "overlap": "10m"})
    assert token_plan.previous_expiry(with_overlap, CURRENT, now) == now + timedelta(minutes=10)
    short_lived = spec(ttl="65m", rotation={"every": "1h", "overlap": "10m"})
    assert token_plan.previous_expiry(short_lived, CURRENT, now) == T0 + timedelta(minutes=65)
    expired = spec(ttl="30m", rotation={"every": "1h", "overlap": "10m"})
    assert token_plan.previous_expiry(expired, CURRENT, now) is None


def test_entries_hold_valid_tokens_only() -> None:
    s = spec(ttl="1h", groups=["g"], metadata={"k": "v"})
    previous = PreviousToken(token_id="prev", sha256="b" * 64, created_at=T0, expires_at=T0 + timedelta(minutes=5))
    entries = token_plan.entries(namespace="ns", name="n", spec=s, current=CURRENT, previous=previous, now=T0)
    assert [e.token_id for e in entries] == ["cur", "prev"]
    assert entries[0].groups == ("g",)
    assert entries[0].metadata == {"k": "v"}
    later = token_plan.entries(
        namespace="ns", name="n", spec=s, current=CURRENT, previous=previous, now=T0 + timedelta(minutes=30)
    )
    assert [e.token_id for e in later] == ["cur"]
    expired = token_plan.entries(
        namespace="ns", name="n", spec=s, current=CURRENT, previous=None, now=T0 + timedelta(hours=1)
    )
    assert expired == ()


def test_next_wake_is_the_earliest_future_moment() -> None:
    s = spec(ttl="3h", rotation={"every": "2h"})
    previous = PreviousToken(token_id="p", sha256="b" * 64, created_at=T0, expires_at=T0 + timedelta(minutes=10))
    wake = token_plan.next_wake(spec=s, current=CURRENT, previous=previous, delete_expired_after="1h", now=T0)
    assert wake == T0 + timedelta(minutes=10)
    wake = token_plan.next_wake(
        spec=s, current=CURRENT, previous=None, delete_expired_after="1h", now=T0 + timedelta(hours=2, minutes=1)
    )
    assert wake == T0 + timedelta(hours=3)
    wake = token_plan.next_wake(
        spec=s, current=CURRENT, previous=None, delete_expired_after="1h", now=T0 + timedelta(hours=3)
    )
    assert wake == T0 + timedelta(hours=4)
    assert token_plan.next_wake(spec=spec(), current=CURRENT, previous=None, delete_expired_after=None, now=T0) is None


def test_clamp_sleep() -> None:
    longest = timedelta(minutes=10)
    assert token_plan.clamp_sleep(None, T0, longest=longest) == 600
    assert token_plan.clamp_sleep(T0 - timedelta(seconds=5), T0, longest=longest) == 0
    assert token_plan.clamp_sleep(T0 + timedelta(seconds=5), T0, longest=longest) == 5


# --- properties: one rotation per request, an overlap only its own expiry cuts short ------------------

requests = st.none() | st.text(min_size=0, max_size=8)
minutes = st.integers(min_value=1, max_value=60 * 24 * 400)


@given(annotation=requests, handled=requests, age=minutes, every=st.none() | minutes)
def test_a_request_rotates_once_and_only_an_unhandled_one_or_the_schedule_rotates(
    annotation: str | None, handled: str | None, age: int, every: int | None
) -> None:
    s = spec(**({"rotation": {"every": f"{every}m"}} if every else {}))
    now = T0 + timedelta(minutes=age)
    reason = token_plan.rotation_reason(
        spec=s, current=CURRENT, annotation=annotation, handled_annotation=handled, now=now
    )
    scheduled = every is not None and age >= every
    assert (reason is not None) == ((annotation is not None and annotation != handled) or scheduled)
    # Once the request is recorded as handled (with the new value), the same request never rotates again.
    rotated = HashedToken(token_id="new", sha256="c" * 64, created_at=now)
    again = token_plan.rotation_reason(
        spec=s, current=rotated, annotation=annotation, handled_annotation=annotation, now=now
    )
    assert again is None


@given(overlap=minutes, ttl=st.none() | minutes, age=minutes)
def test_the_previous_token_keeps_the_whole_overlap_unless_it_expires_first(
    overlap: int, ttl: int | None, age: int
) -> None:
    s = spec(rotation={"every": "720h", "overlap": f"{overlap}m"}, **({"ttl": f"{ttl}m"} if ttl else {}))
    now = T0 + timedelta(minutes=age)
    until = token_plan.previous_expiry(s, CURRENT, now)
    own = None if ttl is None else T0 + timedelta(minutes=ttl)
    if own is not None and own <= now:
        assert until is None
    else:
        assert until == min(now + timedelta(minutes=overlap), own or now + timedelta(minutes=overlap))
