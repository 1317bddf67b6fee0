"""Real kubegate processes for integration tests: the operator, auth servers, a TCP forwarder.

Each process runs `python -m kubegate ...` with its own KUBECONFIG, logs to a file, dies with the test
session, and is stopped by the fixture that started it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from kubegate.devcluster import ClusterState, Kubectl
from kubegate.devcluster.ports import pick_free_ports
from kubegate.devcluster.processes import spawn, stop
from support import eventually

STOP_TIMEOUT = 15.0
_CLIENT_TOKEN = re.compile(r'client_token="([^"]+)"')


@dataclass
class KubegateProcess:
    name: str
    pid: int
    start_time: int
    log_file: Path

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def stop(self) -> None:
        stop(self.pid, self.start_time, timeout=STOP_TIMEOUT)


def start_kubegate(name: str, args: list[str], *, kubeconfig: Path, log_dir: Path) -> KubegateProcess:
    log_file = log_dir / f"{name}.log"
    # `env` sets the variable, then execs python in the same process, so the death signal still holds.
    started = spawn(
        ["env", f"KUBECONFIG={kubeconfig}", sys.executable, "-m", "kubegate", *args],
        log_file=log_file,
        die_with_parent=True,
    )
    if started.start_time is None:
        raise RuntimeError(f"{name} exited at once:\n{log_file.read_text(errors='replace')}")
    return KubegateProcess(name=name, pid=started.pid, start_time=started.start_time, log_file=log_file)


def start_operator(cluster: ClusterState, namespace: str, log_dir: Path) -> KubegateProcess:
    (health_port,) = pick_free_ports(1)
    return start_kubegate(
        f"operator-{namespace}",
        [
            "operator",
            "--standalone",
            f"--operator-namespace={namespace}",
            f"--namespace={namespace}",
            f"--health-address=127.0.0.1:{health_port}",
        ],
        kubeconfig=cluster.kubeconfig,
        log_dir=log_dir,
    )


def bootstrap_token(operator: KubegateProcess, *, timeout: float = 60.0) -> str:
    def found() -> str | None:
        match = _CLIENT_TOKEN.search(operator.log())
        return match.group(1) if match else None

    token: str = eventually(found, timeout=timeout, what=f"the bootstrap token in the log of {operator.name}")
    return token


@dataclass
class ServerProcess:
    process: KubegateProcess
    url: str

    def stop(self) -> None:
        self.process.stop()


def start_server(
    name: str,
    *,
    kubeconfig: Path,
    operator_namespace: str,
    log_dir: Path,
    extra: list[str] | None = None,
    port: int | None = None,
) -> ServerProcess:
    if port is None:
        (port,) = pick_free_ports(1)
    process = start_kubegate(
        name,
        [
            "server",
            "--insecure-http",
            f"--address=127.0.0.1:{port}",
            f"--operator-namespace={operator_namespace}",
            f"--token-namespace={operator_namespace}",
            *(extra or []),
        ],
        kubeconfig=kubeconfig,
        log_dir=log_dir,
    )
    return ServerProcess(process=process, url=f"http://127.0.0.1:{port}")


async def wait_ready(server: ServerProcess, *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(server.url + "/readyz") as response:
                    if response.status == 200:
                        return
            if time.monotonic() >= deadline:
                raise AssertionError(f"{server.process.name} not ready after {timeout:.0f}s:\n{server.process.log()}")
            await asyncio.sleep(0.1)


def install_crds(kubectl: Kubectl) -> None:
    root = Path(__file__).resolve().parents[2]
    kubectl("apply", "-f", str(root / "crds"))
    kubectl("wait", "--for=condition=Established", "crd/statictokens.kubegate.dev", "--timeout=60s")


def apply_static_token(kubectl: Kubectl, namespace: str, name: str, *, groups: list[str] | None = None) -> None:
    resource = {
        "apiVersion": "kubegate.dev/v1alpha1",
        "kind": "StaticToken",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"groups": groups or []},
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(resource))


def read_token(kubectl: Kubectl, namespace: str, secret: str, *, timeout: float = 60.0) -> str:
    """The token the operator wrote to `secret`, once it is there."""

    def token() -> str | None:
        result = kubectl("get", "secret", secret, "-n", namespace, "-o", "jsonpath={.data.token}", check=False)
        if result.returncode != 0 or not result.stdout:
            return None
        return base64.b64decode(result.stdout).decode()

    value: str = eventually(token, timeout=timeout, what=f"Secret {namespace}/{secret} to hold a token")
    return value


def token_kubeconfig(path: Path, *, server: str, ca_file: Path) -> Path:
    """A kubeconfig with no credentials of its own, for `kubectl --token`."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    path.write_text(json.dumps(config))
    return path


def webhook_kubeconfig(path: Path, server_url: str) -> Path:
    """The file kube-apiserver reads: `clusters` is the webhook, `users` how the apiserver calls it."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "kubegate", "cluster": {"server": f"{server_url}/apis/authentication.k8s.io/v1/tokenreviews"}}
        ],
        "users": [{"name": "kube-apiserver", "user": {}}],
        "contexts": [{"name": "webhook", "context": {"cluster": "kubegate", "user": "kube-apiserver"}}],
        "current-context": "webhook",
    }
    path.write_text(json.dumps(config))
    return path
