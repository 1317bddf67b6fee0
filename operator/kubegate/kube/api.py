"""What the operator core and the token store ask of the Kubernetes API: a small protocol, so that unit tests
can hand them an in-memory fake. `KubeClient` satisfies it."""

from __future__ import annotations

from typing import Any, Protocol


class KubeApi(Protocol):
    async def get(self, path: str) -> dict[str, Any]:
        """The object at `path`; raises NotFound, ApiUnavailable."""
        ...

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create `body` in the collection `path`; raises AlreadyExists, ApiError, ApiUnavailable."""
        ...

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace the object at `path`, conditioned on `body`'s resourceVersion when set; raises Conflict."""
        ...

    async def patch(self, path: str, body: Any) -> dict[str, Any]:
        """Apply a JSON merge patch (RFC 7386) to the object at `path`; raises NotFound."""
        ...

    async def delete(self, path: str) -> dict[str, Any]:
        """Delete the object at `path`; raises NotFound."""
        ...

    async def list_all(self, path: str, *, label_selector: str | None = None) -> tuple[list[dict[str, Any]], str]:
        """Every object of the collection `path`, and the list's resourceVersion."""
        ...
