"""`kubegate dev-cluster up|down|env|status`: a local control plane for development and tests."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from kubegate.devcluster.cluster import ComponentHealth, check_health, read_state, start_cluster, stop_cluster
from kubegate.devcluster.errors import DevClusterError
from kubegate.devcluster.layout import default_state_dir
from kubegate.devcluster.state import ClusterState

_DESCRIPTION = """\
Run a local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) on loopback
ports, from binaries built by `make control-plane` (hack/build-control-plane.sh). Pods never run
(there is no kubelet), but API objects, garbage collection, service-account tokens, TokenRequest and
TokenReview work for real.
"""
_STATE_DIR_HELP = (
    "directory for certificates, etcd data, kubeconfig, logs and state "
    "(default: $KUBEGATE_STATE_DIR, else $KUBEGATE_CACHE_DIR/clusters/NAME; the cache dir defaults to "
    "~/.cache/kubegate)"
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default="dev", help="cluster name; picks the default state dir (default: dev)")
    common.add_argument("--state-dir", type=Path, help=_STATE_DIR_HELP)

    parser = subparsers.add_parser(
        "dev-cluster",
        description=_DESCRIPTION,
    )
    actions = parser.add_subparsers(dest="dev_cluster_action", metavar="ACTION", required=True)

    up = actions.add_parser(
        "up",
        parents=[common],
        help="start the cluster, or confirm it is already running",
        description="Start etcd, kube-apiserver and kube-controller-manager on free loopback ports with "
        "fresh certificates, write an admin kubeconfig, and wait until all are healthy and the default "
        "ServiceAccount exists. Does nothing if the cluster already runs and is healthy; a stopped or "
        "broken one is cleaned up and started afresh. The processes keep running after this command. To "
        "change --apiserver-arg of a running cluster, run `down` first.",
    )
    up.add_argument(
        "--apiserver-arg",
        action="append",
        default=[],
        metavar="--FLAG=VALUE",
        help="extra kube-apiserver flag, replacing its default; repeatable; write it as --apiserver-arg=--flag=value",
    )
    up.set_defaults(handler=_up)

    down = actions.add_parser(
        "down",
        parents=[common],
        help="stop the cluster and delete its state",
        description="Stop every process of the cluster (SIGTERM, then SIGKILL after 15 s), wait until their "
        "ports are free, and delete certificates, etcd data, kubeconfigs and state. Logs stay in "
        "STATE_DIR/logs until the next `up`. Does nothing if no cluster is recorded.",
    )
    down.set_defaults(handler=_down)

    env = actions.add_parser(
        "env",
        parents=[common],
        help="print shell exports for using the cluster",
        description="Print `export KUBECONFIG=...` for the running cluster, and a PATH line that puts the "
        "cluster's own kubectl first; use it as "
        '`eval "$(kubegate dev-cluster env)"`. Exits 1 if the cluster is not up and healthy.',
    )
    env.set_defaults(handler=_env)

    status = actions.add_parser(
        "status",
        parents=[common],
        help="show the cluster's processes, ports and health",
        description="Print each component with its pid, ports and health. Exits 0 if every component is "
        "healthy, 1 otherwise.",
    )
    status.set_defaults(handler=_status)


def _state_dir(args: argparse.Namespace) -> Path:
    state_dir: Path | None = args.state_dir
    return state_dir.expanduser() if state_dir is not None else default_state_dir(args.name)


def _reported(action: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn a DevClusterError into its message on stderr and exit code 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return action(args)
        except DevClusterError as error:
            print(f"kubegate dev-cluster {args.dev_cluster_action}: {error}", file=sys.stderr)
            return 1

    return run


@_reported
def _up(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    try:
        state = start_cluster(
            state_dir=state_dir,
            name=args.name,
            apiserver_args=args.apiserver_arg,
            progress=lambda line: print(line, flush=True),
        )
    except KeyboardInterrupt:
        print("interrupted; stopped whatever had started", file=sys.stderr)
        return 130
    print(f"dev cluster {state.name!r} is up: kube-apiserver {state.apiserver_url}, kubeconfig {state.kubeconfig}")
    print(f'use it with: eval "$({_command("env", args)})"')
    return 0


@_reported
def _down(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    if stop_cluster(state_dir, progress=lambda line: print(line, flush=True)):
        print(f"dev cluster stopped; logs kept in {state_dir / 'logs'}")
    else:
        print(f"no dev cluster recorded in {state_dir}; nothing to stop")
    return 0


@_reported
def _env(args: argparse.Namespace) -> int:
    state = _healthy_state(args)
    print(f"export KUBECONFIG={shlex.quote(str(state.kubeconfig))}")
    print(f'export PATH={shlex.quote(str(state.bin_dir))}:"$PATH"')
    return 0


@_reported
def _status(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    state = read_state(state_dir)
    if state is None:
        print(f"no dev cluster recorded in {state_dir}; start one with `{_command('up', args)}`")
        return 1
    report = check_health(state)
    print(f"dev cluster {state.name!r} in {state.state_dir}")
    print(f"kubernetes {state.kubernetes_version}, etcd {state.etcd_version}")
    print(f"kube-apiserver {state.apiserver_url}, kubeconfig {state.kubeconfig}")
    rows = [("COMPONENT", "PID", "PORTS", "HEALTH"), *(_row(health) for health in report)]
    name_width, pid_width, ports_width = (max(len(row[column]) for row in rows) for column in range(3))
    for name, pid, ports, verdict in rows:
        print(f"{name:<{name_width}}  {pid:<{pid_width}}  {ports:<{ports_width}}  {verdict}")
    return 0 if all(health.healthy for health in report) else 1


def _row(health: ComponentHealth) -> tuple[str, str, str, str]:
    component = health.component
    ports = ", ".join(f"{role}={port}" for role, port in component.ports.items())
    verdict = "healthy" if health.healthy else f"UNHEALTHY: {health.detail}"
    return component.name, str(component.pid), ports, verdict


def _healthy_state(args: argparse.Namespace) -> ClusterState:
    state_dir = _state_dir(args)
    state = read_state(state_dir)
    if state is None:
        raise DevClusterError(f"no dev cluster recorded in {state_dir}; start one with `{_command('up', args)}`")
    unhealthy = [health.component.name for health in check_health(state) if not health.healthy]
    if unhealthy:
        raise DevClusterError(
            f"dev cluster in {state_dir} is not healthy ({', '.join(unhealthy)}); see "
            f"`{_command('status', args)}`, or restart it with `{_command('up', args)}`"
        )
    return state


def _command(action: str, args: argparse.Namespace) -> str:
    """The command line for another action on the same cluster, for hints in messages."""
    words = ["kubegate", "dev-cluster", action]
    if args.state_dir is not None:
        words += ["--state-dir", str(args.state_dir)]
    elif args.name != "dev":
        words += ["--name", args.name]
    return shlex.join(words)
