"""Error answers, in one JSON shape: `{"code": ..., "message": ..., "details": [...]}`.

Handlers raise `ApiProblem`; the wrapper every route gets (`routing.py`) turns it into the response.
Every message says what was wrong and what to do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from kubegate.kube import ApiError, ApiUnavailable
from kubegate.verify.errors import UNAUTHENTICATED_MESSAGE

RETRY_AFTER_SECONDS = 5


class ApiProblem(Exception):  # noqa: N818 - it is the answer, not a failure of the server
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        body = {"code": self.code, "message": self.message, "details": self.details}
        return web.Response(
            status=self.status,
            body=json.dumps(body, ensure_ascii=False).encode("utf-8"),
            content_type="application/json",
            headers=self.headers,
        )


def unauthenticated() -> ApiProblem:
    return ApiProblem(401, "unauthenticated", UNAUTHENTICATED_MESSAGE, headers={"WWW-Authenticate": "Bearer"})


def forbidden(message: str, *, requirement: Mapping[str, Any] | None = None) -> ApiProblem:
    return ApiProblem(403, "permission_denied", message, details=[requirement] if requirement else ())


def invalid(message: str, details: Sequence[Mapping[str, Any]] = ()) -> ApiProblem:
    return ApiProblem(400, "invalid_argument", message, details=details)


def field_error(field: str, message: str) -> ApiProblem:
    return invalid(f"{field}: {message}", [{"field": field, "message": message}])


def not_found(message: str) -> ApiProblem:
    return ApiProblem(404, "not_found", message)


def unavailable(message: str, *, retry_after: int = RETRY_AFTER_SECONDS) -> ApiProblem:
    return ApiProblem(503, "unavailable", message, headers={"Retry-After": str(retry_after)})


def not_ready() -> ApiProblem:
    return unavailable(
        "kubegate is starting: it has not loaded the validation config from the Kubernetes API yet; retry shortly"
    )


def from_kube(exc: ApiError | ApiUnavailable, action: str) -> ApiProblem:
    """An answer for a failed Kubernetes API call made while doing `action` (for example "create the token")."""
    if isinstance(exc, ApiUnavailable):
        return unavailable(f"could not {action}: the Kubernetes API is unreachable or overloaded; retry later")
    if exc.status == 422:
        return invalid(f"could not {action}: Kubernetes refused it: {exc.message}")
    if exc.status == 403:
        return ApiProblem(
            502,
            "bad_gateway",
            f"could not {action}: the kubegate server's service account lacks Kubernetes RBAC permission "
            f"({exc.message}); an administrator must grant it",
        )
    return ApiProblem(
        502, "bad_gateway", f"could not {action}: the Kubernetes API answered {exc.status}: {exc.message}"
    )


_HTTP_CODES = {
    400: "invalid_argument",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def from_http_exception(exc: web.HTTPException) -> ApiProblem:
    """aiohttp's own errors (no route, wrong method, body too large) in our JSON shape."""
    status = exc.status
    code = _HTTP_CODES.get(status, "error")
    message = {
        404: "no such path: see /auth/v1/method for the API",
        405: "this path does not accept this HTTP method",
        413: "the request body is too large",
    }.get(status, exc.reason)
    headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
    return ApiProblem(status, code, message, headers=headers)


def internal() -> ApiProblem:
    return ApiProblem(500, "internal", "kubegate failed to handle the request; the error is in its log")
