from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from kubegate.contracts.timestamps import format_micro_time, format_time, now, parse_time

moments = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC))


def test_time_is_utc_with_whole_seconds_and_a_z() -> None:
    berlin = timezone(timedelta(hours=1))
    assert format_time(datetime(2026, 1, 1, 1, 2, 3, 999_999, tzinfo=berlin)) == "2026-01-01T00:02:03Z"


def test_micro_time_keeps_microseconds() -> None:
    assert format_micro_time(datetime(2026, 1, 1, 0, 0, 0, 42, tzinfo=UTC)) == "2026-01-01T00:00:00.000042Z"


@given(moments)
def test_what_is_written_reads_back_to_the_second(moment: datetime) -> None:
    assert parse_time(format_time(moment)) == moment.replace(microsecond=0)
    assert parse_time(format_micro_time(moment)) == moment


@given(st.one_of(st.none(), st.just(""), st.text(alphabet="0123456789-:TZ. x", max_size=30)))
def test_unreadable_values_are_none_never_an_error(value: str | None) -> None:
    parsed = parse_time(value)
    assert parsed is None or isinstance(parsed, datetime)


def test_missing_and_garbage_are_none() -> None:
    assert parse_time(None) is None
    assert parse_time("") is None
    assert parse_time("yesterday") is None


def test_now_is_whole_seconds_in_utc() -> None:
    moment = now()
    assert moment.microsecond == 0
    assert moment.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - moment) < timedelta(seconds=2)
