"""Kubernetes timestamps: RFC 3339 in UTC, as the API server writes `Time` and `MicroTime`. Pure; no I/O.

Status fields, annotations, Events, Leases and the specs kubegate writes all use these, so that a value
kubegate wrote reads back equal.
"""

from __future__ import annotations

from datetime import UTC, datetime


def format_time(moment: datetime) -> str:
    """A Kubernetes `Time`: RFC 3339 in UTC, whole seconds (a fraction is dropped), such as 2026-01-01T00:00:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(moment: datetime) -> str:
    """A Kubernetes `MicroTime` (Lease times): RFC 3339 in UTC with microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> datetime | None:
    """The moment an RFC 3339 value names; None when it is missing or unreadable."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def now() -> datetime:
    """The current time in UTC, in whole seconds as Kubernetes stores `Time`, so a status round-trips unchanged."""
    return datetime.now(UTC).replace(microsecond=0)
