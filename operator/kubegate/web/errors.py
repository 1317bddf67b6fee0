"""Error answers, in one shape: a `google.rpc.Status` in protobuf's JSON mapping, as Flipt's gateway writes
it: `{"code": <gRPC code>, "message": ..., "details": [...]}`.

Handlers raise `ApiProblem`; the HTTP server (`httpserver/app.py`) turns it into the response.
Every message says what was wrong and what to do.

Flipt's Go SDK reads an error body strictly (protojson into `google.rpc.Status`): an integer code, no key
beyond these three, and every entry of `details` a typed `Any` whose `@type` the client program has linked
in; anything else and the caller gets a parse error instead of the status. A program built on Flipt's SDK
(v1.61.1) links `google.protobuf.Struct` but not `google.rpc.ErrorInfo` or `google.rpc.BadRequest`
(measured: those fail with "unable to resolve"). So kubegate's one detail is a Struct, keyed like those
two messages: `reason` (kubegate's own, finer than the code), `domain`, `metadata`, and `fieldViolations`
(`field`, `description`) when the request had bad fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import Any, NamedTuple

from kubegate.kube import ApiError, ApiUnavailable
from kubegate.verify.errors import UNAUTHENTICATED_MESSAGE
from kubegate.web.responses import JSON, Response

RETRY_AFTER_SECONDS = 5
DOMAIN = "kubegate.dev"
DETAIL_TYPE = "type.googleapis.com/google.protobuf.Struct"


class Code(IntEnum):
    """The gRPC status codes kubegate answers with (google.rpc.Code)."""

    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16


class FieldViolation(NamedTuple):
    field: str
    """The field as the client named it (camelCase, dotted for nested ones); empty: the whole body."""
    description: str


Metadata = Mapping[str, str | Sequence[str]]


class ApiProblem(Exception):  # noqa: N818 - it is the answer, not a failure of the server
    def __init__(
        self,
        status: int,
        code: Code,
        message: str,
        *,
        reason: str | None = None,
        metadata: Metadata | None = None,
        field_violations: Sequence[FieldViolation] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """`reason` is kubegate's, in the detail (default: the code's name); `metadata` says more about it."""
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason or code.name
        self.metadata = {k: v if isinstance(v, str) else list(v) for k, v in (metadata or {}).items()}
        self.field_violations = list(field_violations)
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"reason": self.reason, "domain": DOMAIN, "metadata": self.metadata}
        if self.field_violations:
            detail["fieldViolations"] = [v._asdict() for v in self.field_violations]
        return {"code": int(self.code), "message": self.message, "details": [{"@type": DETAIL_TYPE, "value": detail}]}

    def response(self) -> Response:
        return Response(
            status=self.status,
            body=json.dumps(self.body(), ensure_ascii=False).encode("utf-8"),
            content_type=JSON,
            headers=self.headers,
        )


def unauthenticated(message: str = UNAUTHENTICATED_MESSAGE) -> ApiProblem:
    return ApiProblem(401, Code.UNAUTHENTICATED, message, headers={"WWW-Authenticate": "Bearer"})


def forbidden(message: str, *, requirement: Metadata | None = None) -> ApiProblem:
    return ApiProblem(403, Code.PERMISSION_DENIED, message, metadata=requirement)


def invalid(message: str, field_violations: Sequence[FieldViolation] = ()) -> ApiProblem:
    return ApiProblem(400, Code.INVALID_ARGUMENT, message, field_violations=field_violations)


def field_error(field: str, message: str) -> ApiProblem:
    return invalid(f"{field}: {message}", [FieldViolation(field, message)])


def unsupported_media_type(message: str) -> ApiProblem:
    return ApiProblem(415, Code.INVALID_ARGUMENT, message, reason="UNSUPPORTED_MEDIA_TYPE")


def not_found(message: str, *, reason: str | None = None) -> ApiProblem:
    return ApiProblem(404, Code.NOT_FOUND, message, reason=reason)


def unavailable(message: str, *, retry_after: int = RETRY_AFTER_SECONDS) -> ApiProblem:
    return ApiProblem(503, Code.UNAVAILABLE, message, headers={"Retry-After": str(retry_after)})


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
        # INTERNAL, not PERMISSION_DENIED: the server lacks the permission, not the caller; retrying won't help.
        return ApiProblem(
            502,
            Code.INTERNAL,
            f"could not {action}: the kubegate server's service account lacks Kubernetes RBAC permission "
            f"({exc.message}); an administrator must grant it",
            reason="BAD_GATEWAY",
        )
    return ApiProblem(
        502,
        Code.UNKNOWN,
        f"could not {action}: the Kubernetes API answered {exc.status}: {exc.message}",
        reason="BAD_GATEWAY",
    )


_HTTP_ERRORS = {
    400: (Code.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    404: (Code.NOT_FOUND, "NOT_FOUND"),
    # grpc-gateway answers a wrong method with UNIMPLEMENTED too.
    405: (Code.UNIMPLEMENTED, "METHOD_NOT_ALLOWED"),
    # What gRPC answers for a message over its size limit.
    413: (Code.RESOURCE_EXHAUSTED, "PAYLOAD_TOO_LARGE"),
    415: (Code.INVALID_ARGUMENT, "UNSUPPORTED_MEDIA_TYPE"),
    408: (Code.DEADLINE_EXCEEDED, "REQUEST_TIMEOUT"),
    414: (Code.RESOURCE_EXHAUSTED, "URI_TOO_LONG"),
    431: (Code.RESOURCE_EXHAUSTED, "REQUEST_HEADER_FIELDS_TOO_LARGE"),
}


def http_error(status: int, reason_phrase: str, *, allow: str | None = None) -> ApiProblem:
    """An HTTP-level refusal (no route, wrong method, body too large) in our JSON shape; `allow` is the
    `Allow` header of a 405."""
    code, reason = _HTTP_ERRORS.get(status, (Code.UNKNOWN, "UNKNOWN"))
    message = {
        404: "no such path: see /auth/v1/method for the API",
        405: "this path does not accept this HTTP method",
        413: "the request body is too large",
        408: "the request was not sent in time",
        414: "the request's path and query are too long",
        431: "the request's headers are too large or too many",
        400: "the request is not valid HTTP/1.1",
    }.get(status, reason_phrase)
    return ApiProblem(status, code, message, reason=reason, headers={"Allow": allow} if allow is not None else None)


def internal() -> ApiProblem:
    return ApiProblem(500, Code.INTERNAL, "kubegate failed to handle the request; the error is in its log")
