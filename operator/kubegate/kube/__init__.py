"""A small asynchronous Kubernetes API client on aiohttp, shared by the operator and the server.

The `kubernetes` package reads the kubeconfig; requests go through aiohttp so that no call blocks the
event loop. Rotated credentials are picked up: see `credentials`.
"""

from kubegate.kube.api import KubeApi
from kubegate.kube.client import KubeClient, WatchEvent
from kubegate.kube.config import Connection, NoKubeConfig, load_connection
from kubegate.kube.errors import (
    AlreadyExists,
    ApiError,
    ApiUnavailable,
    Conflict,
    Gone,
    NotFound,
)

__all__ = [
    "AlreadyExists",
    "ApiError",
    "ApiUnavailable",
    "Conflict",
    "Connection",
    "Gone",
    "KubeApi",
    "KubeClient",
    "NoKubeConfig",
    "NotFound",
    "WatchEvent",
    "load_connection",
]
