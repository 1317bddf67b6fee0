from datetime import timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kubegate.resources.duration import parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("24h", timedelta(hours=24)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("0.5h", timedelta(minutes=30)),
        ("1500ms", timedelta(seconds=1.5)),
        ("1h0m1s", timedelta(hours=1, seconds=1)),
    ],
)
def test_parses_go_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "-1h", "1", "h", "1d", "1 h", "+1h", "0s", "0h0m", "1h-5m", "x" * 70])
def test_rejects_what_is_not_a_positive_duration(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**5), st.integers(0, 59), st.integers(0, 59))
def test_hours_minutes_and_seconds_add_up(hours: int, minutes: int, seconds: int) -> None:
    assume(hours or minutes or seconds)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n)
    assert parse_duration(text) == timedelta(hours=hours, minutes=minutes, seconds=seconds)
