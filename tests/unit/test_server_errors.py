"""Every kind of error answer is a `google.rpc.Status` that Flipt's Go SDK can read: the gRPC code as an
integer, kubegate's reason in a typed detail, field violations for bad input."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import ClientResponse, ClientSession
from server_harness import Harness, bearer

from kubegate.verify import COOKIE_NAME
from support.flipt import status_of

Call = Callable[[ClientSession, str], Awaitable[ClientResponse]]
TOKEN_PATH = "/auth/v1/method/token"

CASES: list[tuple[str, Call, int, int, str]] = [
    ("no credential", lambda c, _: c.get("/auth/v1/self"), 401, 16, "UNAUTHENTICATED"),
    (
        "an unknown credential",
        lambda c, _: c.get("/auth/v1/self", headers=bearer("kg_unknown")),
        401,
        16,
        "UNAUTHENTICATED",
    ),
    ("a bad body", lambda c, admin: c.post(TOKEN_PATH, headers=bearer(admin), json={}), 400, 3, "INVALID_ARGUMENT"),
    (
        "a bad query parameter",
        lambda c, admin: c.get("/auth/v1/tokens?limit=-1", headers=bearer(admin)),
        400,
        3,
        "INVALID_ARGUMENT",
    ),
    ("an unknown path", lambda c, _: c.get("/auth/v1/nope"), 404, 5, "NOT_FOUND"),
    (
        "an unknown token id",
        lambda c, admin: c.get("/auth/v1/tokens/00000000-0000-4000-8000-000000000000", headers=bearer(admin)),
        404,
        5,
        "NOT_FOUND",
    ),
    (
        "a method that is off",
        lambda c, _: c.post("/auth/v1/method/kubernetes/serviceaccount", json={"serviceAccountToken": "x"}),
        404,
        5,
        "METHOD_DISABLED",
    ),
    ("a wrong HTTP method", lambda c, _: c.post("/auth/v1/self"), 405, 12, "METHOD_NOT_ALLOWED"),
    (
        "a body too large",
        lambda c, admin: c.post(TOKEN_PATH, headers=bearer(admin), json={"name": "x" * 70000}),
        413,
        8,
        "PAYLOAD_TOO_LARGE",
    ),
    (
        "a cookie request without a JSON content type",
        lambda c, admin: c.post(
            TOKEN_PATH,
            headers={"Cookie": f"{COOKIE_NAME}={admin}", "Content-Type": "text/plain"},
            data='{"name": "x"}',
        ),
        415,
        3,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    (
        "a malformed TokenReview",
        lambda c, _: c.post("/apis/authentication.k8s.io/v1/tokenreviews", json={"kind": "TokenReview"}),
        400,
        3,
        "INVALID_ARGUMENT",
    ),
]


@pytest.mark.parametrize(
    ("call", "status", "code", "reason"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
async def test_every_error_is_a_google_rpc_status(call: Call, status: int, code: int, reason: str) -> None:
    harness = Harness()
    admin = harness.admin()
    async with harness.client() as client:
        response = await call(client, admin)
        assert response.status == status
        answer = status_of(await response.json())
    assert (answer.code, answer.reason) == (code, reason)
    assert answer.message


async def test_field_violations_name_the_bad_fields() -> None:
    harness = Harness()
    admin = harness.admin()
    async with harness.client() as client:
        response = await client.post(TOKEN_PATH, headers=bearer(admin), json={"name": 42, "expiresAt": "soon"})
        assert response.status == 400
        answer = status_of(await response.json())
    assert sorted(answer.fields) == ["expiresAt", "name"]


async def test_a_failed_requirement_says_which_in_the_detail() -> None:
    harness = Harness()
    token, _ = harness.add_token("someone")
    async with harness.client() as client:
        response = await client.get("/auth/v1/tokens", headers=bearer(token))
        assert response.status == 403
        answer = status_of(await response.json())
    assert (answer.code, answer.reason) == (7, "PERMISSION_DENIED")
    assert answer.metadata == {"requirement": "group", "anyOf": ["kubegate:admin"]}


async def test_before_the_config_loads_the_answer_is_unavailable_with_retry_after() -> None:
    harness = Harness(ready=False)
    async with harness.client() as client:
        response = await client.get("/auth/v1/self", headers=bearer("kg_anything"))
        assert response.status == 503
        assert response.headers["Retry-After"]
        answer = status_of(await response.json())
    assert (answer.code, answer.reason) == (14, "UNAVAILABLE")
