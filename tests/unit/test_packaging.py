"""What `pip install kubegate` gives: the verification core and its command, without kopf, an aiohttp server or
the local control plane; the operator and the server come with their extras.

The wheel is built from a copy of the sources and unpacked; the checks import from it, not from the checkout.
"""

from __future__ import annotations

import email
import importlib.metadata
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from kubegate.cli import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[2]

CORE_PACKAGES = (
    "kubegate.contracts",
    "kubegate.resources",
    "kubegate.validation_config",
    "kubegate.verify",
    "kubegate.state",
    "kubegate.kube",
)
"""What an application imports to verify credentials: no module of these may need kopf or aiohttp.web."""

CORE_DEPENDENCIES = {"aiohttp", "kubernetes", "pydantic", "pyjwt", "pyyaml"}

# Importing a name set to None in sys.modules raises ImportError: as if the distribution were not installed.
BLOCK = "for name in ('kopf', 'aiohttp.web'):\n    sys.modules[name] = None\n"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "operator", source / "operator", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(work / "dist")]
    if _setuptools_major() >= 68:  # the build backend pyproject.toml asks for: `make venv` installs it
        command.append("--no-build-isolation")
    subprocess.run([*command, str(source)], check=True, timeout=120)
    (built,) = (work / "dist").glob("kubegate-*.whl")
    return built


@pytest.fixture(scope="module")
def unpacked(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def test_the_wheel_leaves_out_the_local_control_plane(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "kubegate/verify/engine.py" in names
    assert "kubegate/operator/app.py" in names
    assert "kubegate/server/app.py" in names
    assert not [name for name in names if name.startswith("kubegate/devcluster")]


def test_kopf_is_an_extra_and_the_core_holds_only_what_it_imports(wheel: Path) -> None:
    requirements = _requirements(wheel)
    core = {canonicalize_name(r.name) for r in requirements if r.marker is None}
    assert core == CORE_DEPENDENCIES
    assert canonicalize_name("kopf") in _names(requirements, "operator")
    assert canonicalize_name("kopf") not in _names(requirements, "server")
    (everything,) = [r for r in requirements if r.marker is not None and r.marker.evaluate({"extra": "all"})]
    assert everything.name == "kubegate"
    assert everything.extras == {"operator", "server"}


def test_each_subcommand_looks_for_modules_its_extra_installs(wheel: Path) -> None:
    requirements = _requirements(wheel)
    with_extras = [sub for sub in SUBCOMMANDS if sub.extra is not None]
    assert {sub.extra for sub in with_extras} == {"operator", "server"}
    for sub in with_extras:
        assert sub.requires
        assert {canonicalize_name(m) for m in sub.requires} <= _names(requirements, sub.extra or "")


def test_the_core_imports_without_kopf_or_an_aiohttp_server(unpacked: Path) -> None:
    script = BLOCK + (
        "import importlib, pkgutil\n"
        f"for name in {CORE_PACKAGES!r}:\n"
        "    package = importlib.import_module(name)\n"
        "    for module in pkgutil.walk_packages(package.__path__, name + '.'):\n"
        "        importlib.import_module(module.name)\n"
        "import kubegate, kubegate.cli, kubegate.settings\n"
        f"assert kubegate.__path__ == [{str(unpacked / 'kubegate')!r}], kubegate.__path__\n"
        "print('imported')\n"
    )
    assert _run(unpacked, script).stdout == "imported\n"


def test_the_command_works_on_the_core_and_names_a_missing_extra(unpacked: Path) -> None:
    crds = _run(unpacked, BLOCK + "from kubegate.cli import main\nsys.exit(main(['crds']))")
    assert "kind: CustomResourceDefinition" in crds.stdout
    refused = _run(unpacked, BLOCK + "from kubegate.cli import main\nsys.exit(main(['operator']))", check=False)
    assert refused.returncode == 1
    assert "pip install 'kubegate[operator]'" in refused.stderr


def test_dev_cluster_outside_a_checkout_says_it_is_development_tooling(unpacked: Path) -> None:
    refused = _run(
        unpacked, "from kubegate.cli import main\nsys.exit(main(['dev-cluster', 'up', '--name', 'x']))", check=False
    )
    assert refused.returncode == 1
    assert "development tooling" in refused.stderr
    assert "checkout" in refused.stderr


def _run(site: Path, script: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    # -I: neither PYTHONPATH nor the working directory, so kubegate comes from `site` alone.
    script = f"import sys\nsys.path.insert(0, {str(site)!r})\n{script}"
    return subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, check=check, timeout=60)


def _requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        message = email.message_from_bytes(archive.read(metadata))
    return [Requirement(line) for line in message.get_all("Requires-Dist") or []]


def _names(requirements: list[Requirement], extra: str) -> set[str]:
    return {
        canonicalize_name(r.name) for r in requirements if r.marker is not None and r.marker.evaluate({"extra": extra})
    }


def _setuptools_major() -> int:
    try:
        return int(importlib.metadata.version("setuptools").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return 0
