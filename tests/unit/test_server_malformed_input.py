"""Malformed input never gets a 5xx and never stops the server: tokens and bodies from hypothesis, sent as
raw bytes so that even what an HTTP client would refuse to send (CR/LF, non-ASCII) reaches the server."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_harness import Harness

PATHS = ["/auth/v1/self", "/auth/v1/verify", "/auth/v1/tokens", "/auth/v1/verify/x?group=a"]
BODY_PATHS = [
    ("POST", "/auth/v1/method/token"),
    ("POST", "/apis/authentication.k8s.io/v1/tokenreviews"),
    ("PUT", "/auth/v1/self/expire"),
]


class LiveServer:
    def __init__(self) -> None:
        self.harness = Harness()
        self.admin = self.harness.admin()
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        serving = self.harness.serve()
        served = self.loop.run_until_complete(serving.__aenter__())
        self.port = served.port
        self._started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(serving.__aexit__(None, None, None))

    def __enter__(self) -> LiveServer:
        self._thread.start()
        assert self._started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def send(self, raw: bytes) -> int:
        """Send one raw request; the response's status code (0: the server closed without answering)."""
        status, _ = self.exchange(raw)
        return status

    def exchange(self, raw: bytes) -> tuple[int, bytes]:
        """Send one raw request; the status and body of the answer, read up to its Content-Length."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(raw)
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                if not chunk:
                    return 0, b""
                received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            while len(body) < length and (chunk := sock.recv(65536)):
                body += chunk
        return int(head.split(b" ", 2)[1]), body


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with LiveServer() as live:
        yield live


def request(method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: kubegate", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def assert_no_server_error(status: int, server: LiveServer) -> None:
    # 0: closed without an answer; the server lives on.
    assert status < 500, status
    assert server.send(request("GET", "/healthz", [])) == 200


tokens = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8")),
    st.sampled_from([b"", b" ", b"\r\nX-Injected: 1", b"x\r\n\r\nGET / HTTP/1.1", b"\xff\xfe", b"a" * 20000]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(PATHS),
    scheme=st.sampled_from([b"Bearer ", b"bearer ", b"Basic ", b"", b"Bearer\t"]),
    token=tokens,
    as_cookie=st.booleans(),
)
def test_any_credential_gets_a_4xx_or_2xx(
    server: LiveServer, path: str, scheme: bytes, token: bytes, as_cookie: bool
) -> None:
    header = (b"Cookie", b"kubegate_client_token=" + token) if as_cookie else (b"Authorization", scheme + token)
    status = server.send(request("GET", path, [header]))
    assert_no_server_error(status, server)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(
    ["name", "description", "expiresAt", "expires_at", "namespaceKey", "metadata", "apiVersion", "kind", "spec", "x"]
)
bodies = st.one_of(
    st.dictionaries(field_names, json_values, max_size=6).map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    st.just(b'{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"\\u0000\\r\\n"}}'),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    target=st.sampled_from(BODY_PATHS),
    body=bodies,
    content_type=st.sampled_from([b"application/json", b"text/plain", b"application/json; charset=utf-8", b"\xff"]),
)
def test_any_body_gets_a_4xx_or_2xx(
    server: LiveServer, target: tuple[str, str], body: bytes, content_type: bytes
) -> None:
    method, path = target
    headers = [(b"Authorization", b"Bearer " + server.admin.encode()), (b"Content-Type", content_type)]
    status = server.send(request(method, path, headers, body))
    assert_no_server_error(status, server)


HOSTILE = [
    b"GET /auth/v1/self HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\rb\r\n\r\n",
    b"GET /auth/v1/self HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\nX-Injected: 1\r\n\r\n",
    b"GET /auth/v1/self HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xc3\xa9\xff\r\nConnection: close\r\n\r\n",
    b"GET /auth/v1/verify?group=%ZZ&group=\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"POST /auth/v1/method/token HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\nConnection: close\r\n\r\n{",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
]


@pytest.mark.parametrize("raw", HOSTILE)
def test_hostile_raw_requests(server: LiveServer, raw: bytes) -> None:
    status = server.send(raw)
    assert_no_server_error(status, server)


def test_the_server_counted_no_server_error_even_where_the_client_saw_no_answer(server: LiveServer) -> None:
    # Its own requests, so that it holds whichever tests ran before it on this server, or none.
    admin = [(b"Authorization", b"Bearer " + server.admin.encode()), (b"Content-Type", b"application/json")]
    for raw in HOSTILE:
        server.send(raw)
    for path in PATHS:
        server.send(request("GET", path, [(b"Authorization", b"Bearer \x00")]))
    for method, path in BODY_PATHS:
        server.send(request(method, path, admin, b'{"spec": [1, {"x": null}]'))
    status, body = server.exchange(request("GET", "/metrics", []))
    assert status == 200
    answered = [line for line in body.decode().splitlines() if line.startswith("kubegate_http_requests_total{")]
    for _, path in BODY_PATHS:  # the requests above were counted
        assert any(f'route="{path}"' in line for line in answered), path
    assert not [line for line in answered if 'code="5' in line]
