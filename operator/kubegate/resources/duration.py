"""Durations as Kubernetes users write them (`30m`, `24h`, `1h30m`), the Go `time.ParseDuration` subset.

Pure logic shared by the resource schemas (pattern and CEL rule the API server enforces) and the
operator (which turns them into `timedelta`).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, Field

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = r"[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h)"
# No sign is accepted: a negative or zero lifetime is always a mistake in these resources.
DURATION_PATTERN = rf"^(?:{_PART})+$"
_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_FULL_RE = re.compile(DURATION_PATTERN)
DURATION_MAX_LENGTH = 64
_MICROSECOND = timedelta(microseconds=1)


def parse_duration(text: str) -> timedelta:
    """Parse a positive Go-style duration such as `90s`, `1h30m` or `0.5h`.

    Raises ValueError naming the text and the expected form when it is not one.
    """
    if len(text) > DURATION_MAX_LENGTH or not _FULL_RE.match(text):
        raise ValueError(
            f"{text!r} is not a duration: use a positive number with a unit (ns, us, ms, s, m, h), "
            "for example 30m, 24h or 1h30m"
        )
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART_RE.findall(text))
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration: use a value above zero, for example 1h")
    try:
        parsed = timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{text!r} is not a duration: it is longer than a timedelta can hold") from None
    # Below a microsecond a timedelta is zero; the API server's CEL rule calls it positive, and so do we.
    return max(parsed, _MICROSECOND)


def _check(text: str) -> str:
    parse_duration(text)
    return text


_SCHEMA: dict[str, Any] = {
    "x-kubernetes-validations": [
        {"rule": "duration(self) > duration('0s')", "message": "must be a positive duration, such as 30m or 24h"}
    ]
}

Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, max_length=DURATION_MAX_LENGTH, json_schema_extra=_SCHEMA),
    AfterValidator(_check),
]
"""A positive duration string; the API server and the models accept exactly the same values."""
