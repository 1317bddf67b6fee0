"""A local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) for development and
integration tests, built from source by hack/build-control-plane.sh; no Docker needed.

Pods never run (there is no kubelet), but every API object exists, the garbage collector and the
namespace and service-account controllers run, and service-account tokens, TokenRequest and TokenReview
work for real.
"""

from kubegate.devcluster.apiservers import start_apiserver, stop_apiserver
from kubegate.devcluster.binaries import Binaries, find_binaries
from kubegate.devcluster.cluster import ComponentHealth, check_health, read_state, start_cluster, stop_cluster
from kubegate.devcluster.components import Progress
from kubegate.devcluster.errors import DevClusterError
from kubegate.devcluster.kubectl import Kubectl
from kubegate.devcluster.layout import default_state_dir
from kubegate.devcluster.state import ClusterState, Component, ExtraApiserver

__all__ = [
    "Binaries",
    "ClusterState",
    "Component",
    "ComponentHealth",
    "DevClusterError",
    "ExtraApiserver",
    "Kubectl",
    "Progress",
    "check_health",
    "default_state_dir",
    "find_binaries",
    "read_state",
    "start_apiserver",
    "start_cluster",
    "stop_apiserver",
    "stop_cluster",
]
