"""`kubegate server`: run the auth server (token API, TokenReview webhook, forward auth)."""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys

from kubegate import logs, settings_cli
from kubegate.settings import ServerSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "server",
        description="Run the kubegate auth server. It watches the validation config the operator writes, "
        "verifies credentials from memory, serves Flipt's /auth/v1 API, answers kube-apiserver as a TokenReview "
        "webhook and ingress proxies at /auth/v1/verify. It is stateless: run as many replicas as needed. "
        "Every option can also be set by the environment variable shown with it.",
    )
    settings_cli.add_arguments(parser, ServerSettings)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_cli.from_arguments(ServerSettings, args)
    except settings_cli.SettingsError as exc:
        print(f"kubegate server: {exc}", file=sys.stderr)
        return 2
    logs.setup(settings.log_level)
    from kubegate.kube import NoKubeConfig  # noqa: PLC0415 - see below
    from kubegate.methods.kubernetes.bindings import BindingsError  # noqa: PLC0415 - see below
    from kubegate.server.app import serve  # noqa: PLC0415 - the app is loaded only to run it

    try:
        asyncio.run(serve(settings))
    except (OSError, ssl.SSLError, BindingsError, NoKubeConfig) as exc:
        print(f"kubegate server: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0
