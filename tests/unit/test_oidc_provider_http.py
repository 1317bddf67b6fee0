"""The HTTP client for OIDC providers, against a real aiohttp server on loopback (plain and TLS)."""

from __future__ import annotations

import asyncio
import base64
import ssl
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from kubegate.devcluster.certs import generate_ca, issue_serving_certificate
from kubegate.verify.oidc.provider_http import ProviderError, ProviderHttp, ProviderUnreachable

seen: list[web.Request] = []
arrived: dict[str, float] = {}


async def handler(request: web.Request) -> web.StreamResponse:  # noqa: PLR0911 - one answer per kind
    seen.append(request)
    arrived[request.path] = asyncio.get_running_loop().time()
    kind = request.match_info["kind"]
    if kind == "ok":
        return web.json_response({"issuer": "x", "auth": request.headers.get("Authorization")})
    if kind == "form":
        return web.json_response({"form": dict(await request.post()), "auth": request.headers.get("Authorization")})
    if kind == "redirect":
        raise web.HTTPFound("/ok")
    if kind == "slow":
        await asyncio.sleep(2)
        return web.json_response({})
    if kind == "html":
        return web.Response(text="<html></html>")
    if kind == "list":
        return web.json_response([1, 2])
    if kind == "huge":
        return web.Response(body=b"[" + b"1," * 2000 + b"1]", content_type="application/json")
    return web.Response(status=int(kind))


async def serve(ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{kind}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"


@pytest.fixture
async def plain() -> AsyncIterator[tuple[ProviderHttp, str]]:
    seen.clear()
    arrived.clear()
    runner, base = await serve()
    http = ProviderHttp(timeout=0.5, max_body_bytes=1024)
    yield http, base
    await http.close()
    await runner.cleanup()


async def test_json_object_and_bearer(plain: tuple[ProviderHttp, str]) -> None:
    http, base = plain
    assert await http.get_json(f"{base}/ok", ca_bundle=None, bearer="tok") == {"issuer": "x", "auth": "Bearer tok"}


async def test_form_with_client_authentication(plain: tuple[ProviderHttp, str]) -> None:
    http, base = plain
    answer = await http.post_form(f"{base}/form", {"token": "t"}, ca_bundle=None, basic_auth=("my client", "s:e&c"))
    assert answer["form"] == {"token": "t"}
    # RFC 6749 2.3.1: id and secret are form-encoded before HTTP Basic.
    assert answer["auth"] == "Basic " + base64.b64encode(b"my+client:s%3Ae%26c").decode()


async def test_redirects_are_not_followed(plain: tuple[ProviderHttp, str]) -> None:
    http, base = plain
    with pytest.raises(ProviderError) as refused:
        await http.get_json(f"{base}/redirect", ca_bundle=None)
    assert refused.value.status == 302
    assert [r.path for r in seen] == ["/redirect"]


@pytest.mark.parametrize("kind", ["400", "401", "403", "404", "html", "list", "huge"])
async def test_useless_answers_are_provider_errors(plain: tuple[ProviderHttp, str], kind: str) -> None:
    http, base = plain
    with pytest.raises(ProviderError):
        await http.get_json(f"{base}/{kind}", ca_bundle=None)


@pytest.mark.parametrize("kind", ["500", "502", "503", "slow"])
async def test_server_errors_and_timeouts_mean_unreachable(plain: tuple[ProviderHttp, str], kind: str) -> None:
    http, base = plain
    with pytest.raises(ProviderUnreachable):
        await http.get_json(f"{base}/{kind}?token=secret", ca_bundle=None)


async def test_a_closed_port_is_unreachable_and_the_message_has_no_query() -> None:
    http = ProviderHttp(timeout=1)
    try:
        with pytest.raises(ProviderUnreachable) as refused:
            await http.get_json("http://127.0.0.1:9/x?token=secret", ca_bundle=None)
        assert "secret" not in str(refused.value)
    finally:
        await http.close()


async def test_the_concurrency_bound_waits_within_the_deadline(plain: tuple[ProviderHttp, str]) -> None:
    _, base = plain
    http = ProviderHttp(timeout=0.5, max_concurrent=1)
    try:
        started = asyncio.get_running_loop().time()
        slow = asyncio.create_task(http.get_json(f"{base}/slow", ca_bundle=None))
        await asyncio.sleep(0.1)
        second = asyncio.create_task(http.get_json(f"{base}/ok", ca_bundle=None))
        with pytest.raises(ProviderUnreachable):
            await slow
        # The second call waited for the one slot until the first gave up, within its own deadline.
        await asyncio.gather(second, return_exceptions=True)
        assert seen[0].path == "/slow"
        if "/ok" in arrived:
            assert arrived["/ok"] - started >= 0.45
    finally:
        await http.close()


async def test_tls_trusts_the_providers_bundle_only() -> None:
    ca = generate_ca(common_name="test idp ca")
    leaf = issue_serving_certificate(ca, common_name="idp", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    runner, base = await serve(_server_context(leaf.cert_pem, leaf.key_pem))
    http = ProviderHttp(timeout=2)
    try:
        assert (await http.get_json(f"{base}/ok", ca_bundle=ca.cert_pem.decode()))["issuer"] == "x"
        with pytest.raises(ProviderUnreachable):
            await http.get_json(f"{base}/ok", ca_bundle=None)
        other = generate_ca(common_name="another ca")
        with pytest.raises(ProviderUnreachable):
            await http.get_json(f"{base}/ok", ca_bundle=other.cert_pem.decode())
    finally:
        await http.close()
        await runner.cleanup()


def _server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
        cert.write_bytes(cert_pem)
        key.write_bytes(key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
    return context
