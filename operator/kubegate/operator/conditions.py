"""kstatus conditions (Ready, Stalled) computed from an outcome. Pure; no I/O.

kstatus reads `Stalled` as an abnormal-true condition: it is present only while it holds, so a healthy
resource carries `Ready=True` alone. A reconciliation finishes within one handler call, so `Reconciling`,
the other abnormal-true condition, is never written. A transient failure (an OIDC provider that cannot be
reached) gives Ready=False without Stalled, which kstatus reads as still in progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from kubegate.contracts.timestamps import format_time

Kind = Literal["ready", "stalled", "expired", "retrying"]


@dataclass(frozen=True, kw_only=True)
class Detail:
    """A condition of the kind's own beside Ready and Stalled (for example OIDCProvider's KeysPublished)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What a reconciliation concluded, in words a user reads with `kubectl describe`."""

    kind: Kind
    reason: str
    message: str
    details: tuple[Detail, ...] = ()
    """Conditions written after Ready (and Stalled); a type not listed here is removed."""


def ready(message: str, reason: str = "TokenReady", details: tuple[Detail, ...] = ()) -> Outcome:
    return Outcome(kind="ready", reason=reason, message=message, details=details)


def stalled(reason: str, message: str, details: tuple[Detail, ...] = ()) -> Outcome:
    """Bad input: nothing will change until someone fixes the resource or what it points to."""
    return Outcome(kind="stalled", reason=reason, message=message, details=details)


def retrying(reason: str, message: str, details: tuple[Detail, ...] = ()) -> Outcome:
    """A transient failure (a remote service cannot be reached): not ready, but not stalled either, since it
    may pass by itself; the reconciler tries again with a backoff."""
    return Outcome(kind="retrying", reason=reason, message=message, details=details)


def expired(message: str) -> Outcome:
    """The token expired: like stalled (nothing changes until someone edits the resource), but not an
    error to retry, and the resource may be deleted after a grace period."""
    return Outcome(kind="expired", reason="Expired", message=message)


def _condition(
    type_: str,
    status: str,
    *,
    outcome: Outcome | Detail,
    generation: int,
    now: datetime,
    previous: dict[str, Any] | None,
) -> dict[str, Any]:
    unchanged = previous is not None and previous.get("status") == status
    return {
        "type": type_,
        "status": status,
        "reason": outcome.reason,
        "message": outcome.message,
        "observedGeneration": generation,
        "lastTransitionTime": previous["lastTransitionTime"]
        if unchanged and previous is not None and "lastTransitionTime" in previous
        else format_time(now),
    }


def conditions_for(
    outcome: Outcome, *, generation: int, now: datetime, current: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """The full list of conditions for an outcome; transition times survive when a status is unchanged."""
    by_type = {c.get("type"): c for c in current or [] if isinstance(c, dict)}
    ready_status = "True" if outcome.kind == "ready" else "False"
    wanted = [("Ready", ready_status)]
    # An expired token is terminal until its spec changes: without Stalled, kstatus calls it Current and
    # Argo CD and Flux show a dead credential as healthy.
    if outcome.kind in ("stalled", "expired"):
        wanted.append(("Stalled", "True"))
    return [
        _condition(t, s, outcome=outcome, generation=generation, now=now, previous=by_type.get(t)) for t, s in wanted
    ] + [
        _condition(d.type, d.status, outcome=d, generation=generation, now=now, previous=by_type.get(d.type))
        for d in outcome.details
    ]
