"""kstatus conditions (Ready, Stalled) computed from an outcome. Pure; no I/O.

kstatus reads `Stalled` as an abnormal-true condition: it is present only while it holds, so a healthy
resource carries `Ready=True` alone. A reconciliation finishes within one handler call, so `Reconciling`,
the other abnormal-true condition, is never written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from kubegate.contracts.timestamps import format_time

Kind = Literal["ready", "stalled", "expired"]


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What a reconciliation concluded, in words a user reads with `kubectl describe`."""

    kind: Kind
    reason: str
    message: str


def ready(message: str, reason: str = "TokenReady") -> Outcome:
    return Outcome(kind="ready", reason=reason, message=message)


def stalled(reason: str, message: str) -> Outcome:
    """Bad input: nothing will change until someone fixes the resource or what it points to."""
    return Outcome(kind="stalled", reason=reason, message=message)


def expired(message: str) -> Outcome:
    """The token expired: like stalled (nothing changes until someone edits the resource), but not an
    error to retry, and the resource may be deleted after a grace period."""
    return Outcome(kind="expired", reason="Expired", message=message)


def _condition(
    type_: str,
    status: str,
    *,
    outcome: Outcome,
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
    ]
