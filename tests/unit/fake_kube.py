"""An in-memory stand-in for the Kubernetes API calls of `kubegate.kube.KubeApi`, with faults.

It keeps objects by path, gives them resourceVersions and checks them on replace, merges patches, and can
stop answering after a given number of writes (the process died) or lose the reply to one write (the write
happened, the caller sees an error). After every write it calls the `after_write` hooks, so a test can
assert an invariant at every moment another process could observe.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubegate.contracts.timestamps import format_time
from kubegate.kube import AlreadyExists, ApiUnavailable, Conflict, NotFound


class Crash(Exception):  # noqa: N818 - what happened to the process
    """The operator process died: this call and every later one never reach the API server."""


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386 merge patch."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.writes = 0
        self.write_budget: int | None = None
        """Writes allowed before the process dies; None: it never does."""
        self.lose_reply_to: int | None = None
        """The number of the write whose reply is lost (it happens; the caller gets ApiUnavailable)."""
        self.conflict_on: Callable[[str], bool] | None = None
        """Refuse (once) a replace of a path for which this returns True, as if someone wrote it first."""
        self.after_write: list[Callable[[], None]] = []
        self._versions = itertools.count(1)

    @property
    def dead(self) -> bool:
        return self.write_budget is not None and self.writes >= self.write_budget

    def restart(self) -> None:
        """A new operator process: the API server answers again, without faults."""
        self.write_budget = None
        self.lose_reply_to = None
        self.conflict_on = None

    def _before(self, write: bool) -> None:
        if self.dead:
            raise Crash
        if write:
            self.writes += 1

    def _after(self) -> None:
        for hook in self.after_write:
            hook()
        if self.lose_reply_to == self.writes:
            raise ApiUnavailable("the connection dropped before the reply")

    def _stamp(self, body: dict[str, Any]) -> dict[str, Any]:
        body["metadata"]["resourceVersion"] = str(next(self._versions))
        return copy.deepcopy(body)

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store an object as someone else would have written it (no fault, no hook); returns it as stored."""
        body = copy.deepcopy(body)
        body["metadata"].setdefault("uid", f"uid-{body['metadata']['name']}")
        self.objects[path] = body
        return self._stamp(body)

    # --- the calls of kubegate.kube.KubeApi ------------------------------------------------------------

    async def get(self, path: str, **_: str) -> dict[str, Any]:
        self._before(write=False)
        if path not in self.objects:
            raise NotFound(status=404, reason="NotFound", message=path)
        return copy.deepcopy(self.objects[path])

    async def list_all(
        self, path: str, *, label_selector: str | None = None, field_selector: str | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        self._before(write=False)
        label, _, value = (label_selector or "").partition("=")
        field, _, wanted = (field_selector or "").partition("=")
        assert field in ("", "metadata.name"), "the fake knows only metadata.name field selectors"
        items = [
            copy.deepcopy(o)
            for p, o in sorted(self.objects.items())
            if p.rsplit("/", 1)[0] == path
            and (not label or (o["metadata"].get("labels") or {}).get(label) == value)
            and (not field or o["metadata"]["name"] == wanted)
        ]
        return items, "1"

    async def create(self, path: str, body: dict[str, Any], **_: str) -> dict[str, Any]:
        self._before(write=True)
        body = copy.deepcopy(body)
        meta = body["metadata"]
        if "name" not in meta:
            meta["name"] = f"{meta.get('generateName', '')}{self.writes}"
        target = f"{path}/{meta['name']}"
        if target in self.objects:
            raise AlreadyExists(status=409, reason="AlreadyExists", message=target)
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("creationTimestamp", format_time(datetime.now(UTC)))
        self.objects[target] = body
        stored = self._stamp(body)
        self._after()
        return stored

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self._before(write=True)
        if path not in self.objects:
            raise NotFound(status=404, reason="NotFound", message=path)
        wanted = body["metadata"].get("resourceVersion")
        if self.conflict_on is not None and self.conflict_on(path):
            self.conflict_on = None
            self._stamp(self.objects[path])
        if wanted is not None and wanted != self.objects[path]["metadata"]["resourceVersion"]:
            raise Conflict(status=409, reason="Conflict", message=f"{path} was modified")
        body = copy.deepcopy(body)
        body["metadata"].setdefault("uid", self.objects[path]["metadata"].get("uid"))
        self.objects[path] = body
        stored = self._stamp(body)
        self._after()
        return stored

    async def patch(self, path: str, body: Any, *, patch_type: str = "merge", **_: str) -> dict[str, Any]:
        assert patch_type == "merge"
        self._before(write=True)
        target = path.removesuffix("/status")
        if target not in self.objects:
            raise NotFound(status=404, reason="NotFound", message=path)
        obj = self.objects[target]
        _merge(obj, {"status": body["status"]} if path.endswith("/status") else body)
        stored = self._stamp(obj)
        self._after()
        return stored

    async def delete(self, path: str, *, propagation: str | None = None) -> dict[str, Any]:
        self._before(write=True)
        if path not in self.objects:
            raise NotFound(status=404, reason="NotFound", message=path)
        gone = self.objects.pop(path)
        self._after()
        return gone
