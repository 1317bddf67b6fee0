"""The dev forwarder's fault injection (added latency, dropped connections), against a loopback echo server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from kubegate.devcluster.forwarder import Forwarder


@pytest.fixture
def echo_port() -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def round_trip(port: int, message: bytes) -> tuple[bytes, float]:
    """The echo of `message` through a new connection (b"" when it was closed) and the seconds it took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(message)
            received = b""
            while len(received) < len(message) and (data := sock.recv(65536)):
                received += data
        except ConnectionError:
            received = b""
    return received, time.monotonic() - started


def test_by_default_forwards_at_once_and_drops_nothing(echo_port: int) -> None:
    with Forwarder(target=echo_port) as forwarder:
        results = [round_trip(forwarder.port, b"ping %d" % i) for i in range(30)]
    assert [r for r, _ in results] == [b"ping %d" % i for i in range(30)]
    assert max(t for _, t in results) < 0.5
    assert forwarder.dropped == 0


def test_latency_delays_every_request_on_a_kept_connection_in_order(echo_port: int) -> None:
    with (
        Forwarder(target=echo_port, latency=0.3) as forwarder,
        socket.create_connection(("127.0.0.1", forwarder.port), timeout=5) as sock,
    ):
        for i in range(3):
            started = time.monotonic()
            sock.sendall(b"request %d" % i)
            assert sock.recv(100) == b"request %d" % i
            assert 0.3 <= time.monotonic() - started < 1.0  # slack for a busy machine


def test_latency_does_not_serialize_chunks(echo_port: int) -> None:
    """Ten chunks sent at once all arrive about `latency` later, not ten times that."""
    with (
        Forwarder(target=echo_port, latency=0.3) as forwarder,
        socket.create_connection(("127.0.0.1", forwarder.port), timeout=5) as sock,
    ):
        started = time.monotonic()
        for i in range(10):
            sock.sendall(b"%d;" % i)
            time.sleep(0.01)
        expected = b"".join(b"%d;" % i for i in range(10))
        received = b""
        while len(received) < len(expected):
            received += sock.recv(100)
        assert received == expected
        assert time.monotonic() - started < 1.5  # one after the other would take 3 s


def test_drop_rate_closes_that_fraction_of_new_connections_repeatably(echo_port: int) -> None:
    def run() -> list[bool]:
        with Forwarder(target=echo_port, drop_rate=0.2, seed=7) as forwarder:
            answered = [round_trip(forwarder.port, b"x")[0] == b"x" for _ in range(200)]
        assert forwarder.dropped == answered.count(False)
        return answered

    first = run()
    assert 20 <= first.count(False) <= 60
    assert run() == first
