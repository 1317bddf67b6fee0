"""Worker processes on one socket: connections spread over them, a worker that dies is replaced, SIGTERM
stops them all and the parent exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).parent


def _pids_seen(port: int, requests: int) -> set[int]:
    seen = set()
    for _ in range(requests):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/pid", timeout=5) as answer:  # a new connection each
            seen.add(int(answer.read()))
    return seen


def test_workers_share_the_socket_are_replaced_and_stop_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    parent = subprocess.Popen(
        [sys.executable, str(HERE / "workers_app.py"), "2"], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert parent.stdout is not None
        port = int(parent.stdout.readline())
        deadline = time.monotonic() + 20
        seen: set[int] = set()
        while len(seen) < 2 and time.monotonic() < deadline:
            seen |= _pids_seen(port, 20)
        assert len(seen) == 2, seen
        assert parent.pid not in seen

        victim = min(seen)
        os.kill(victim, signal.SIGKILL)
        replaced: set[int] = set()
        deadline = time.monotonic() + 20
        while not (replaced - seen) and time.monotonic() < deadline:
            time.sleep(0.2)
            replaced = _pids_seen(port, 20)
        assert replaced - seen, "no new worker answered after one was killed"
        assert victim not in replaced

        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=15) == 0
        for worker in seen | replaced:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                continue
            raise AssertionError(f"worker {worker} outlived its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
