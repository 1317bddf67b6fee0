"""Start, inspect and stop a local control plane: etcd, kube-apiserver and kube-controller-manager.

Every process runs in its own session with its log in <state-dir>/logs/, so the CLI's `up` can exit and
leave the cluster running; <state-dir>/state.json tells later commands what runs where.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kubegate.devcluster import components
from kubegate.devcluster.binaries import Binaries, binary_versions, find_binaries
from kubegate.devcluster.components import APISERVER, CONTROLLER_MANAGER, ETCD, Progress, silent
from kubegate.devcluster.errors import DevClusterError
from kubegate.devcluster.flags import check_extra_args, controller_manager_flags, etcd_flags
from kubegate.devcluster.health import probe
from kubegate.devcluster.kubeconfig import write_kubeconfig
from kubegate.devcluster.layout import Layout
from kubegate.devcluster.pki import CONTROLLER_MANAGER_USER, LOOPBACK, write_cluster_pki
from kubegate.devcluster.ports import pick_free_ports
from kubegate.devcluster.state import ClusterState, Component, load_state, save_state

# Bounds for each wait; generous because a cold start on two busy cores takes a while.
_ETCD_TIMEOUT = 30.0
_APISERVER_TIMEOUT = 90.0
_CONTROLLER_MANAGER_TIMEOUT = 60.0
_DEFAULT_SERVICE_ACCOUNT_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class ComponentHealth:
    component: Component
    healthy: bool
    detail: str
    """The health endpoint's answer, why it failed, or "not running"."""


def start_cluster(
    *,
    state_dir: Path,
    name: str = "dev",
    apiserver_args: Sequence[str] = (),
    die_with_parent: bool = False,
    binaries: Binaries | None = None,
    progress: Progress = silent,
) -> ClusterState:
    """Start the control plane in `state_dir`, or return the running one if it is healthy.

    `apiserver_args` are extra `--flag=value` arguments for kube-apiserver; each replaces the default of
    the same flag. With `die_with_parent` the processes die with the calling thread, as a test session
    wants; the CLI leaves it off so that the cluster outlives the command. Raises DevClusterError, with
    the tail of the failing component's log, after stopping whatever it started.
    """
    layout = Layout(state_dir)
    existing = load_state(layout.state_file)
    if existing is not None:
        if all(health.healthy for health in check_health(existing)):
            progress(f"dev cluster {existing.name!r} is already running and healthy")
            return existing
        progress(f"found a stopped or unhealthy cluster in {state_dir}; stopping what is left of it")
        stop_cluster(state_dir, progress=progress)
    extra_args = check_extra_args(apiserver_args)
    binaries = binaries or find_binaries()
    versions = binary_versions(binaries)
    _remove_cluster_files(layout, keep_logs=False)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    progress(f"generating certificates and keys in {layout.pki_dir}")
    write_cluster_pki(layout, cluster_name=name)
    etcd_port, etcd_peer_port, apiserver_port, controller_manager_port = pick_free_ports(4)
    apiserver_url = f"https://{LOOPBACK}:{apiserver_port}"
    components.write_admin_kubeconfig(layout, layout.kubeconfig, context=f"kubegate-{name}", server=apiserver_url)
    write_kubeconfig(
        layout.controller_manager_kubeconfig,
        cluster=f"kubegate-{name}",
        server=apiserver_url,
        user=CONTROLLER_MANAGER_USER,
        ca_pem=layout.pki(Layout.CA_CERT).read_bytes(),
        client_cert_pem=layout.pki(Layout.CONTROLLER_MANAGER_CLIENT_CERT).read_bytes(),
        client_key_pem=layout.pki(Layout.CONTROLLER_MANAGER_CLIENT_KEY).read_bytes(),
    )
    state = ClusterState(
        name=name,
        state_dir=state_dir,
        bin_dir=binaries.directory,
        kubeconfig=layout.kubeconfig,
        apiserver_url=apiserver_url,
        etcd_url=f"http://{LOOPBACK}:{etcd_port}",
        # Any URL works as long as every apiserver of the cluster uses the same one.
        service_account_issuer=apiserver_url,
        kubernetes_version=versions.kubernetes,
        etcd_version=versions.etcd,
    )
    save_state(layout.state_file, state)
    try:
        etcd = components.launch(
            layout,
            name=ETCD,
            binary=binaries.etcd,
            flags=etcd_flags(layout, name=name, client_port=etcd_port, peer_port=etcd_peer_port),
            ports={"client": etcd_port, "peer": etcd_peer_port},
            health_url=f"{state.etcd_url}/health",
            die_with_parent=die_with_parent,
        )
        state = _with_component(layout, state, etcd)
        components.await_healthy(layout, etcd, timeout=_ETCD_TIMEOUT, progress=progress)

        apiserver = components.launch_apiserver(
            layout,
            name=APISERVER,
            binary=binaries.kube_apiserver,
            etcd_url=state.etcd_url,
            port=apiserver_port,
            service_account_issuer=state.service_account_issuer,
            extra_args=extra_args,
            die_with_parent=die_with_parent,
        )
        state = _with_component(layout, state, apiserver)
        components.await_healthy(layout, apiserver, timeout=_APISERVER_TIMEOUT, progress=progress)

        controller_manager = components.launch(
            layout,
            name=CONTROLLER_MANAGER,
            binary=binaries.kube_controller_manager,
            flags=controller_manager_flags(layout, port=controller_manager_port),
            ports={"secure": controller_manager_port},
            health_url=f"https://{LOOPBACK}:{controller_manager_port}/healthz",
            die_with_parent=die_with_parent,
        )
        state = _with_component(layout, state, controller_manager)
        components.await_healthy(layout, controller_manager, timeout=_CONTROLLER_MANAGER_TIMEOUT, progress=progress)
        _await_default_service_account(layout, state, controller_manager, progress=progress)
    except BaseException:
        _stop_after_failure(state_dir, progress)
        raise
    return state


