"""The API client keeps working when its credentials rotate: a 401 makes it load them again, once.

A fake API server on loopback accepts only the token it was last given, as the API server accepts only a
service account's current token; the tests rotate the token file under a running client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kubegate.kube import ApiError, ApiUnavailable, Connection, KubeClient, NoKubeConfig, load_connection
from kubegate.kube.credentials import TokenFile

SECRETS = "/api/v1/namespaces/apps/secrets"
UNAUTHORIZED = {"kind": "Status", "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


def new_token() -> str:
    return secrets.token_urlsafe(32)  # always 43 characters: a rewrite does not change the file's size


class FakeApi:
    """Answers the secrets collection (list and watch) to the current token only."""

    def __init__(self) -> None:
        self.token = new_token()
        self.statuses: list[int] = []
        self.delay = 0.0
        """Seconds each answer waits, so that concurrent requests are all in flight at once."""

    async def secrets(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(self.delay)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.statuses.append(401)
            return web.json_response(UNAUTHORIZED, status=401)
        self.statuses.append(200)
        if request.query.get("watch") != "true":
            return web.json_response({"kind": "SecretList", "metadata": {"resourceVersion": "7"}, "items": []})
        response = web.StreamResponse()
        await response.prepare(request)
        event = {"type": "ADDED", "object": {"metadata": {"name": "s", "resourceVersion": "8"}}}
        await response.write(json.dumps(event).encode() + b"\n")
        return response


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeApi, str]]:
    fake = FakeApi()
    app = web.Application()
    app.router.add_get(SECRETS, fake.secrets)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield fake, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture(autouse=True)
def all_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


def kubeconfig_with_token_file(tmp_path: Path, host: str, token: str) -> tuple[Path, Path]:
    """A kubeconfig whose user reads its token from a file (as `kubectl` does), and that file."""
    token_file = tmp_path / "token"
    token_file.write_text(token)
    kubeconfig = tmp_path / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": host}}],
        "users": [{"name": "sa", "user": {"tokenFile": str(token_file)}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "sa", "namespace": "apps"}}],
        "current-context": "fake",
    }
    kubeconfig.write_text(json.dumps(config))
    return kubeconfig, token_file


def rotate(api: FakeApi, token_file: Path, *, keep_stamp: bool = False) -> str:
    """The API server accepts only a new token, which is written to the file; returns the old token."""
    old, api.token = api.token, new_token()
    stat = token_file.stat()
    token_file.write_text(api.token)
    if keep_stamp:
        # As on a file system whose modification times are too coarse to tell the two writes apart.
        os.utime(token_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return old


def assert_never_shown(caplog: pytest.LogCaptureFixture, *tokens: str, error: BaseException | None = None) -> None:
    for token in tokens:
        assert token not in caplog.text
        if error is not None:
            assert token not in str(error)
            assert token not in repr(error)


async def test_a_rotated_kubeconfig_token_file_is_loaded_again_after_a_401(
    api: tuple[FakeApi, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake, host = api
    kubeconfig, token_file = kubeconfig_with_token_file(tmp_path, host, fake.token)
    async with KubeClient(load_connection(kubeconfig=str(kubeconfig))) as client:
        await client.list_all(SECRETS)
        first = rotate(fake, token_file)

        items, version = await client.list_all(SECRETS)
        await client.get(SECRETS)

    assert (items, version) == ([], "7")
    assert fake.statuses == [200, 401, 200, 200], "one refusal, then the reloaded token for every call"
    assert "loading them again from" in caplog.text
    assert_never_shown(caplog, first, fake.token)


async def test_a_token_still_refused_after_the_reload_is_the_callers_401(
    api: tuple[FakeApi, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake, host = api
    kubeconfig, _token_file = kubeconfig_with_token_file(tmp_path, host, fake.token)
    in_file = fake.token
    fake.token = new_token()  # the service account was recreated; its file still holds the old token
    async with KubeClient(load_connection(kubeconfig=str(kubeconfig))) as client:
        with pytest.raises(ApiError) as refused:
            await client.get(SECRETS)

    assert refused.value.status == 401
    assert fake.statuses == [401, 401], "sent again once, with what the reload found"
    assert_never_shown(caplog, in_file, fake.token, error=refused.value)


async def test_an_unreadable_token_file_is_logged_without_the_token_and_the_401_raised(
    api: tuple[FakeApi, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake, host = api
    kubeconfig, token_file = kubeconfig_with_token_file(tmp_path, host, fake.token)
    async with KubeClient(load_connection(kubeconfig=str(kubeconfig))) as client:
        first = fake.token
        fake.token = new_token()
        token_file.unlink()
        with pytest.raises(ApiError) as refused:
            await client.get(SECRETS)

    assert refused.value.status == 401
    assert "Could not load the Kubernetes credentials from" in caplog.text
    assert_never_shown(caplog, first, fake.token, error=refused.value)


async def test_concurrent_401s_load_the_credentials_again_once(
    api: tuple[FakeApi, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake, host = api
    kubeconfig, token_file = kubeconfig_with_token_file(tmp_path, host, fake.token)
    connection = load_connection(kubeconfig=str(kubeconfig))
    reloads = 0
    reload = connection.credentials.reload

    async def counted() -> None:
        nonlocal reloads
        reloads += 1
        await reload()

    connection.credentials.reload = counted  # type: ignore[method-assign]
    async with KubeClient(connection) as client:
        first = rotate(fake, token_file)
        fake.delay = 0.2
        await asyncio.gather(*(client.get(SECRETS) for _ in range(8)))

    assert reloads == 1
    assert fake.statuses.count(401) == 8
    assert fake.statuses.count(200) == 8
    assert_never_shown(caplog, first, fake.token)


async def test_a_watch_refused_with_401_opens_with_the_reloaded_token(
    api: tuple[FakeApi, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake, host = api
    kubeconfig, token_file = kubeconfig_with_token_file(tmp_path, host, fake.token)
    async with KubeClient(load_connection(kubeconfig=str(kubeconfig))) as client:
        first = rotate(fake, token_file)
        events = [event async for event in client.watch(SECRETS, resource_version="7")]

    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [("ADDED", "s")]
    assert fake.statuses == [401, 200]
    assert_never_shown(caplog, first, fake.token)


def token_file_connection(host: str, token_file: Path, *, max_age: float = 60.0) -> Connection:
    """What `load_connection` builds in a pod, with the token file somewhere a test can write."""
    return Connection(
        host=host, ssl_context=False, credentials=TokenFile(token_file, max_age=max_age), namespace="apps"
    )


async def test_a_service_account_token_file_is_read_again_when_it_changes(
    api: tuple[FakeApi, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake, host = api
    token_file = tmp_path / "token"
    token_file.write_text(fake.token)
    async with KubeClient(token_file_connection(host, token_file)) as client:
        await client.get(SECRETS)
        first = rotate(fake, token_file)
        await client.get(SECRETS)

    assert fake.statuses == [200, 200], "the new token was sent before the API server could refuse the old one"
    assert_never_shown(caplog, first, fake.token)


async def test_a_service_account_token_file_is_read_again_after_a_minute_even_if_it_looks_unchanged(
    api: tuple[FakeApi, str], tmp_path: Path
) -> None:
    fake, host = api
    token_file = tmp_path / "token"
    token_file.write_text(fake.token)
    async with KubeClient(token_file_connection(host, token_file, max_age=0.1)) as client:
        await client.get(SECRETS)
        rotate(fake, token_file, keep_stamp=True)
        await asyncio.sleep(0.15)
        await client.get(SECRETS)

    assert fake.statuses == [200, 200]


async def test_a_service_account_token_file_that_looks_unchanged_is_read_again_after_a_401(
    api: tuple[FakeApi, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake, host = api
    token_file = tmp_path / "token"
    token_file.write_text(fake.token)
    async with KubeClient(token_file_connection(host, token_file)) as client:
        await client.get(SECRETS)
        first = rotate(fake, token_file, keep_stamp=True)
        await client.get(SECRETS)
        await client.get(SECRETS)

    assert fake.statuses == [200, 401, 200, 200]
    assert_never_shown(caplog, first, fake.token)


def test_the_token_is_not_in_the_credentials_description(tmp_path: Path) -> None:
    token = new_token()
    token_file = tmp_path / "token"
    token_file.write_text(token)
    credentials = TokenFile(token_file)

    assert credentials.authorization() == f"Bearer {token}"
    assert token not in credentials.source
    assert token not in repr(credentials)


async def test_a_client_that_may_not_write_sends_no_write_and_still_reads(
    api: tuple[FakeApi, str], tmp_path: Path
) -> None:
    """A leader past its renew deadline keeps reading but must not change anything until it renews."""
    fake, host = api
    token_file = tmp_path / "token"
    token_file.write_text(fake.token)
    allowed = [False]
    connection = Connection(host=host, ssl_context=False, credentials=TokenFile(token_file), namespace="default")
    async with KubeClient(connection, may_write=lambda: allowed[0]) as client:
        with pytest.raises(ApiUnavailable, match="may not write"):
            await client.create(SECRETS, {"metadata": {"name": "s"}})
        assert fake.statuses == []  # not sent at all
        await client.list_all(SECRETS)
        assert fake.statuses == [200]
        allowed[0] = True
        with pytest.raises(ApiError):  # sent now: the fake API has no POST route
            await client.create(SECRETS, {"metadata": {"name": "s"}})


def test_no_kubeconfig_is_a_clear_error_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    missing = tmp_path / "nowhere" / "kubeconfig"
    with pytest.raises(NoKubeConfig, match=f"no usable kubeconfig at {missing} .*; set KUBECONFIG"):
        load_connection(kubeconfig=str(missing))
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(NoKubeConfig, match="set KUBECONFIG"):
        load_connection(kubeconfig=str(empty))
