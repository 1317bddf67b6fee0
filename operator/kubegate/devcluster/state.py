"""The state file of a dev cluster: what runs, where, and how to reach it."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from kubegate.devcluster.errors import DevClusterError
from kubegate.devcluster.files import write_private


class Component(BaseModel):
    """One running process of the control plane."""

    model_config = ConfigDict(frozen=True)

    name: str
    """Unique in the cluster: etcd, kube-apiserver, kube-controller-manager or kube-apiserver-<name>."""
    pid: int
    start_time: int
    """Kernel start time of `pid`; tells our process from a later one that reuses the pid."""
    binary: Path
    log_file: Path
    ports: dict[str, int]
    health_url: str


class ExtraApiserver(BaseModel):
    """An additional kube-apiserver on the cluster's etcd, with its own port and admin kubeconfig."""

    model_config = ConfigDict(frozen=True)

    name: str
    url: str
    kubeconfig: Path
    component: Component


class ClusterState(BaseModel):
    """Saved as <state-dir>/state.json by `up` after each process starts, removed by `down`."""

    model_config = ConfigDict(frozen=True)

    name: str
    state_dir: Path
    bin_dir: Path
    kubeconfig: Path
    apiserver_url: str
    etcd_url: str
    service_account_issuer: str
    kubernetes_version: str
    etcd_version: str
    components: tuple[Component, ...] = ()
    """In start order; stopped in reverse."""
    extra_apiservers: tuple[ExtraApiserver, ...] = ()

    @property
    def kubectl(self) -> Path:
        return self.bin_dir / "kubectl"

    def component(self, name: str) -> Component | None:
        return next((component for component in self.all_components() if component.name == name), None)

    def all_components(self) -> tuple[Component, ...]:
        """Every process in start order, additional apiservers last."""
        return self.components + tuple(extra.component for extra in self.extra_apiservers)


def load_state(path: Path) -> ClusterState | None:
    """The saved state, or None when no cluster was started there."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return ClusterState.model_validate_json(text)
    except ValidationError as error:
        raise DevClusterError(
            f"{path} is not a dev-cluster state file this kubegate understands ({error.error_count()} "
            "errors); stop leftover processes listed in it by hand, then delete the file"
        ) from error


def save_state(path: Path, state: ClusterState) -> None:
    write_private(path, state.model_dump_json(indent=2).encode("utf-8"))
