"""Time-based decisions about one StaticToken: expiry, rotation, overlap, deletion. Pure; no I/O.

The operator's reconciler reads the world, asks these functions what is due, and acts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from kubegate.contracts.token_secret import HashedToken, PreviousToken
from kubegate.resources.duration import parse_duration
from kubegate.resources.statictoken import StaticTokenSpec
from kubegate.validation_config.model import TokenEntry

ROTATE_ANNOTATION = "kubegate.dev/rotate"


def token_expiry(spec: StaticTokenSpec, token_created_at: datetime) -> datetime | None:
    """When the current token expires: `expiresAt`, or its creation plus `ttl`, or never."""
    if spec.expires_at is not None:
        return spec.expires_at
    if spec.ttl is not None:
        return token_created_at + parse_duration(spec.ttl)
    return None


def next_scheduled_rotation(spec: StaticTokenSpec, token_created_at: datetime) -> datetime | None:
    if spec.rotation is None:
        return None
    return token_created_at + parse_duration(spec.rotation.every)


def rotation_reason(
    *,
    spec: StaticTokenSpec,
    current: HashedToken,
    annotation: str | None,
    handled_annotation: str | None,
    now: datetime,
) -> str | None:
    """Why the token must be rotated now (a sentence for the Event), or None."""
    if annotation is not None and annotation != handled_annotation:
        return f"the {ROTATE_ANNOTATION} annotation changed to {annotation!r}"
    due = next_scheduled_rotation(spec, current.created_at)
    if due is not None and now >= due:
        assert spec.rotation is not None
        return f"scheduled rotation (every {spec.rotation.every})"
    return None


def previous_expiry(spec: StaticTokenSpec, replaced: HashedToken, now: datetime) -> datetime | None:
    """Until when the token a rotation replaces stays valid: the overlap, cut short by its own expiry.

    None: it stops at once (no overlap, or it had expired already).
    """
    if spec.rotation is None or spec.rotation.overlap is None:
        return None
    end = now + parse_duration(spec.rotation.overlap)
    own = token_expiry(spec, replaced.created_at)
    if own is not None:
        end = min(end, own)
    return end if end > now else None


def deletion_time(expiry: datetime | None, delete_expired_after: str | None) -> datetime | None:
    if expiry is None or delete_expired_after is None:
        return None
    return expiry + parse_duration(delete_expired_after)


def next_wake(
    *,
    spec: StaticTokenSpec,
    current: HashedToken | None,
    previous: PreviousToken | None,
    delete_expired_after: str | None,
    now: datetime,
) -> datetime | None:
    """The next moment something changes by itself, so the operator can sleep until then."""
    moments: list[datetime] = []
    if current is not None:
        expiry = token_expiry(spec, current.created_at)
        for moment in (
            expiry,
            next_scheduled_rotation(spec, current.created_at),
            deletion_time(expiry, delete_expired_after),
        ):
            if moment is not None:
                moments.append(moment)
    if previous is not None:
        moments.append(previous.expires_at)
    future = [m for m in moments if m > now]
    return min(future) if future else None


def entries(
    *,
    namespace: str,
    name: str,
    spec: StaticTokenSpec,
    current: HashedToken | None,
    previous: PreviousToken | None,
    now: datetime,
) -> tuple[TokenEntry, ...]:
    """The validation-config entries of one StaticToken: its valid tokens, never expired ones."""

    def entry(token: HashedToken | PreviousToken, expiry: datetime | None) -> TokenEntry:
        return TokenEntry(
            sha256=token.sha256,
            token_id=token.token_id,
            name=name,
            namespace=namespace,
            groups=tuple(spec.groups or ()),
            metadata=dict(spec.metadata or {}),
            created_at=token.created_at,
            expires_at=expiry,
        )

    result: list[TokenEntry] = []
    if current is not None:
        expiry = token_expiry(spec, current.created_at)
        if expiry is None or now < expiry:
            result.append(entry(current, expiry))
    if previous is not None and now < previous.expires_at:
        result.append(entry(previous, previous.expires_at))
    return tuple(result)


def clamp_sleep(wake: datetime | None, now: datetime, *, longest: timedelta) -> float:
    """Seconds to sleep until `wake`, never negative and never past `longest` (to re-check anyway)."""
    if wake is None:
        return longest.total_seconds()
    return max(0.0, min((wake - now).total_seconds(), longest.total_seconds()))
