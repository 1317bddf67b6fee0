"""Where the API server is and how to authenticate to it, read once at start-up."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import config as kube_config
from kubernetes.client import Configuration


@dataclass(frozen=True, kw_only=True)
class Connection:
    """How to reach one API server."""

    host: str
    """Base URL, such as https://127.0.0.1:6443."""
    ssl_context: ssl.SSLContext | bool
    """TLS settings; False turns verification off (only when the kubeconfig asks for it)."""
    authorization: Callable[[], str | None]
    """Returns the current `Authorization` header value (tokens may be refreshed), or None."""
    namespace: str
    """The namespace of the kubeconfig context, or of the pod when in a cluster."""


_SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def load_connection(*, kubeconfig: str | None = None, context: str | None = None) -> Connection:
    """In a pod, the service account; elsewhere the kubeconfig (`KUBECONFIG` or ~/.kube/config)."""
    cfg = Configuration()
    namespace = "default"
    # The kubernetes package reads KUBECONFIG once, at import; read it at call time instead.
    kubeconfig = kubeconfig or os.environ.get("KUBECONFIG") or None
    if kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ:
        kube_config.load_incluster_config(client_configuration=cfg)
        with open(_SA_NAMESPACE_FILE, encoding="utf-8") as f:
            namespace = f.read().strip()
    else:
        kube_config.load_kube_config(
            config_file=kubeconfig, context=context, client_configuration=cfg, persist_config=False
        )
        _, active = kube_config.list_kube_config_contexts(config_file=kubeconfig)
        chosen = active
        if context is not None:
            contexts, _ = kube_config.list_kube_config_contexts(config_file=kubeconfig)
            chosen = next(c for c in contexts if c["name"] == context)
        namespace = chosen.get("context", {}).get("namespace") or "default"
    return Connection(
        host=cfg.host.rstrip("/"),
        ssl_context=_ssl_context(cfg),
        authorization=_authorization(cfg),
        namespace=namespace,
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


def _authorization(cfg: Configuration) -> Callable[[], str | None]:
    def current() -> str | None:
        # The in-cluster loader installs a hook that re-reads the projected, rotating token file.
        hook: Callable[[Configuration], None] | None = getattr(cfg, "refresh_api_key_hook", None)
        if hook is not None:
            hook(cfg)
        value = cfg.get_api_key_with_prefix("authorization")
        return str(value) if value else None

    return current
