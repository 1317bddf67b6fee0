"""One process of the control plane: launch it, wait until it is healthy, stop it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from kubegate.devcluster import processes
from kubegate.devcluster.errors import DevClusterError
from kubegate.devcluster.flags import apiserver_flags
from kubegate.devcluster.health import ClientTLS, ProbeResult, probe, probe_etcd, wait_for
from kubegate.devcluster.kubeconfig import write_kubeconfig
from kubegate.devcluster.layout import Layout
from kubegate.devcluster.pki import LOOPBACK
from kubegate.devcluster.ports import port_is_free
from kubegate.devcluster.state import Component

Progress = Callable[[str], None]

ETCD = "etcd"
APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"

_PORT_RELEASE_TIMEOUT = 10.0
_LOG_TAIL_LINES = 40


def silent(_: str) -> None:
    return None


def launch(
    layout: Layout,
    *,
    name: str,
    binary: Path,
    flags: Sequence[str],
    ports: dict[str, int],
    health_url: str,
    die_with_parent: bool,
) -> Component:
    log_file = layout.log_file(name)
    started = processes.spawn([str(binary), *flags], log_file=log_file, die_with_parent=die_with_parent)
    if started.start_time is None:
        raise DevClusterError(failure_message(name, "exited right after it started", log_file))
    return Component(
        name=name,
        pid=started.pid,
        start_time=started.start_time,
        binary=binary,
        log_file=log_file,
        ports=ports,
        health_url=health_url,
    )


def is_running(component: Component) -> bool:
    return processes.is_running(component.pid, component.start_time)


def probe_component(component: Component, tls: ClientTLS) -> ProbeResult:
    return probe_etcd(component.health_url) if component.name == ETCD else probe(component.health_url, tls)


def launch_apiserver(
    layout: Layout,
    *,
    name: str,
    binary: Path,
    etcd_url: str,
    port: int,
    service_account_issuer: str,
    extra_args: Sequence[str],
    die_with_parent: bool,
) -> Component:
    """Start a kube-apiserver on `port` against `etcd_url`; the cluster's first and any extra one alike."""
    return launch(
        layout,
        name=name,
        binary=binary,
        flags=apiserver_flags(
            layout, etcd_url=etcd_url, port=port, service_account_issuer=service_account_issuer, extra_args=extra_args
        ),
        ports={"secure": port},
        health_url=f"https://{LOOPBACK}:{port}/readyz",
        die_with_parent=die_with_parent,
    )


def await_healthy(layout: Layout, component: Component, *, timeout: float, progress: Progress) -> None:
    progress(f"{component.name}: started as pid {component.pid}, waiting for {component.health_url}")
    began = time.monotonic()
    await_condition(
        component,
        lambda: probe_component(component, admin_tls(layout)),
        timeout=timeout,
        failure="is not healthy",
    )
    progress(f"{component.name}: healthy after {time.monotonic() - began:.1f}s")


def await_condition(component: Component, check: Callable[[], ProbeResult], *, timeout: float, failure: str) -> None:
    """Wait for `check` while `component` runs; on failure raise with the tail of its log."""
    result = wait_for(check, timeout=timeout, still_running=lambda: is_running(component))
    if result.ok:
        return
    reason = f"{failure} after {timeout:.0f}s ({result.detail})" if is_running(component) else "exited"
    raise DevClusterError(failure_message(component.name, reason, component.log_file))


def stop(component: Component, *, timeout: float, progress: Progress) -> None:
    """SIGTERM, SIGKILL after `timeout`; returns once the process is gone and its ports are free."""
    processes.stop(component.pid, component.start_time, timeout=timeout)
    deadline = time.monotonic() + _PORT_RELEASE_TIMEOUT
    for port in component.ports.values():
        while not port_is_free(port):
            if time.monotonic() >= deadline:
                raise DevClusterError(
                    f"{component.name} stopped but port {port} is still in use; "
                    f"find the process with `ss -ltnp 'sport = :{port}'`"
                )
            time.sleep(0.1)
    progress(f"{component.name}: stopped (pid {component.pid})")


def failure_message(name: str, reason: str, log_file: Path) -> str:
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        lines = []
    tail = "\n".join(f"  | {line}" for line in lines[-_LOG_TAIL_LINES:]) or "  | (empty)"
    return f"{name} {reason}; last lines of {log_file}:\n{tail}"


def admin_tls(layout: Layout) -> ClientTLS:
    return ClientTLS(
        ca_file=layout.pki(Layout.CA_CERT),
        cert_file=layout.pki(Layout.ADMIN_CERT),
        key_file=layout.pki(Layout.ADMIN_KEY),
    )


def write_admin_kubeconfig(layout: Layout, path: Path, *, context: str, server: str) -> None:
    write_kubeconfig(
        path,
        cluster=context,
        server=server,
        user=f"{context}-admin",
        ca_pem=layout.pki(Layout.CA_CERT).read_bytes(),
        client_cert_pem=layout.pki(Layout.ADMIN_CERT).read_bytes(),
        client_key_pem=layout.pki(Layout.ADMIN_KEY).read_bytes(),
    )
