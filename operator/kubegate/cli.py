"""The `kubegate` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from kubegate import __version__
from kubegate.devcluster import cli as devcluster_cli
from kubegate.operator import cli as operator_cli
from kubegate.resources import cli as crds_cli
from kubegate.server import cli as server_cli

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

SUBCOMMANDS: tuple[Registrar, ...] = (
    crds_cli.register,
    devcluster_cli.register,
    operator_cli.register,
    server_cli.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubegate",
        description="Kubernetes-native API authentication: static tokens, OIDC and service-account "
        "exchange declared as custom resources.",
    )
    parser.add_argument("--version", action="version", version=f"kubegate {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in SUBCOMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; every subcommand sets `handler` to a function returning an exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
