"""Where the API server is and how to authenticate to it: found once at start-up, credentials kept current."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass

from kubernetes import config as kube_config
from kubernetes.client import Configuration
from kubernetes.config.incluster_config import SERVICE_TOKEN_FILENAME

from kubegate.kube.credentials import Credentials, KubeconfigUser, TokenFile


@dataclass(frozen=True, kw_only=True)
class Connection:
    """How to reach one API server."""

    host: str
    """Base URL, such as https://127.0.0.1:6443."""
    ssl_context: ssl.SSLContext | bool
    """TLS settings; False turns verification off (only when the kubeconfig asks for it)."""
    credentials: Credentials
    """The `Authorization` header to send, and how to load it again when the API server refuses it."""
    namespace: str
    """The namespace of the kubeconfig context, or of the pod when in a cluster."""


_SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class NoKubeConfig(Exception):  # noqa: N818 - names the condition
    """Neither a usable kubeconfig nor a pod's service account: the message says what was tried."""


def load_connection(*, kubeconfig: str | None = None, context: str | None = None) -> Connection:
    """In a pod, the service account; elsewhere the kubeconfig (`KUBECONFIG` or ~/.kube/config).

    Raises NoKubeConfig when there is neither (or it cannot be read), with what to set.
    """
    try:
        return _load_connection(kubeconfig=kubeconfig, context=context)
    except (kube_config.ConfigException, OSError, StopIteration) as exc:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise NoKubeConfig(
            f"cannot reach Kubernetes: no usable kubeconfig at {where} and not in a pod ({exc or type(exc).__name__}); "
            "set KUBECONFIG"
        ) from exc


def _load_connection(*, kubeconfig: str | None, context: str | None) -> Connection:
    # The kubernetes package reads KUBECONFIG once, at import; read it at call time instead.
    kubeconfig = kubeconfig or os.environ.get("KUBECONFIG") or None
    if kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ:
        cfg = Configuration()
        kube_config.load_incluster_config(client_configuration=cfg, try_refresh_token=False)
        with open(_SA_NAMESPACE_FILE, encoding="utf-8") as f:
            namespace = f.read().strip()
        return Connection(
            host=cfg.host.rstrip("/"),
            ssl_context=_ssl_context(cfg),
            credentials=TokenFile(SERVICE_TOKEN_FILENAME),
            namespace=namespace,
        )
    user = KubeconfigUser(kubeconfig=kubeconfig, context=context)
    _, chosen = kube_config.list_kube_config_contexts(config_file=kubeconfig)
    if context is not None:
        contexts, _ = kube_config.list_kube_config_contexts(config_file=kubeconfig)
        chosen = next(c for c in contexts if c["name"] == context)
    return Connection(
        host=user.configuration.host.rstrip("/"),
        ssl_context=_ssl_context(user.configuration),
        credentials=user,
        namespace=chosen.get("context", {}).get("namespace") or "default",
    )


def _ssl_context(cfg: Configuration) -> ssl.SSLContext | bool:
    if not cfg.host.startswith("https://"):
        return False
    if not cfg.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    if cfg.cert_file:
        context.load_cert_chain(cfg.cert_file, cfg.key_file)
    return context
