"""Run kubegate processes (operator, server) as real subprocesses for integration tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

from support import eventually


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """A kubegate subcommand running in the background, its output in a log file."""

    def __init__(self, args: Sequence[str], *, kubeconfig: Path, log_file: Path, env: dict[str, str] | None = None):
        self.args = list(args)
        self.log_file = log_file
        self._env = {**os.environ, "KUBECONFIG": str(kubeconfig), **(env or {})}
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with self.log_file.open("ab") as log:
            self._popen = subprocess.Popen(
                [sys.executable, "-m", "kubegate", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
            )
        return self

    def stop(self, *, kill: bool = False, timeout: float = 20.0) -> None:
        if self._popen is None:
            return
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait(5)
        self._popen = None

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has exited on its own; None while it runs."""
        return None if self._popen is None else self._popen.poll()

    def send_signal(self, signum: int) -> None:
        """Signal the process without waiting for it to exit (`stop` reaps it later)."""
        assert self._popen is not None, "not running"
        self._popen.send_signal(signum)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")


def wait_http_ok(url: str, *, timeout: float, what: str) -> None:
    def ok() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    eventually(ok, timeout=timeout, what=what)


@contextlib.contextmanager
def operator(
    *,
    kubeconfig: Path,
    log_file: Path,
    operator_namespace: str,
    namespaces: Sequence[str] = (),
    standalone: bool = True,
    extra: Sequence[str] = (),
) -> Iterator[Process]:
    """`kubegate operator` watching only the given namespaces (so tests do not act on each other's tokens)."""
    port = free_port()
    args = [
        "operator",
        "--operator-namespace",
        operator_namespace,
        "--health-address",
        f"127.0.0.1:{port}",
        "--log-level",
        "DEBUG",
        *(a for ns in namespaces for a in ("--namespace", ns)),
        *(["--standalone"] if standalone else []),
        *extra,
    ]
    process = Process(args, kubeconfig=kubeconfig, log_file=log_file).start()
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/healthz", timeout=30, what="the operator's /healthz")
        yield process
    finally:
        process.stop()
