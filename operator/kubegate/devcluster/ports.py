"""Free loopback TCP ports."""

from __future__ import annotations

import contextlib
import socket

LOOPBACK = "127.0.0.1"


def pick_free_ports(count: int) -> list[int]:
    """Ports the kernel reports free right now, all distinct.

    Every socket stays open until all are picked, so the kernel cannot hand out the same port twice.
    Another process may still take one before our component binds it; startup then fails with
    "address already in use" in the component's log, and running `up` again picks new ports.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOOPBACK, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def port_is_free(port: int) -> bool:
    """Whether a new server could listen on the port now.

    SO_REUSEADDR, as every Go server sets, ignores connections in TIME_WAIT: they linger for a minute
    after a server exits but do not stop the next server from listening.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True
