"""A client that hangs up mid-body is no server error: counted and access-logged as 499, logged at DEBUG
at most, without a traceback."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from server_harness import Harness, bearer
from test_server_health import sample

from kubegate.methods.kubernetes.exchange import Exchange
from kubegate.methods.kubernetes.review import ReviewedAccount

ROUTES = [
    "/apis/authentication.k8s.io/v1/tokenreviews",
    "/auth/v1/method/kubernetes/serviceaccount",
    "/auth/v1/method/token",
]


async def _never_reviewed(token: str) -> ReviewedAccount:
    raise AssertionError("the body never arrived: nothing may be reviewed")


async def _no_labels(namespace: str) -> dict[str, str]:
    raise AssertionError("the body never arrived: nothing may be looked up")


def _with_exchange(harness: Harness) -> Harness:
    harness.exchange = Exchange(
        review=_never_reviewed,
        namespace_labels=_no_labels,
        bindings=(),
        keys=lambda: None,
        issuer="http://127.0.0.1",
        audience="kubegate",
        max_lifetime=3600,
    )
    return harness


@pytest.mark.parametrize("route", ROUTES)
async def test_a_client_that_hangs_up_mid_body_is_a_499_not_a_500(route: str, caplog: pytest.LogCaptureFixture) -> None:
    harness = _with_exchange(Harness())
    admin = harness.admin()
    async with harness.serve() as server:
        caplog.set_level(logging.DEBUG)
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        head = (
            f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {admin}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        writer.write(head.encode() + b'{"spec": {"token": "' + b"x" * 480)
        await writer.drain()
        await asyncio.sleep(0.05)  # the handler is now waiting for the rest of the body
        writer.close()
        await writer.wait_closed()

        async def counted() -> str:
            async with aiohttp.ClientSession(server.url) as client:
                while True:
                    text = await (await client.get("/metrics")).text()
                    if f'route="{route}"' in text:
                        return text
                    await asyncio.sleep(0.02)

        metrics = await asyncio.wait_for(counted(), timeout=5)
        lines = server.access_log()
    assert sample(metrics, "kubegate_http_requests_total", route=route, method="POST", code="499") == 1
    assert 'code="500"' not in metrics
    assert any(f"POST {route} 499 " in line for line in lines), lines
    assert not any(f"POST {route} 500 " in line for line in lines), lines
    loud = [r for r in caplog.records if r.levelno > logging.DEBUG and r.name != "kubegate.access"]
    assert loud == [], [r.getMessage() for r in loud]
    assert not any(r.exc_info for r in caplog.records)
    assert "Traceback" not in caplog.text
    assert admin not in caplog.text


async def test_a_connection_reset_while_the_client_is_still_there_is_a_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness = Harness()
    admin = harness.admin()
    harness.store.create_error = ConnectionResetError("reset by the Kubernetes API")
    async with harness.client() as client:
        response = await client.post("/auth/v1/method/token", headers=bearer(admin), json={"name": "ci"})
        assert response.status == 500
    assert "reset by the Kubernetes API" in caplog.text
    assert "Traceback" in caplog.text
