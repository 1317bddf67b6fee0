"""Every route answers in the JSON error shape and is counted by its template, whatever goes wrong."""

from __future__ import annotations

import pytest
from server_harness import Harness, bearer
from test_server_health import sample

from support.flipt import status_of


async def test_a_bug_in_a_handler_is_a_generic_500_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    harness = Harness()
    admin = harness.admin()
    _, victim = harness.add_token("victim")
    harness.store.delete_error = RuntimeError("detail-of-the-bug")
    async with harness.client() as client:
        response = await client.delete(f"/auth/v1/tokens/{victim.token_id}", headers=bearer(admin))
        assert response.status == 500
        assert status_of(await response.json()).code == 13
        assert "detail-of-the-bug" not in await response.text()
        # The server keeps serving.
        assert (await client.get("/auth/v1/self", headers=bearer(admin))).status == 200
        text = await (await client.get("/metrics")).text()
    assert "detail-of-the-bug" in caplog.text
    assert "Traceback" in caplog.text
    assert sample(text, "kubegate_http_requests_total", route="/auth/v1/tokens/{id}", method="DELETE", code="500") == 1


async def test_a_wrong_method_on_a_parameterized_path_is_405_with_allow() -> None:
    async with Harness().client() as client:
        response = await client.post("/auth/v1/tokens/some-id")
        assert response.status == 405
        assert status_of(await response.json()).code == 12
        assert set(response.headers["Allow"].split(",")) >= {"GET", "DELETE"}
