"""Health probes over HTTP(S), authenticated with the admin client certificate."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_PROBE_TIMEOUT = 3.0


@dataclass(frozen=True)
class ClientTLS:
    """Trust the cluster CA and present a client certificate."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(certfile=str(self.cert_file), keyfile=str(self.key_file))
        return context


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str


def probe(url: str, tls: ClientTLS | None) -> ProbeResult:
    """GET `url`; ok on HTTP 200. The detail is the body or the error, for progress and status output."""
    context = tls.context() if tls is not None and url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url, timeout=_PROBE_TIMEOUT, context=context) as response:  # noqa: S310
            body = response.read(4096).decode("utf-8", "replace").strip()
            return ProbeResult(ok=response.status == 200, detail=body)
    except urllib.error.HTTPError as error:
        body = error.read(4096).decode("utf-8", "replace").strip()
        return ProbeResult(ok=False, detail=f"HTTP {error.code}: {body.splitlines()[-1] if body else ''}")
    except (urllib.error.URLError, OSError) as error:
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        return ProbeResult(ok=False, detail=str(reason))


def probe_etcd(url: str) -> ProbeResult:
    """etcd's /health JSON carries the verdict (false while it has no leader), so read it."""
    result = probe(url, None)
    if not result.ok:
        return result
    try:
        healthy = json.loads(result.detail).get("health") == "true"
    except (ValueError, AttributeError):
        healthy = False
    return ProbeResult(ok=healthy, detail=result.detail)


def wait_for(
    check: Callable[[], ProbeResult],
    *,
    timeout: float,
    still_running: Callable[[], bool],
    interval: float = 0.25,
) -> ProbeResult:
    """Poll `check` until ok, until `timeout` seconds pass, or until the process behind it has exited."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result.ok or not still_running() or time.monotonic() >= deadline:
            return result
        time.sleep(interval)
