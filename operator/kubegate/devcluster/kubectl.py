"""Run the cluster's own kubectl against it."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

from kubegate.devcluster.errors import DevClusterError
from kubegate.devcluster.state import ClusterState
from kubegate.resources.crd import KINDS


class Kubectl:
    """The kubectl built with the cluster, using its admin kubeconfig unless told another one (for
    example an additional apiserver's)."""

    def __init__(self, state: ClusterState) -> None:
        self.state = state

    def __call__(
        self,
        *args: str,
        stdin: str | None = None,
        kubeconfig: Path | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl; with `check`, a non-zero exit raises DevClusterError carrying its output."""
        result = subprocess.run(  # noqa: S603 - the binary is the cluster's, the arguments the caller's
            [str(self.state.kubectl), f"--kubeconfig={kubeconfig or self.state.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise DevClusterError(
                f"kubectl {shlex.join(args)} exited {result.returncode}:\n"
                f"stderr: {result.stderr.strip()}\nstdout: {result.stdout.strip()}"
            )
        return result

    def install_crds(self, directory: Path) -> list[str]:
        """Apply the CRDs in `directory` (the repository's `crds/`) and wait until the API serves every kubegate
        kind; returns the CRD names."""
        self("apply", "-f", str(directory))
        names = [f"{kind.plural}.{kind.group}" for kind in KINDS]
        self("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{name}" for name in names))
        return names

    def json(self, *args: str, stdin: str | None = None, kubeconfig: Path | None = None) -> Any:
        """`kubectl ... -o json`, parsed."""
        return json.loads(self(*args, "-o", "json", stdin=stdin, kubeconfig=kubeconfig).stdout)
