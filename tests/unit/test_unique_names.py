"""A class name means one thing in the whole package: a newcomer who finds `TokenReviewer` in one module
must not meet a different `TokenReviewer` in another."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import kubegate

ROOT = Path(kubegate.__file__).parent


def test_class_names_are_unique_across_the_package() -> None:
    homes: defaultdict[str, list[str]] = defaultdict(list)
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.ClassDef):
                homes[node.name].append(str(path.relative_to(ROOT)))
    assert {name: where for name, where in homes.items() if len(where) > 1} == {}
