"""HTTPS with certificate files that are re-read when they change (cert-manager renews them in place).

The listening SSLContext is updated in place, so new handshakes use the new certificate while open
connections keep theirs. A new pair is first loaded into a scratch context: a half-written or mismatched
pair is never installed, the old one keeps serving and the check runs again at the next interval. The
files are read once per change, into anonymous in-memory files, so the pair checked is the pair
installed even if the files change again meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


class ReloadingTLS:
    def __init__(self, *, cert_file: str, key_file: str, interval: float) -> None:
        self._cert_file = Path(cert_file)
        self._key_file = Path(key_file)
        self._interval = interval
        self.context = _new_context()
        self._loaded = _read_pair(self._cert_file, self._key_file)
        _load(self.context, *self._loaded)
        self.reloads = 0
        """Certificate pairs installed after the first; tests read it."""

    async def run(self) -> None:
        """Check the files every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            await self.check()

    async def check(self) -> bool:
        """Install the files' pair if it changed and is valid; returns whether a new pair was installed."""
        try:
            pair = await asyncio.to_thread(_read_pair, self._cert_file, self._key_file)
        except OSError as exc:
            log.warning(
                "TLS: cannot read %s or %s (%s); keeping the current certificate", self._cert_file, self._key_file, exc
            )
            return False
        if pair == self._loaded:
            return False
        try:
            _load(_new_context(), *pair)
        except (ssl.SSLError, OSError, ValueError) as exc:
            log.warning(
                "TLS: the new certificate files do not form a valid pair (%s); keeping the current certificate "
                "and checking again in %.0fs",
                exc,
                self._interval,
            )
            return False
        # In the event loop's thread, like every handshake: none can see the context half-updated.
        _load(self.context, *pair)
        self._loaded = pair
        self.reloads += 1
        log.info("TLS: installed the new certificate from %s", self._cert_file)
        return True


def _new_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _read_pair(cert_file: Path, key_file: Path) -> tuple[bytes, bytes]:
    return cert_file.read_bytes(), key_file.read_bytes()


def _load(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    with _as_file(cert) as cert_path, _as_file(key) as key_path:
        context.load_cert_chain(cert_path, key_path)


@contextlib.contextmanager
def _as_file(data: bytes) -> Iterator[str]:
    """A path holding `data`: an anonymous memory file on Linux, so the key never lands on disk again."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("kubegate-tls", os.MFD_CLOEXEC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.NamedTemporaryFile(prefix="kubegate-tls-") as handle:
        handle.write(data)
        handle.flush()
        yield handle.name
