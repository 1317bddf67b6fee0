"""The version a status write returns stands for "reconciled" only when the spec did not change meanwhile:
the patch lands on the newest object, and a version holding a spec nobody acted on must not let the
operator skip that spec's event (found when an API-created token was expired at once)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubegate.operator import conditions
from kubegate.operator.status import StatusWriter
from kubegate.resources.statictoken import StaticToken


class Events:
    async def post(self, body: dict[str, Any], **_: Any) -> None:
        return None


class Api:
    def __init__(self, generation_after: int) -> None:
        self.generation_after = generation_after
        self.patches: list[tuple[str, dict[str, Any]]] = []

    async def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.patches.append((path, body))
        return {"metadata": {"generation": self.generation_after, "resourceVersion": "103"}, **body}


BODY = {"metadata": {"namespace": "team", "name": "ci", "generation": 1, "resourceVersion": "100"}, "spec": {}}


async def _write(api: Api) -> str | None:
    writer = StatusWriter(kind=StaticToken, client=api, events=Events())  # type: ignore[arg-type]
    return await writer.write(BODY, conditions.ready("ok"), {"tokenId": "x"}, now=datetime.now(UTC))


async def test_the_written_version_counts_when_the_spec_is_the_one_reconciled() -> None:
    api = Api(generation_after=1)
    assert await _write(api) == "103"
    assert api.patches[0][1]["status"]["observedGeneration"] == 1


async def test_no_version_when_the_spec_changed_between_the_read_and_the_write() -> None:
    api = Api(generation_after=2)
    assert await _write(api) is None
    assert len(api.patches) == 1
