"""Imports point down only: a module imports from its own layer or below (DESIGN.md, "Layers"; the README's
Layout section lists them). The layers, from the bottom:

1. contracts: formats and models every process agrees on (no I/O);
2. kube: the Kubernetes API client and reflector;
3. state: in-memory mirrors of what the operator publishes, and their watchers;
4. verify: the verification engine (no private key, no HTTP server, no kopf);
5. operator, web (HTTP plumbing), client_tokens (minting, key rotation: the private half);
6. methods, server;
7. the command line.

`devcluster` (the local control plane) is development tooling: nothing of the product imports it, except
the command line, lazily, for `kubegate dev-cluster`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kubegate

ROOT = Path(kubegate.__file__).parent
LAYERS: dict[str, int] = {
    "contracts": 1,
    "resources": 1,
    "validation_config": 1,
    "settings": 1,
    "logs": 1,
    "kube": 2,
    "state": 3,
    "verify": 4,
    "operator": 5,
    "web": 5,
    "client_tokens": 5,
    "methods": 6,
    "server": 6,
    "cli": 7,
    "settings_cli": 1,
    "__main__": 7,
}
TOOLING = "devcluster"
FRAMEWORKS = {
    "aiohttp.web": {"web", "operator"},  # the adapter, and the operator's own liveness probe
    "kopf": {"operator"},
}
"""Third-party modules only some parts may import: a framework is known in one place."""


def _part(module: str) -> str:
    """`kubegate.web.errors` -> `web`."""
    return module.split(".")[1] if module.count(".") >= 1 else ""


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def _imports(module: str, path: Path) -> list[tuple[str, bool]]:
    """Every module `path` imports, and whether the import is inside a function (lazy)."""
    tree = ast.parse(path.read_text(), str(path))
    lazy_nodes = {
        id(node)
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(function)
    }
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in lazy_nodes) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            found.append((base, id(node) in lazy_nodes))
            found += [(f"{base}.{alias.name}", id(node) in lazy_nodes) for alias in node.names]
    return found


def violations() -> list[str]:
    problems = []
    for module, path in _modules():
        if module == "kubegate":
            continue
        part = _part(module)
        for imported, lazy in _imports(module, path):
            if imported.startswith("kubegate."):
                target = _part(imported)
                if target not in LAYERS and target != TOOLING:
                    continue  # `from kubegate import x` of a name, or a module that does not exist
                if part == TOOLING:
                    if target == TOOLING or LAYERS[target] <= LAYERS["kube"]:
                        continue
                    problems.append(f"{module} (dev tooling) imports {imported}")
                elif target == TOOLING:
                    if not (lazy and LAYERS[part] == LAYERS["cli"]):
                        problems.append(f"{module} imports dev tooling {imported}")
                elif LAYERS[target] > LAYERS[part]:
                    problems.append(f"{module} (layer {LAYERS[part]}) imports {imported} (layer {LAYERS[target]})")
            for framework, allowed in FRAMEWORKS.items():
                if (imported == framework or imported.startswith(framework + ".")) and part not in allowed:
                    problems.append(f"{module} imports {imported}, which only {', '.join(sorted(allowed))} may")
    return problems


def test_every_part_has_a_layer() -> None:
    parts = {_part(module) for module, _ in _modules() if module != "kubegate"}
    assert parts <= {*LAYERS, TOOLING}, f"give these a layer here and in the README: {parts - {*LAYERS, TOOLING}}"


def test_imports_point_down_only() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from kubegate.server.app import serve\n", "kubegate.verify.x (layer 4) imports kubegate.server.app"),
        ("import kopf\n", "kubegate.verify.x imports kopf, which only operator may"),
        ("from aiohttp import web\n", "kubegate.verify.x imports aiohttp.web, which only operator, web may"),
        ("from kubegate.devcluster import cli\n", "kubegate.verify.x imports dev tooling kubegate.devcluster"),
    ],
)
def test_the_check_sees_a_violation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, expected: str
) -> None:
    """The check is not blind: a planted upward import is reported."""
    package = tmp_path / "kubegate"
    (package / "verify").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "verify" / "__init__.py").write_text("")
    (package / "verify" / "x.py").write_text(source)
    monkeypatch.setattr(__import__(__name__), "ROOT", package)
    assert any(problem.startswith(expected) for problem in violations()), violations()
