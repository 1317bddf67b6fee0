"""The `kubegate` command: one entry point, one subcommand per job.

A subcommand's module is imported only when that subcommand is asked for, so the command works with the
core install (`pip install kubegate`): a subcommand that needs an extra, or the local control plane that
only a checkout has, says what to install or where to run it instead of failing on an import.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kubegate import __version__


@dataclass(frozen=True, kw_only=True)
class Subcommand:
    name: str
    module: str
    """Its module, whose `register(subparsers)` adds the parser and sets `handler` on the parsed arguments."""
    help: str
    """One line for `kubegate --help`, which imports no subcommand's module."""
    extra: str | None = None
    """The extra it needs beyond the core (`pip install 'kubegate[EXTRA]'`), or None."""
    requires: tuple[str, ...] = ()
    """The extra's top-level modules, looked for before the subcommand runs."""
    not_installed: str = ""
    """What to say when the module is not installed at all (development tooling is not in the wheel)."""


SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand(
        name="crds",
        module="kubegate.resources.cli",
        help="print or write the kubegate CRDs generated from the resource models",
    ),
    Subcommand(
        name="dev-cluster",
        module="kubegate.devcluster.cli",
        help="run a local Kubernetes control plane for development and integration tests",
        not_installed="the local control plane is development tooling and is not part of an installed kubegate: "
        "run it from a checkout of the repository (`make venv`, then `.venv/bin/kubegate dev-cluster ...`)",
    ),
    Subcommand(
        name="operator",
        module="kubegate.operator.cli",
        help="run the operator: StaticTokens become Secrets and the server's validation config",
        extra="operator",
        requires=("kopf",),
    ),
    Subcommand(
        name="server",
        module="kubegate.server.cli",
        help="run the auth server: token API, TokenReview webhook and forward auth",
        extra="server",
        requires=("aiohttp", "multidict", "typing_extensions"),
    ),
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with `command`'s own options when it names a subcommand; the others are listed only."""
    parser = argparse.ArgumentParser(
        prog="kubegate",
        description="Kubernetes-native API authentication: static tokens, OIDC and service-account "
        "exchange declared as custom resources.",
    )
    parser.add_argument("--version", action="version", version=f"kubegate {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for sub in SUBCOMMANDS:
        if sub.name != command:
            subparsers.add_parser(sub.name, help=sub.help)
        elif not _installed(sub.module):
            absent = subparsers.add_parser(sub.name, help=sub.help, add_help=False)
            absent.add_argument("rest", nargs=argparse.REMAINDER)
            absent.set_defaults(handler=_say(f"kubegate {sub.name}: {sub.not_installed}"))
        else:
            register: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]
            register = importlib.import_module(sub.module).register
            register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; every subcommand sets `handler` to a function returning an exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    sub = next(s for s in SUBCOMMANDS if s.name == args.command)
    missing = [name for name in sub.requires if not _installed(name)]
    if missing:
        print(
            f"kubegate {sub.name}: needs the '{sub.extra}' extra ({', '.join(missing)} not installed): "
            f"pip install 'kubegate[{sub.extra}]'",
            file=sys.stderr,
        )
        return 1
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its package is missing
        return False


def _say(message: str) -> Callable[[argparse.Namespace], int]:
    def handler(_: argparse.Namespace) -> int:
        print(message, file=sys.stderr)
        return 1

    return handler


if __name__ == "__main__":
    sys.exit(main())
