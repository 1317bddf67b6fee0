"""`kubegate server`: run the auth server (token API, TokenReview webhook, forward auth)."""

from __future__ import annotations

import argparse
import asyncio
import socket
import ssl
import sys
from collections.abc import Callable, Coroutine
from typing import Any

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
    from kubegate.server.workers import bind, run_workers  # noqa: PLC0415 - as above

    def serve_one(sock: socket.socket | None) -> int:
        try:
            _event_loop_runner()(serve(settings, sock=sock))
        except (OSError, ssl.SSLError, BindingsError, NoKubeConfig) as exc:
            print(f"kubegate server: cannot start: {exc}", file=sys.stderr)
            return 1
        return 0

    if settings.workers == 1:
        return serve_one(None)
    try:
        sock = bind(*settings.host_port)
    except OSError as exc:
        print(f"kubegate server: cannot listen on {settings.address}: {exc}", file=sys.stderr)
        return 1
    return run_workers(settings.workers, sock, serve_one)


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop's runner where uvloop is installed (the server extra brings it): its event loop answers a
    request with less CPU than asyncio's (bench/README.md, "The server's stack")."""
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return asyncio.run
    return uvloop.run
