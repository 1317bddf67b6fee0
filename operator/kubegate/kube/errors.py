"""Errors of the Kubernetes API, told apart by what a caller does about them."""

from __future__ import annotations

from typing import Any


class ApiUnavailable(Exception):  # noqa: N818 - names the condition, as the HTTP status does
    """The API server could not be reached or answered 5xx/429: retry later, keep the last good state."""


class ApiError(Exception):
    """The API server answered with an error status (a `Status` object)."""

    def __init__(self, *, status: int, reason: str, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body or {}


class NotFound(ApiError):  # noqa: N818
    pass


class AlreadyExists(ApiError):  # noqa: N818
    pass


class Conflict(ApiError):  # noqa: N818
    pass


class Gone(ApiError):  # noqa: N818
    """A watch's resourceVersion is too old: list again."""


def error_for(status: int, body: dict[str, Any]) -> ApiError:
    reason = str(body.get("reason") or "")
    message = str(body.get("message") or body)
    kind: type[ApiError] = ApiError
    if status == 404:
        kind = NotFound
    elif status == 409:
        kind = AlreadyExists if reason == "AlreadyExists" else Conflict
    elif status == 410:
        kind = Gone
    return kind(status=status, reason=reason, message=message, body=body)
