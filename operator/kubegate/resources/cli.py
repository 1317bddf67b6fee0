"""`kubegate crds`: print or write the CustomResourceDefinitions generated from the models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kubegate.resources.crd import render_all


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "crds",
        description="Generate the StaticToken and OIDCProvider CustomResourceDefinitions from the "
        "pydantic models. Without options the YAML goes to standard output, ready for `kubectl apply -f -`.",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="write one file per CRD into DIR instead of printing them (the repository keeps them in crds/)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="with --output-dir: write nothing, exit 1 when a file in DIR differs from what the models generate",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    rendered = render_all()
    out_dir: Path | None = args.output_dir
    if out_dir is None:
        if args.check:
            print("kubegate crds: --check needs --output-dir DIR", file=sys.stderr)
            return 2
        sys.stdout.write("---\n".join(rendered.values()))
        return 0
    if args.check:
        stale = [name for name, text in rendered.items() if _read(out_dir / name) != text]
        for name in stale:
            print(f"{out_dir / name} is stale: run `kubegate crds --output-dir {out_dir}`", file=sys.stderr)
        return 1 if stale else 0
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (out_dir / name).write_text(text, encoding="utf-8")
        print(f"wrote {out_dir / name}")
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
