"""The one way tests and benchmarks start, wait for and stop kubegate's processes."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from kubegate.devcluster.ports import pick_free_ports
from kubegate.devcluster.processes import bootstrap_token, start_child, start_kubegate, stop_all


def test_a_child_that_exits_fails_the_wait_at_once_with_its_log(tmp_path: Path) -> None:
    child = start_child(
        "crasher", [sys.executable, "-c", "print('cannot bind'); raise SystemExit(3)"], log_file=tmp_path / "c.log"
    )
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"(?s)exited with status 3.*cannot bind"):
        child.wait_ready("http://127.0.0.1:9/", timeout=60)
    assert time.monotonic() - started < 30


def test_wait_ready_returns_once_the_url_answers_200(tmp_path: Path) -> None:
    (port,) = pick_free_ports(1)
    server = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port), "--directory", str(tmp_path)]
    child = start_child("http", server, log_file=tmp_path / "http.log", env={"PYTHONUNBUFFERED": "1"})
    try:
        child.wait_ready(f"http://127.0.0.1:{port}/", timeout=30)
        assert child.returncode is None
    finally:
        child.stop()
    assert child.returncode == -signal.SIGTERM


def test_stop_kills_what_ignores_sigterm_and_the_log_is_kept(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    )
    child = start_child("stubborn", [sys.executable, "-c", stubborn], log_file=tmp_path / "s.log")
    deadline = time.monotonic() + 20
    while "up" not in child.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    stop_all([child], timeout=0.5)
    assert child.returncode == -signal.SIGKILL
    assert child.log() == "up\n"


def test_kubegate_runs_with_this_interpreter_and_the_given_kubeconfig(tmp_path: Path) -> None:
    child = start_kubegate(
        "version", ["--help"], log_file=tmp_path / "k.log", kubeconfig=tmp_path / "kubeconfig", append=True
    )
    child.wait(30)
    assert child.returncode == 0
    assert "operator" in child.log()


def test_the_bootstrap_token_is_read_from_the_operator_log(tmp_path: Path) -> None:
    log = tmp_path / "operator.log"
    log.write_text('INFO kubegate.bootstrap: access token created client_token="kg_abc="\n')
    assert bootstrap_token(log, timeout=1) == "kg_abc="
    with pytest.raises(TimeoutError, match="no bootstrap token"):
        bootstrap_token(tmp_path / "absent.log", timeout=0.2)
