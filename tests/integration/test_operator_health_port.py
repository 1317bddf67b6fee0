"""The operator with `--health-address 127.0.0.1:0` serves /healthz on a free port it names in its log."""

from __future__ import annotations

import contextlib
import errno
import re
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubegate.devcluster import ClusterState
from kubegate.devcluster.processes import start_kubegate
from support import eventually

pytestmark = pytest.mark.integration
_LIVENESS = re.compile(r"liveness endpoint: (http://127\.0\.0\.1:(\d+)/healthz)")


@contextlib.contextmanager
def _port_80_unavailable() -> Iterator[None]:
    """Hold 127.0.0.1:80 when this user may; otherwise it is privileged or taken already: unusable anyway."""
    with socket.socket() as holder:
        try:
            holder.bind(("127.0.0.1", 80))
            holder.listen()
        except PermissionError:
            pass
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
        yield


def test_port_0_is_a_free_port_named_in_the_log(
    dev_cluster: ClusterState, crds: list[str], namespace: str, tmp_path: Path
) -> None:
    with _port_80_unavailable():
        operator = start_kubegate(
            "operator",
            [
                "operator",
                "--standalone",
                "--no-bootstrap",
                f"--operator-namespace={namespace}",
                f"--namespace={namespace}",
                "--health-address=127.0.0.1:0",
            ],
            kubeconfig=dev_cluster.kubeconfig,
            log_file=tmp_path / "operator.log",
        )
        try:
            match = eventually(lambda: _LIVENESS.search(operator.log()), timeout=30, what="the liveness URL in the log")
            url, port = match.group(1), int(match.group(2))
            assert port not in (0, 80)

            def healthy() -> bool:
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        return bool(response.status == 200)
                except OSError:
                    return False

            eventually(healthy, timeout=30, what=f"200 from {url}")
        finally:
            operator.stop()
    assert "Traceback" not in operator.log()
