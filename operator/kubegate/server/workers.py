"""Several worker processes on one listening socket: the parent binds it, forks `workers` children that each
run a whole server (its own watchers, memory and readiness, like a replica), forwards SIGTERM and SIGINT to
them, and starts a new worker when one dies unexpectedly. The kernel spreads new connections over the
workers that accept on the shared socket.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0
BACKLOG = 1024


def bind(host: str, port: int) -> socket.socket:
    """The listening socket the workers share (port 0: a free port)."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def run_workers(count: int, sock: socket.socket, serve_one: Callable[[socket.socket], int]) -> int:
    """Run `count` workers, each `serve_one(sock)` in a forked child, until SIGTERM or SIGINT; 0 when all
    stopped on a signal."""
    workers: dict[int, int] = {}  # pid -> worker number
    stopping = False

    def start(number: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                code = serve_one(sock)
            finally:
                os._exit(code)
        workers[pid] = number
        log.info("started worker %d (pid %d)", number, pid)

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for number in range(count):
            start(number)
        while workers:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid not in workers:
                continue
            number = workers.pop(pid)
            if stopping:
                log.info("worker %d (pid %d) stopped", number, pid)
                continue
            log.error(
                "worker %d (pid %d) exited unexpectedly (%s); starting a new one in %.0fs",
                number,
                pid,
                _describe(status),
                RESTART_DELAY,
            )
            time.sleep(RESTART_DELAY)
            if not stopping:
                start(number)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock.close()
    return 0


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
