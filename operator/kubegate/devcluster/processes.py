"""Start processes with their output in a log file, and stop them again: the one place tests, benchmarks
and the dev cluster do so.

Two kinds:
- control-plane components (`spawn`, `stop`) are detached from the terminal and outlive the Python
  process that started them (the CLI's `up` exits), so they are found again by pid. A pid alone could by
  then belong to an unrelated process, so each is identified by pid plus the start time the kernel
  records for it (Linux /proc).
- kubegate's own processes in tests and benchmarks (`start_kubegate`, `start_child`) are children of the
  calling process, stopped by it (`Child.stop`, `stop_all`); `wait_ready` polls a URL until it answers
  200 and `bootstrap_token` reads the operator's first admin token from its log.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
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
    try:
        child = _popen(argv, log_file=log_file, die_with_parent=die_with_parent, new_session=True)
    except OSError as error:
        raise DevClusterError(f"cannot start {argv[0]}: {error}; rebuild the control plane") from error
    _children[child.pid] = child
    return Started(pid=child.pid, start_time=start_time(child.pid))


def _popen(
    argv: Sequence[str],
    *,
    log_file: Path,
    die_with_parent: bool,
    new_session: bool,
    env: Mapping[str, str] | None = None,
    append: bool = False,
) -> subprocess.Popen[bytes]:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab" if append else "wb") as log:
        return subprocess.Popen(  # noqa: S603 - argv is built by kubegate's own code and tests
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            start_new_session=new_session,
            preexec_fn=_die_with(os.getpid()) if die_with_parent else None,  # noqa: PLW1509
        )


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


# --- kubegate's own processes in tests and benchmarks ------------------------------------------------------

STOP_TIMEOUT = 20.0
_CLIENT_TOKEN = re.compile(r'client_token="([^"]+)"')


class Child:
    """A process started by this one (`start_child`, `start_kubegate`), its output in `log_file`."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_file: Path) -> None:
        self.name = name
        self.log_file = log_file
        self._popen = popen

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has exited; None while it runs."""
        return self._popen.poll()

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def send_signal(self, signum: int) -> None:
        """Signal the process without waiting for it (`stop` reaps it later)."""
        if self._popen.poll() is None:
            self._popen.send_signal(signum)

    def wait(self, timeout: float) -> None:
        """Until the process exits; SIGKILL after `timeout` seconds."""
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait()

    def stop(self, *, kill: bool = False, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM (SIGKILL with `kill`), then SIGKILL after `timeout` seconds; returns once it is gone."""
        stop_all([self], kill=kill, timeout=timeout)

    def wait_ready(self, url: str, *, timeout: float = 60.0) -> None:
        """Until `url` answers 200; fails at once, with the log, if the process exits first."""
        wait_ready(url, timeout=timeout, what=self.name, child=self)


def start_child(
    name: str,
    argv: Sequence[str],
    *,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cpus: str | None = None,
    die_with_parent: bool = True,
    append: bool = False,
) -> Child:
    """Start `argv` with its output in `log_file` (replaced, or appended to with `append`).

    `env` is added to this process's environment. `cpus` pins it (taskset's list, such as "1"). With
    `die_with_parent` the kernel kills it when the calling thread exits, even by SIGKILL: start children
    from the main thread (or one that outlives them).
    """
    command = ["taskset", "-c", cpus, *argv] if cpus is not None else list(argv)
    popen = _popen(
        command,
        log_file=log_file,
        die_with_parent=die_with_parent,
        new_session=False,
        env={**os.environ, **(env or {})},
        append=append,
    )
    return Child(name, popen, log_file)


def start_kubegate(
    name: str,
    args: Sequence[str],
    *,
    log_file: Path,
    kubeconfig: Path | None = None,
    env: Mapping[str, str] | None = None,
    cpus: str | None = None,
    append: bool = False,
) -> Child:
    """`python -m kubegate <args>` with this interpreter, reaching the cluster of `kubeconfig` if given."""
    extra = {**({"KUBECONFIG": str(kubeconfig)} if kubeconfig is not None else {}), **(env or {})}
    return start_child(
        name, [sys.executable, "-m", "kubegate", *args], log_file=log_file, env=extra, cpus=cpus, append=append
    )


def stop_all(children: Sequence[Child], *, kill: bool = False, timeout: float = STOP_TIMEOUT) -> None:
    """Signal every child at once (SIGTERM, or SIGKILL with `kill`), then wait for each; a child still
    running after `timeout` is killed."""
    for child in children:
        child.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    for child in children:
        child.wait(timeout)


def wait_ready(
    url: str,
    *,
    timeout: float = 60.0,
    what: str | None = None,
    child: Child | None = None,
    context: ssl.SSLContext | None = None,
) -> None:
    """Poll `url` until it answers 200. Raises TimeoutError after `timeout` seconds, or at once when
    `child` has exited, with the end of its log. `context` is the TLS context of an HTTPS URL whose server
    has a certificate from a private CA."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310 - loopback URLs of our own processes
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        exited = child is not None and child.returncode is not None
        if exited or time.monotonic() >= deadline:
            state = f"exited with status {child.returncode}" if exited and child else f"not ready after {timeout:.0f}s"
            tail = f"; the end of its log:\n{child.log()[-4000:]}" if child is not None else ""
            raise TimeoutError(f"{what or url}: {url} {state}{tail}")
        time.sleep(0.1)


def bootstrap_token(log_file: Path, *, timeout: float = 60.0) -> str:
    """The bootstrap token the operator logs once, when it creates it; TimeoutError if it does not."""
    deadline = time.monotonic() + timeout
    while True:
        text = log_file.read_text(errors="replace") if log_file.exists() else ""
        match = _CLIENT_TOKEN.search(text)
        if match:
            return match.group(1)
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no bootstrap token in {log_file} after {timeout:.0f}s")
        time.sleep(0.1)
