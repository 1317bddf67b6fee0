"""Where each file of a dev cluster lives inside its state directory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubegate.devcluster.binaries import cache_root


@dataclass(frozen=True)
class Layout:
    state_dir: Path

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (user in system:masters) for the main kube-apiserver."""
        return self.state_dir / "kubeconfig"

    @property
    def controller_manager_kubeconfig(self) -> Path:
        return self.state_dir / "kube-controller-manager.kubeconfig"

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def etcd_data_dir(self) -> Path:
        return self.state_dir / "etcd-data"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    def log_file(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"

    @property
    def apiservers_dir(self) -> Path:
        return self.state_dir / "apiservers"

    def apiserver_kubeconfig(self, name: str) -> Path:
        """The admin kubeconfig of an additional kube-apiserver started against the same etcd."""
        return self.apiservers_dir / f"{name}.kubeconfig"

    def pki(self, name: str) -> Path:
        return self.pki_dir / name

    # Names of the PKI files, shared by the writer and the command lines that read them.
    CA_CERT = "ca.crt"
    CA_KEY = "ca.key"
    APISERVER_CERT = "apiserver.crt"
    APISERVER_KEY = "apiserver.key"
    ADMIN_CERT = "admin.crt"
    ADMIN_KEY = "admin.key"
    CONTROLLER_MANAGER_CLIENT_CERT = "kube-controller-manager-client.crt"
    CONTROLLER_MANAGER_CLIENT_KEY = "kube-controller-manager-client.key"
    CONTROLLER_MANAGER_SERVING_CERT = "kube-controller-manager-serving.crt"
    CONTROLLER_MANAGER_SERVING_KEY = "kube-controller-manager-serving.key"
    FRONT_PROXY_CA_CERT = "front-proxy-ca.crt"
    FRONT_PROXY_CLIENT_CERT = "front-proxy-client.crt"
    FRONT_PROXY_CLIENT_KEY = "front-proxy-client.key"
    SERVICE_ACCOUNT_KEY = "service-account.key"
    SERVICE_ACCOUNT_PUB = "service-account.pub"


def default_state_dir(name: str, env: Mapping[str, str] | None = None) -> Path:
    """KUBEGATE_STATE_DIR if set, else <cache>/clusters/<name> (cache as for the binaries)."""
    env = os.environ if env is None else env
    configured = env.get("KUBEGATE_STATE_DIR")
    return Path(configured).expanduser() if configured else cache_root(env) / "clusters" / name
