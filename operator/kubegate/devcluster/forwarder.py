"""A TCP forwarder on a fixed loopback port to a target that can change: an apiserver that goes away and
comes back at the same address, as behind a Service. Tests and benchmarks of API outages use it, and of a
bad network: it can add latency and drop connections."""

from __future__ import annotations

import contextlib
import queue
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml


@dataclass
class Forwarder:
    """A TCP forwarder on a fixed loopback port to a target port that can change: an apiserver that goes
    away and comes back at the same address, as behind a Service."""

    target: int
    port: int = 0
    latency: float = 0.0
    """Seconds each chunk from the client waits before it goes on: every request arrives that much later, on a
    kept-alive connection too, without slowing the connection's throughput (chunks are not serialized)."""
    drop_rate: float = 0.0
    """The fraction of new connections closed at once, before any byte (a TLS client sees the handshake fail)."""
    seed: int | None = None
    """Seeds which connections are dropped, for a repeatable run."""
    accepted: int = field(default=0, init=False)
    dropped: int = field(default=0, init=False)
    _random: random.Random = field(init=False)
    _listener: socket.socket = field(init=False)
    _sockets: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: bool = False

    def __enter__(self) -> Forwarder:
        self._random = random.Random(self.seed)  # noqa: S311 - which connections fail, not a secret
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        self._listener.close()
        self.drop_connections()

    def drop_connections(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self._random.random() < self.drop_rate:
                self.dropped += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=2)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            if self.latency > 0:
                self._start_delayed_pipe(client, upstream)
            else:
                threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _start_delayed_pipe(self, source: socket.socket, sink: socket.socket) -> None:
        """Each chunk is sent `latency` seconds after it arrived; None in the queue stands for the end."""
        chunks: queue.Queue[tuple[float, bytes | None]] = queue.Queue()
        latency = self.latency

        def read() -> None:
            with contextlib.suppress(OSError):
                while data := source.recv(65536):
                    chunks.put((time.monotonic() + latency, data))
            chunks.put((time.monotonic() + latency, None))

        def write() -> None:
            with contextlib.suppress(OSError):
                while True:
                    due, data = chunks.get()
                    time.sleep(max(0.0, due - time.monotonic()))
                    if data is None:
                        break
                    sink.sendall(data)
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def port_of(url: str) -> int:
    port = urlsplit(url).port
    if port is None:
        raise ValueError(f"{url} names no port")
    return port


def forwarded_kubeconfig(source: Path, target: Path, port: int) -> Path:
    """A copy of the kubeconfig `source` whose clusters are reached through the forwarder on `port`."""
    config = yaml.safe_load(source.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{port}"
    target.write_text(yaml.safe_dump(config))
    return target
