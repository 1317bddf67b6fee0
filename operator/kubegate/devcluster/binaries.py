"""Find the control-plane binaries that hack/build-control-plane.sh built for hack/versions.env."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kubegate.devcluster.errors import DevClusterError

VERSIONS_FILE = Path("hack") / "versions.env"
BINARY_NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
_BUILD_HINT = "run `make control-plane` or `hack/build-control-plane.sh` from the kubegate checkout"


@dataclass(frozen=True)
class Binaries:
    """The directory holding etcd, kube-apiserver, kube-controller-manager and kubectl."""

    directory: Path

    @property
    def etcd(self) -> Path:
        return self.directory / "etcd"

    @property
    def kube_apiserver(self) -> Path:
        return self.directory / "kube-apiserver"

    @property
    def kube_controller_manager(self) -> Path:
        return self.directory / "kube-controller-manager"

    @property
    def kubectl(self) -> Path:
        return self.directory / "kubectl"


def parse_versions_env(text: str) -> dict[str, str]:
    """Read the KEY=VALUE lines of versions.env; it is sourced by bash, so comments and blanks occur."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def find_versions_file(starts: Iterable[Path]) -> Path | None:
    """The first hack/versions.env found walking up from each start directory in turn."""
    for start in starts:
        for directory in (start, *start.parents):
            candidate = directory / VERSIONS_FILE
            if candidate.is_file():
                return candidate
    return None


def cache_root(env: Mapping[str, str]) -> Path:
    """Same rule as the build script: KUBEGATE_CACHE_DIR, else ~/.cache/kubegate."""
    configured = env.get("KUBEGATE_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "kubegate"


def bin_dir_for(versions_file: Path, env: Mapping[str, str]) -> Path:
    """The directory the build script writes for the versions pinned in `versions_file`."""
    versions = parse_versions_env(versions_file.read_text(encoding="utf-8"))
    try:
        tag = f"k8s-{versions['KUBE_VERSION']}_etcd-{versions['ETCD_VERSION']}"
    except KeyError as missing:
        raise DevClusterError(
            f"{versions_file} does not set {missing.args[0]}; restore it from git "
            "(it must set KUBE_VERSION and ETCD_VERSION)"
        ) from None
    return cache_root(env) / "bin" / tag


def find_binaries(*, env: Mapping[str, str] | None = None, search_from: Iterable[Path] | None = None) -> Binaries:
    """Locate the binaries: KUBEGATE_BIN_DIR if set, else the cache directory named by versions.env.

    versions.env is searched upward from this package (an editable install inside the checkout) and
    from the working directory (a regular install used from the checkout).
    """
    env = os.environ if env is None else env
    override = env.get("KUBEGATE_BIN_DIR")
    if override:
        directory = Path(override).expanduser()
        where = f"KUBEGATE_BIN_DIR={override}"
    else:
        starts = search_from if search_from is not None else (Path(__file__).resolve().parent, Path.cwd())
        versions_file = find_versions_file(starts)
        if versions_file is None:
            raise DevClusterError(
                f"cannot find {VERSIONS_FILE} above {Path(__file__).parent} or the working directory; "
                "run kubegate from its checkout, or set KUBEGATE_BIN_DIR to a directory holding "
                f"{', '.join(BINARY_NAMES)}"
            )
        directory = bin_dir_for(versions_file, env)
        where = f"the versions in {versions_file}"
    missing = [name for name in BINARY_NAMES if not os.access(directory / name, os.X_OK)]
    if missing:
        raise DevClusterError(
            f"control-plane binaries missing in {directory} (from {where}): {', '.join(missing)}; {_BUILD_HINT}"
        )
    return Binaries(directory=directory)


@dataclass(frozen=True)
class Versions:
    kubernetes: str
    etcd: str


def binary_versions(binaries: Binaries) -> Versions:
    """Ask the binaries themselves: KUBEGATE_BIN_DIR may hold a build other than versions.env names."""
    # `kube-apiserver --version` prints "Kubernetes v1.36.3"; `etcd --version` starts "etcd Version: 3.6.16".
    kubernetes = _version_output(binaries.kube_apiserver).split()[-1]
    etcd = _version_output(binaries.etcd).splitlines()[0].rpartition(":")[2].strip()
    return Versions(kubernetes=kubernetes, etcd=etcd if etcd.startswith("v") else f"v{etcd}")


def _version_output(binary: Path) -> str:
    try:
        result = subprocess.run(  # noqa: S603 - a binary of the control-plane build
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise DevClusterError(f"{binary} --version failed ({error}); {_BUILD_HINT}") from error
    return result.stdout.strip() or "unknown"
