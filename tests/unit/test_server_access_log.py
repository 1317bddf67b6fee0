"""The access log never holds a credential: not from a header, a cookie or a query string."""

from __future__ import annotations

import asyncio
import io
import logging

import aiohttp
import pytest
from server_harness import Harness, bearer

from kubegate.web.httpserver.access_log import LOGGER_NAME, AccessLog


async def test_lines_name_the_route_and_token_id_but_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    harness = Harness()
    token, entry = harness.add_token("ci")
    async with harness.serve() as server, aiohttp.ClientSession(server.url) as client:
        await client.get(f"/auth/v1/tokens/{entry.token_id}?access_token={token}", headers=bearer(token))
        await client.get("/auth/v1/self", headers={"Cookie": f"kubegate_client_token={token}"})
        await client.get(f"/auth/v1/verify/{token}", headers=bearer("kg_wrong-" + token[::-1]))
        await client.post("/apis/authentication.k8s.io/v1/tokenreviews", json={"spec": {"token": token}})
    lines = server.access_log()
    text = "\n".join(lines)
    assert len(lines) == 4
    assert token not in text
    assert token[::-1] not in text
    assert "GET /auth/v1/tokens/{id} 200 duration_ms=" in lines[0]
    assert f'token_id="{entry.token_id}"' in lines[0]
    assert "INFO kubegate.access: GET /auth/v1/self 200" in lines[1]
    assert "GET /auth/v1/verify/{tail} 401" in lines[2]
    assert 'token_id=""' in lines[2]
    assert "POST /apis/authentication.k8s.io/v1/tokenreviews 400" in lines[3]


async def test_disabled_below_info() -> None:
    logger = logging.getLogger(LOGGER_NAME)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        assert not AccessLog.enabled()
    finally:
        logger.setLevel(level)
    assert AccessLog.enabled() == logger.isEnabledFor(logging.INFO)


async def test_the_sink_flushes_on_its_own() -> None:
    stream = io.StringIO()
    sink = AccessLog(stream)
    sink.add("one\n")
    task = asyncio.create_task(sink.run())
    for _ in range(50):
        if stream.getvalue():
            break
        await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert stream.getvalue() == "one\n"
