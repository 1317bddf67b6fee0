"""Start control-plane processes detached from the terminal, and stop them again.

Processes outlive the Python process that started them (the CLI's `up` exits), so they are found again
by pid. A pid alone could by then belong to an unrelated process, so each is identified by pid plus the
start time the kernel records for it (Linux /proc).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubegate.devcluster.errors import DevClusterError

_PR_SET_PDEATHSIG = 1
_PROC = Path("/proc")

# Children of this Python process, kept referenced until stopped: a Popen garbage-collected while its
# process runs warns, and waiting through it reaps the process once it exits.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Started:
    pid: int
    start_time: int | None
    """None when the process exited at once; its log says why."""


def spawn(argv: Sequence[str], *, log_file: Path, die_with_parent: bool) -> Started:
    """Start a process in its own session, its output in `log_file` (replacing an earlier run's).

    A new session keeps Ctrl-C in the terminal from reaching it. With `die_with_parent` the kernel kills
    it when the calling thread exits, even by SIGKILL, so a killed test run leaves nothing behind.
    """
    if not _PROC.is_dir():
        raise DevClusterError(
            "the dev cluster needs Linux: it tracks its processes through /proc; "
            "elsewhere use kind with kind-config.yaml"
        )
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("wb") as log:
        try:
            child = subprocess.Popen(  # noqa: S603 - argv is built by this package from fixed flags
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with(os.getpid()) if die_with_parent else None,  # noqa: PLW1509
            )
        except OSError as error:
            raise DevClusterError(f"cannot start {argv[0]}: {error}; rebuild the control plane") from error
    _children[child.pid] = child
    return Started(pid=child.pid, start_time=start_time(child.pid))


def _die_with(parent_pid: int) -> Callable[[], None]:
    # Looked up before fork: between fork and exec the child should do as little as possible.
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def set_parent_death_signal() -> None:
        if prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(1)
        # The parent may have died between fork and prctl; then no signal would ever come.
        if os.getppid() != parent_pid:
            os._exit(1)

    return set_parent_death_signal


def start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` in clock ticks since boot, or None if there is no such process."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text(encoding="ascii")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces; count fields after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        _reap(pid)
        return None
    return int(fields[19])


def is_running(pid: int, started: int) -> bool:
    return start_time(pid) == started


def stop(pid: int, started: int, *, timeout: float) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds; returns once the process is gone."""
    if not is_running(pid, started):
        return
    _signal(pid, signal.SIGTERM)
    if _wait_gone(pid, started, timeout):
        return
    _signal(pid, signal.SIGKILL)
    if not _wait_gone(pid, started, 10.0):
        raise DevClusterError(f"process {pid} survived SIGKILL; check it with `ps -p {pid}`")


def _signal(pid: int, signum: signal.Signals) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return
    except PermissionError as error:
        raise DevClusterError(
            f"not allowed to signal process {pid}: {error}; was it started by another user?"
        ) from error


def _wait_gone(pid: int, started: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while is_running(pid, started):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _reap(pid: int) -> None:
    # A child of this very process stays a zombie until waited for; other zombies belong to others.
    child = _children.pop(pid, None)
    if child is not None:
        child.poll()


def stop_all(processes: Sequence[subprocess.Popen[bytes]], *, timeout: float = 20.0) -> None:
    """SIGTERM every child at once, then wait for each; a child still running after `timeout` is killed."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
