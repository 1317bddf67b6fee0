"""A connection's credentials: the ones to send now, and loading them again from where they came from.

Credentials change under a running process: the kubelet replaces a pod's projected service-account token
about hourly, and a kubeconfig's tokenFile or exec plugin hands out new tokens. A token file is re-read
when it changes and at least every minute, as client-go does; beyond that, `KubeClient` calls `reload`
when the API server answers 401, as kopf does. Nothing here logs a token or puts one in an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Protocol

from kubernetes import config as kube_config
from kubernetes.client import Configuration


class Credentials(Protocol):
    """What `KubeClient` asks of a connection's credentials."""

    @property
    def source(self) -> str:
        """Where the credentials come from, for log lines (never the credentials themselves)."""

    def authorization(self) -> str | None:
        """The `Authorization` header value to send now, or None."""

    async def reload(self) -> None:
        """Load the credentials again from their source: the API server refused the current ones."""


class TokenFile:
    """A bearer token in a file that something else rotates: the kubelet, in a pod."""

    def __init__(self, path: str | Path, *, max_age: float = 60.0) -> None:
        self._path = Path(path)
        self._max_age = max_age
        self._token = ""
        self._stamp: tuple[int, int] | None = None
        self._read_at = 0.0
        self._read()

    @property
    def source(self) -> str:
        return f"token file {self._path}"

    def authorization(self) -> str:
        # A stat per request is cheap next to the request; the time limit covers file systems whose
        # modification times are too coarse to show two writes in the same second.
        if time.monotonic() - self._read_at >= self._max_age or self._file_stamp() != self._stamp:
            # Unreadable or empty for a moment: keep the last token; a 401 would make `reload` say why.
            with contextlib.suppress(OSError, ValueError):
                self._read()
        return f"Bearer {self._token}"

    async def reload(self) -> None:
        await asyncio.to_thread(self._read)

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self._path.stat()
        except OSError:
            return self._stamp
        return stat.st_mtime_ns, stat.st_size

    def _read(self) -> None:
        # The stamp is taken before the read: a write in between is then seen, and read, next time.
        stamp = self._file_stamp()
        token = self._path.read_text(encoding="utf-8").strip()
        if not token:
            raise ValueError(f"the token file {self._path} is empty")
        self._token, self._stamp, self._read_at = token, stamp, time.monotonic()


class KubeconfigUser:
    """The user of a kubeconfig context: a token, a tokenFile, an exec plugin or an auth provider.

    A client certificate goes into the connection's TLS settings once, at start-up: a renewed one needs a
    restart (certificates outlive tokens by months).
    """

    def __init__(self, *, kubeconfig: str | None, context: str | None) -> None:
        self._kubeconfig = kubeconfig
        self._context = context
        self._cfg = self._load()

    @property
    def configuration(self) -> Configuration:
        """Everything the kubeconfig says, as last loaded: the connection takes the server and TLS from it."""
        return self._cfg

    @property
    def source(self) -> str:
        where = self._kubeconfig or "the default kubeconfig"
        return where if self._context is None else f"{where} (context {self._context})"

    def authorization(self) -> str | None:
        # This runs the hook the kubernetes loader installs to renew an exec-plugin or OIDC token before it
        # expires. The package keeps the token under "BearerToken" since version 36, "authorization" before.
        value = self._cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
        return str(value) if value else None

    async def reload(self) -> None:
        # Loading may read files and run an exec plugin: not on the event loop.
        self._cfg = await asyncio.to_thread(self._load)

    def _load(self) -> Configuration:
        cfg = Configuration()
        kube_config.load_kube_config(
            config_file=self._kubeconfig, context=self._context, client_configuration=cfg, persist_config=False
        )
        return cfg
