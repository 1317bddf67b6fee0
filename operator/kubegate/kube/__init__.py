"""A small asynchronous Kubernetes API client on aiohttp, shared by the operator and the server.

The `kubernetes` package loads credentials (kubeconfig or in-cluster); requests go through aiohttp so
that no call blocks the event loop.
"""

from kubegate.kube.client import KubeClient, WatchEvent
from kubegate.kube.config import Connection, load_connection
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
    "KubeClient",
    "NotFound",
    "WatchEvent",
    "load_connection",
]
