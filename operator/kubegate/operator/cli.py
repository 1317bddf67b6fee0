"""`kubegate operator`: run the operator (StaticTokens -> Secrets and the validation config)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from kubegate import logs, settings_cli
from kubegate.settings import OperatorSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "operator",
        description="Run the kubegate operator. It turns StaticToken resources into tokens stored in Secrets, "
        "keeps their hashes in the validation config the auth servers read, rotates and expires them, and "
        "creates the bootstrap token. Replicas elect a leader with a Lease: it acts, the others wait to take over. "
        "Every option can also be set by the environment variable shown with it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    settings_cli.add_arguments(parser, OperatorSettings)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_cli.from_arguments(OperatorSettings, args)
    except settings_cli.SettingsError as exc:
        print(f"kubegate operator: {exc}", file=sys.stderr)
        return 2
    logs.setup(settings.log_level)
    from kubegate.kube import NoKubeConfig  # noqa: PLC0415 - see below
    from kubegate.operator.app import run as run_operator  # noqa: PLC0415 - kopf is heavy: load it only to run

    try:
        asyncio.run(run_operator(settings))
    except NoKubeConfig as exc:
        print(f"kubegate operator: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0
