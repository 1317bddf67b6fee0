"""The URL kopf serves the liveness endpoint (/healthz) on, from `--health-address`.

kopf reads the port from the URL and takes a missing or zero port for 80. Port 0 means "any free port"
everywhere else (and lets several operators run side by side in development and tests), so it is
resolved here: a free port is picked by binding it and handed to kopf, and the log names it. Another
process could take that port before kopf binds it again; then kopf fails to start, saying so.
"""

from __future__ import annotations

import logging
import socket

from kubegate.settings import split_address

log = logging.getLogger(__name__)

PATH = "/healthz"


def liveness_endpoint(address: str) -> str:
    """The liveness URL for `address` (HOST:PORT, validated by the settings), with port 0 made a free port."""
    host, port = split_address(address)
    if port == 0:
        port = _free_port(host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}{PATH}"
    log.info("liveness endpoint: %s", url)
    return url


def _free_port(host: str) -> int:
    family, kind, proto, _, sockaddr = socket.getaddrinfo(
        host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.bind(sockaddr)
        port: int = probe.getsockname()[1]
    return port
