"""Writes what a reconciler concluded about a kubegate resource, where users and tools read it: the status
(kstatus conditions, observedGeneration, the kind's own fields) and, when the resource turns stalled,
expired or failing, a Warning Event. Works for any reconciled kind (StaticToken, OIDCProvider).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubegate.kube import ApiUnavailable, Conflict, KubeApi, NotFound
from kubegate.operator import conditions
from kubegate.operator.conditions import Outcome
from kubegate.operator.events import EventPoster
from kubegate.resources.kinds import ResourceKind


class Retry(Exception):  # noqa: N818 - tells the caller what to do
    """A transient failure (API unavailable, write conflict): reconcile again after a backoff."""


async def read_live(client: KubeApi, path: str) -> dict[str, Any] | None:
    """A resource as it is now, for a reconciliation: None when it is gone or being deleted (nothing to do);
    raises Retry when the API is unavailable."""
    try:
        body = await client.get(path)
    except NotFound:
        return None
    except ApiUnavailable as exc:
        raise Retry(str(exc)) from exc
    return None if body["metadata"].get("deletionTimestamp") else body


class StatusWriter:
    """The status writer of one resource kind."""

    def __init__(self, *, kind: type[ResourceKind], client: KubeApi, events: EventPoster) -> None:
        """`kind`: the resource class whose objects' status this writes.
        `events`: posts the Warning Event of a change to stalled, expired or retrying."""
        self._kind = kind
        self._client = client
        self._events = events

    async def write(
        self, body: dict[str, Any], outcome: Outcome, fields: dict[str, Any], *, now: datetime
    ) -> str | None:
        """Make `body`'s status say `outcome`, with `fields` beside the conditions; no write when it says so already.

        `body` is the object as last read. Returns the object's resourceVersion after the write (`body`'s when
        nothing was written); None when it was deleted meanwhile, and is left alone, or when its spec changed
        meanwhile: the status patch lands on the newer object, whose version then holds a spec nobody acted on
        yet, so it must not pass for reconciled. Raises Retry on transient failures.
        """
        meta = body["metadata"]
        status = body.get("status") or {}
        previous_ready = next(
            (c for c in status.get("conditions") or [] if isinstance(c, dict) and c.get("type") == "Ready"), None
        )
        new = {
            **fields,
            "observedGeneration": meta.get("generation"),
            "conditions": conditions.conditions_for(
                outcome, generation=int(meta.get("generation") or 0), now=now, current=status.get("conditions")
            ),
        }
        if all(status.get(k) == v for k, v in new.items()):
            return str(meta.get("resourceVersion") or "") or None
        if outcome.kind != "ready" and (previous_ready or {}).get("reason") != outcome.reason:
            await self._events.post(body, type_="Warning", reason=outcome.reason, message=outcome.message)
        path = self._kind.path(namespace=meta.get("namespace"), name=meta["name"], subresource="status")
        try:
            written = await self._client.patch(path, {"status": new})
        except NotFound:
            return None
        except (ApiUnavailable, Conflict) as exc:
            raise Retry(str(exc)) from exc
        written_meta = written.get("metadata", {})
        if written_meta.get("generation") != meta.get("generation"):
            return None
        return str(written_meta.get("resourceVersion") or "") or None
