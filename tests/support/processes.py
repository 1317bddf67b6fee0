"""Thin test wrappers over `kubegate.devcluster.processes` (the one way tests and benchmarks start
kubegate): the operator and auth-server command lines tests use, and a server's URL beside its process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubegate.devcluster.ports import pick_free_ports
from kubegate.devcluster.processes import Child, start_kubegate


@contextlib.contextmanager
def operator(
    *,
    kubeconfig: Path,
    log_file: Path,
    operator_namespace: str,
    namespaces: Sequence[str] = (),
    standalone: bool = True,
    extra: Sequence[str] = (),
) -> Iterator[Child]:
    """`kubegate operator` watching only the given namespaces (so tests do not act on each other's tokens),
    once its /healthz answers; its log appended to `log_file`, so that restarts read as one log."""
    (port,) = pick_free_ports(1)
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
    process = start_kubegate(log_file.stem, args, log_file=log_file, kubeconfig=kubeconfig, append=True)
    try:
        process.wait_ready(f"http://127.0.0.1:{port}/healthz", timeout=30)
        yield process
    finally:
        process.stop()


@dataclass
class ServerProcess:
    process: Child
    url: str

    def stop(self) -> None:
        self.process.stop()

    def wait_ready(self, *, timeout: float = 60.0) -> None:
        self.process.wait_ready(self.url + "/readyz", timeout=timeout)


def start_server(
    name: str,
    *,
    kubeconfig: Path,
    operator_namespace: str,
    log_dir: Path,
    extra: Sequence[str] = (),
    port: int | None = None,
) -> ServerProcess:
    """`kubegate server` on plain HTTP on loopback, reading tokens of `operator_namespace`; not waited for."""
    if port is None:
        (port,) = pick_free_ports(1)
    args = [
        "server",
        "--insecure-http",
        f"--address=127.0.0.1:{port}",
        f"--operator-namespace={operator_namespace}",
        f"--token-namespace={operator_namespace}",
        *extra,
    ]
    process = start_kubegate(name, args, log_file=log_dir / f"{name}.log", kubeconfig=kubeconfig)
    return ServerProcess(process=process, url=f"http://127.0.0.1:{port}")
