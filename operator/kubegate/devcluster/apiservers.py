"""Additional kube-apiservers on a running dev cluster's etcd, e.g. one with a token webhook configured."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from kubegate.devcluster import components
from kubegate.devcluster.binaries import Binaries
from kubegate.devcluster.cluster import STOP_TIMEOUT
from kubegate.devcluster.components import APISERVER, ETCD, Progress, silent
from kubegate.devcluster.errors import DevClusterError
from kubegate.devcluster.flags import check_extra_args
from kubegate.devcluster.layout import Layout
from kubegate.devcluster.pki import LOOPBACK
from kubegate.devcluster.ports import pick_free_ports
from kubegate.devcluster.state import ClusterState, ExtraApiserver, load_state, save_state

_TIMEOUT = 90.0
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")


def start_apiserver(
    state_dir: Path,
    *,
    name: str,
    args: Sequence[str] = (),
    die_with_parent: bool = False,
    progress: Progress = silent,
) -> ExtraApiserver:
    """Start one more kube-apiserver on the running cluster's etcd, on its own free port.

    It shares the CA, serving certificate, service-account keys and issuer, so the cluster's tokens and
    client certificates work on it too; it gets its own admin kubeconfig. `args` are extra `--flag=value`
    arguments, each replacing the default of the same flag (for example
    `--authentication-token-webhook-config-file=...`). `stop_cluster` stops it along with the rest.
    """
    if not _NAME.match(name):
        raise DevClusterError(f"apiserver name {name!r} must be 1-32 lowercase letters, digits or '-'")
    extra_args = check_extra_args(args)
    layout = Layout(state_dir)
    state = _running_state(layout)
    component_name = f"{APISERVER}-{name}"
    existing = state.component(component_name)
    if existing is not None and components.is_running(existing):
        raise DevClusterError(f"{component_name} already runs as pid {existing.pid}; stop it with stop_apiserver")
    (port,) = pick_free_ports(1)
    url = f"https://{LOOPBACK}:{port}"
    kubeconfig = layout.apiserver_kubeconfig(name)
    components.write_admin_kubeconfig(layout, kubeconfig, context=f"kubegate-{state.name}-{name}", server=url)
    component = components.launch_apiserver(
        layout,
        name=component_name,
        binary=Binaries(directory=state.bin_dir).kube_apiserver,
        etcd_url=state.etcd_url,
        port=port,
        service_account_issuer=state.service_account_issuer,
        extra_args=extra_args,
        die_with_parent=die_with_parent,
    )
    extra = ExtraApiserver(name=name, url=url, kubeconfig=kubeconfig, component=component)
    others = tuple(apiserver for apiserver in state.extra_apiservers if apiserver.name != name)
    save_state(layout.state_file, state.model_copy(update={"extra_apiservers": (*others, extra)}))
    try:
        components.await_healthy(layout, component, timeout=_TIMEOUT, progress=progress)
    except BaseException:
        stop_apiserver(state_dir, name=name)
        raise
    return extra


def stop_apiserver(state_dir: Path, *, name: str, timeout: float = STOP_TIMEOUT) -> None:
    """Stop an apiserver started by `start_apiserver`; the rest of the cluster keeps running."""
    layout = Layout(state_dir)
    state = load_state(layout.state_file)
    if state is None:
        return
    extra = next((apiserver for apiserver in state.extra_apiservers if apiserver.name == name), None)
    if extra is None:
        return
    components.stop(extra.component, timeout=timeout, progress=silent)
    extra.kubeconfig.unlink(missing_ok=True)
    remaining = tuple(apiserver for apiserver in state.extra_apiservers if apiserver.name != name)
    save_state(layout.state_file, state.model_copy(update={"extra_apiservers": remaining}))


def _running_state(layout: Layout) -> ClusterState:
    state = load_state(layout.state_file)
    etcd = state.component(ETCD) if state is not None else None
    if state is None or etcd is None or not components.is_running(etcd):
        raise DevClusterError(f"no running dev cluster in {layout.state_dir}; start one with `kubegate dev-cluster up`")
    return state