def stop_cluster(state_dir: Path, *, timeout: float = STOP_TIMEOUT, progress: Progress = silent) -> bool:
    """Stop every process of the cluster in reverse start order and delete its state, keeping the logs.

    Each process gets SIGTERM, then SIGKILL after `timeout` seconds; returns once all are gone and their
    ports are free. Returns False when no cluster was recorded in `state_dir`.
    """
    layout = Layout(state_dir)
    state = load_state(layout.state_file)
    if state is None:
        return False
    for component in reversed(state.all_components()):
        components.stop(component, timeout=timeout, progress=progress)
    _remove_cluster_files(layout, keep_logs=True)
    return True


def read_state(state_dir: Path) -> ClusterState | None:
    """The cluster recorded in `state_dir`, running or not; None if there is none."""
    return load_state(Layout(state_dir).state_file)


def check_health(state: ClusterState) -> list[ComponentHealth]:
    """Whether each process, additional apiservers included, still runs and answers its health check."""
    tls = components.admin_tls(Layout(state.state_dir))
    report = []
    for component in state.all_components():
        if not components.is_running(component):
            report.append(ComponentHealth(component=component, healthy=False, detail="not running"))
            continue
        result = components.probe_component(component, tls)
        report.append(ComponentHealth(component=component, healthy=result.ok, detail=result.detail))
    return report


def _with_component(layout: Layout, state: ClusterState, component: Component) -> ClusterState:
    # Saved before waiting for health, so that `down` finds a process whose startup hangs.
    updated = state.model_copy(update={"components": (*state.components, component)})
    save_state(layout.state_file, updated)
    return updated


def _await_default_service_account(
    layout: Layout, state: ClusterState, controller_manager: Component, *, progress: Progress
) -> None:
    # The serviceaccount controller creates it; seeing it proves the controllers run and can write.
    progress("kube-controller-manager: waiting for ServiceAccount default/default")
    tls = components.admin_tls(layout)
    url = f"{state.apiserver_url}/api/v1/namespaces/default/serviceaccounts/default"
    began = time.monotonic()
    components.await_condition(
        controller_manager,
        lambda: probe(url, tls),
        timeout=_DEFAULT_SERVICE_ACCOUNT_TIMEOUT,
        failure="did not create ServiceAccount default/default",
    )
    progress(f"kube-controller-manager: ServiceAccount default/default exists after {time.monotonic() - began:.1f}s")


def _stop_after_failure(state_dir: Path, progress: Progress) -> None:
    progress("startup failed; stopping what was started")
    try:
        stop_cluster(state_dir, progress=progress)
    except DevClusterError as error:
        # The startup error matters more; this one is reported alongside it, not instead of it.
        progress(f"cleanup failed too: {error}")


def _remove_cluster_files(layout: Layout, *, keep_logs: bool) -> None:
    """Remove only the files a cluster writes: the state dir may be one the user shares with other files."""
    for path in (layout.state_file, layout.kubeconfig, layout.controller_manager_kubeconfig):
        path.unlink(missing_ok=True)
    directories = [layout.pki_dir, layout.etcd_data_dir, layout.apiservers_dir]
    if not keep_logs:
        directories.append(layout.logs_dir)
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)
