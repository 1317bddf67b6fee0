"""OIDC access tokens from a real Dex: kubegate's /auth/v1/verify beside a Flask app protected by FLAAT 1.3.1,
side by side in one run, with the same Dex.

    .venv/bin/python bench/oidc_throughput.py [--pairs 5] [--pair-seconds 2] [--seconds 2]
        [--fresh-tokens 40000] [--seen-tokens 500] [--opaque-tokens 100] [--flaat-only]

Needs `wrk` (apt-get install wrk) and Dex (`make dex`). FLAAT gets a virtualenv of its own outside the
repository, made once: ~/.cache/kubegate/bench/flaat-1.3.1 (PyPI must be reachable that first time).

Dex (HTTPS on loopback, its own CA) runs on CPU 0 beside wrk (one thread, 64 connections); the servers
measured run on CPU 1: two `kubegate server` processes (plain HTTP), reading an OIDCProvider for Dex that
`kubegate operator` (CPU 0) reconciles, and FLAAT's `is_authenticated` on a Flask view, served by gunicorn
with one process and --flaat-threads threads (8: FLAAT blocks on Dex for a new token, so threads let it
overlap those calls; its throughput was the same with waitress, and 30% lower with one thread). FLAAT
trusts Dex's issuer and its CA (REQUESTS_CA_BUNDLE and SSL_CERT_FILE). Every token is minted before the
timed part: per user one password grant, then refresh grants (a password grant costs Dex 60-80 ms of
bcrypt; a refresh grant does not).

1. New tokens: every request carries an access token the server has not seen (kubegate has Dex's keys
   already). Alone: each server loaded by itself; then 100 more new tokens, sent one at a time, count the
   calls Dex served per token (kubegate's target: 0; FLAAT fetches the JWKS and calls userinfo for each, and
   Dex's CPU for those is shown too). Pairs: kubegate and FLAAT loaded at once, each pair with tokens new to
   both; the ratio of their requests/s (target >= 30), and the ratio of their CPU time per request, which is
   their throughput ratio at equal CPU. The scheduler shares a CPU between threads, not processes: FLAAT's
   threads take most of CPU 1 from kubegate's one thread, so the first ratio understates kubegate; the
   script prints the share of a CPU each got. Each run sends each of its tokens once; one that runs out stops
   sending, but wrk still divides by the whole time, so its requests/s is then only a lower bound, marked
   ">=" (raise --fresh-tokens).
2. Seen tokens: the same --seen-tokens Dex tokens over and over against one kubegate server, and as many
   StaticTokens against the other, at once (they swap each pair); JWT over static requests/s (target >= 0.8).
3. Opaque tokens: Dex's access tokens are always JWTs, so the only opaque strings it introspects as active are
   its refresh tokens (`token_use: refresh_token`; the harness gives them a 24 h lifetime, without which
   Dex says `exp` = `iat`). Measured on one kubegate server alone, each set repeated for --seconds:
   --opaque-tokens random strings (Dex: inactive) and one refresh token per user (Dex: active), with Dex's
   /token/introspect calls per 10,000 requests and what kubegate answered.

With --flaat-only no control plane and no kubegate start: FLAAT alone with new tokens, and the token minting.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubegate.contracts.token_secret import stored_token
from kubegate.devcluster import DevClusterError, Kubectl, start_cluster, stop_cluster
from kubegate.devcluster.binaries import cache_root
from kubegate.devcluster.dex import DEFAULT_SCOPES, DEFAULT_USERS, KUBEGATE_CLIENT, DexServer, DexUser
from kubegate.devcluster.ports import pick_free_ports
from kubegate.devcluster.processes import Child, start_child, start_kubegate, stop_all

sys.path.insert(0, str(Path(__file__).parent))
from verify_throughput import READY_TIMEOUT, SERVER_CPU, Result, cpu_seconds, start_wrk, wrk_result

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "kubegate-system"
PROVIDER = "dex"
CLIENT_SECRET = "dex-client"
OTHER_CPU = "0"
"""Dex, wrk and the operator; the servers measured run on SERVER_CPU."""
VERIFY = "/auth/v1/verify"
COST_TOKENS = 100
"""New tokens sent one at a time to count what each costs Dex."""
ACCEPT_TIMEOUT = 180.0
"""Seconds to wait, after applying the OIDCProvider, for kubegate to accept a Dex token."""
BENCH_USERS = tuple(
    DexUser(username=f"bench{i}", email=f"bench{i}@example.net", user_id=f"bench{i}-id", groups=("bench",))
    for i in range(4)
)
"""Users whose tokens the benchmark mints, one refresh chain each in parallel (Dex keeps one refresh token
per user and client)."""
FLAAT_VERSION = "1.3.1"
FLAAT_REQUIREMENTS = (f"flaat=={FLAAT_VERSION}", "flask==3.1.3", "gunicorn==27.0.1")
FLAAT_APP = """
import os
from flask import Flask
from flaat.flask import Flaat

app = Flask(__name__)
app.config["TRUSTED_OP_LIST"] = [os.environ["FLAAT_BENCH_ISSUER"]]
# FLAAT's default of 1.2 s per call to the provider could fail requests under load: no failure is fairer.
app.config["FLAAT_REQUEST_TIMEOUT"] = 10.0
flaat = Flaat(app=app)


@app.route("/")
def index():
    return "ok"


@app.route("/auth/v1/verify")
@flaat.is_authenticated()
def verify():
    return "ok"
"""
ONCE_SCRIPT = """
tokens = {}
for line in io.lines("TOKENS_FILE") do tokens[#tokens + 1] = line end
local i = 0
request = function()
  -- each token once; then the thread stops (a request or two already under way still goes out)
  if i < #tokens then i = i + 1 else wrk.thread:stop() end
  return wrk.format("GET", "/auth/v1/verify", {["Authorization"] = "Bearer " .. tokens[i]})
end
"""
REPEAT_SCRIPT = """
tokens = {}
for line in io.lines("TOKENS_FILE") do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/auth/v1/verify", {["Authorization"] = "Bearer " .. tokens[i]})
end
"""


def pin(pid: int, cpu: int) -> None:
    """Move every thread of a running process to `cpu` (threads it starts later inherit that)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {cpu})


def wrk_script(path: Path, template: str, tokens: Sequence[str]) -> Path:
    tokens_file = path.with_suffix(".txt")
    tokens_file.write_text("\n".join(tokens) + "\n")
    path.write_text(template.replace("TOKENS_FILE", str(tokens_file)))
    return path


# --- FLAAT --------------------------------------------------------------------------------------------------


def flaat_venv() -> Path:
    """FLAAT's own virtualenv, made once per set of versions (a marker file says the install finished)."""
    venv = cache_root(os.environ) / "bench" / f"flaat-{FLAAT_VERSION}"
    marker = venv / ".installed"
    wanted = "\n".join(FLAAT_REQUIREMENTS)
    if marker.is_file() and marker.read_text() == wanted:
        return venv
    print(f"installing {', '.join(FLAAT_REQUIREMENTS)} into {venv} (once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *FLAAT_REQUIREMENTS], check=True)
    marker.write_text(wanted)
    return venv


def worker_pid(master: int, *, timeout: float = 30.0) -> int:
    """The pid of the one worker of a gunicorn master: the process that serves, and whose CPU counts."""
    deadline = time.monotonic() + timeout
    while True:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        if time.monotonic() >= deadline:
            raise SystemExit(f"gunicorn (pid {master}) started no worker in {timeout:.0f}s")
        time.sleep(0.1)


def start_flaat(tmp: Path, dex: DexServer, port: int, *, threads: int) -> Child:
    app_dir = tmp / "flaat"
    app_dir.mkdir()
    (app_dir / "flaat_app.py").write_text(FLAAT_APP)
    gunicorn = flaat_venv() / "bin" / "gunicorn"
    argv = [
        str(gunicorn), "--workers", "1", "--threads", str(threads), "--bind", f"127.0.0.1:{port}",
        "--chdir", str(app_dir), "--log-level", "warning", "flaat_app:app",
    ]  # fmt: skip
    # requests reads REQUESTS_CA_BUNDLE, urllib (FLAAT's JWKS client) SSL_CERT_FILE.
    env = {
        "REQUESTS_CA_BUNDLE": str(dex.ca_file),
        "SSL_CERT_FILE": str(dex.ca_file),
        "FLAAT_BENCH_ISSUER": dex.issuer,
        "PYTHONPATH": "",
    }
    return start_child("flaat", argv, log_file=tmp / "flaat.log", env=env, cpus=SERVER_CPU)


# --- kubegate -----------------------------------------------------------------------------------------------


def operator_args() -> list[str]:
    return ["operator", "--standalone", "--no-bootstrap",
            "--operator-namespace", NAMESPACE, "--namespace", NAMESPACE,
            "--health-address", "127.0.0.1:0", "--log-level", "WARNING"]  # fmt: skip


def server_args(port: int) -> list[str]:
    return ["server", "--insecure-http", "--address", f"127.0.0.1:{port}",
            "--operator-namespace", NAMESPACE, "--token-namespace", NAMESPACE,
            # Dex's only opaque tokens are refresh tokens (phase 3); JWTs are verified the same either way.
            "--oidc-accept-refresh-tokens",
            "--no-access-log", "--log-level", "WARNING"]  # fmt: skip


def oidc_provider(dex: DexServer) -> dict[str, Any]:
    return dex.oidc_provider(
        PROVIDER,
        clientSecretRef={"namespace": NAMESPACE, "name": CLIENT_SECRET, "key": "clientSecret"},
        scopes=list(DEFAULT_SCOPES),
        audiences=[KUBEGATE_CLIENT.client_id],
        introspection=True,
    )


def static_tokens(count: int) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "kubegate.dev/v1alpha1",
            "kind": "StaticToken",
            "metadata": {"name": f"bench-static-{i:04d}", "namespace": NAMESPACE},
            "spec": {"groups": ["bench"]},
        }
        for i in range(count)
    ]


def verify_status(url: str, token: str) -> tuple[int, str]:
    request = urllib.request.Request(url + VERIFY, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # loopback
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except OSError as error:
        return 0, str(error)


def wait_accepted(urls: Sequence[str], token: str, *, timeout: float) -> str | None:
    """None once every server answers 200 for `token`; else the last answer, after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pending = list(urls)
    while pending:
        status, body = verify_status(pending[0], token)
        if status == 200:
            pending.pop(0)
            continue
        if time.monotonic() >= deadline:
            return f"{pending[0]}{VERIFY} answered {status}: {body[:600]}"
        time.sleep(0.5)
    return None


def tampered(token: str) -> str:
    """`token` with another signature: a verifier that accepts it verifies nothing."""
    head, _, signature = token.rpartition(".")
    return f"{head}.{signature[:-8]}{'A' * 8 if not signature.endswith('A' * 8) else 'B' * 8}"


def check_verifier(target: Target, token: str) -> None:
    """Exit unless `target` accepts a new Dex token and refuses it with its signature changed."""
    good, bad = verify_status(target.url, token)[0], verify_status(target.url, tampered(token))[0]
    if good != 200 or bad == 200:
        raise SystemExit(f"{target.name} answered {good} to a valid Dex token and {bad} to a forged one")


def fail_unaccepted(what: str, answer: str, kubectl: Kubectl, logs: Sequence[Path]) -> None:
    status = kubectl("get", "oidcprovider", PROVIDER, "-o", "jsonpath={.status}", check=False).stdout
    tails = "\n".join(f"--- end of {log.name}:\n{log.read_text(errors='replace')[-1500:]}" for log in logs)
    raise SystemExit(
        f"kubegate did not accept {what} within {ACCEPT_TIMEOUT:.0f}s: {answer}\n"
        f"OIDCProvider {PROVIDER} status: {status or '(none)'}\n"
        "Does this checkout have the OIDC features of issue 13 (the operator reconciling OIDCProvider, the "
        f"server verifying Dex's access tokens)?\n{tails}"
    )


def read_static_tokens(kubectl: Kubectl, count: int, *, timeout: float) -> list[str]:
    """The plaintext of the StaticTokens `static_tokens` created, once the operator has written them all."""
    deadline = time.monotonic() + timeout
    while True:
        secrets_list = kubectl.json("get", "secrets", "-n", NAMESPACE)["items"]
        found = [stored_token(s) for s in secrets_list if s["metadata"]["name"].startswith("bench-static-")]
        tokens = [token for token in found if token]
        if len(tokens) >= count:
            return tokens[:count]
        if time.monotonic() >= deadline:
            raise SystemExit(f"the operator wrote {len(tokens)} of {count} StaticToken Secrets in {timeout:.0f}s")
        time.sleep(1)


# --- measuring ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    pid: int


DEX_ROUTES = ("/.well-known/openid-configuration", "/keys", "/userinfo", "/token/introspect")
DRAIN_SECONDS = 1.0
"""After wrk stops, requests it left queued in a server may still call Dex: wait this long before counting."""


WRK_CONNECTIONS = 64
"""As verify_throughput.start_wrk opens: requests still in flight when wrk stops are not counted."""


@dataclass
class Run:
    result: Result
    exhausted: bool
    """The run sent every token of its list before its time was up: wrk divides by the whole time all the
    same, so its requests/s is a lower bound."""

    @property
    def rps(self) -> str:
        return f"{'>=' if self.exhausted else ''}{self.result.rps:.1f}"


def wait_idle(pids: Sequence[int], *, timeout: float = 15.0) -> None:
    """Until the processes use almost no CPU: a server may still be working through requests that the last wrk
    run left queued, which would cost the next run CPU and count as its work."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(pid) for pid in pids)
        time.sleep(0.2)
        if sum(cpu_seconds(pid) for pid in pids) - before < 0.01:
            return


def load_at_once(loads: Sequence[tuple[Target, Path, int | None]], seconds: int) -> list[Run]:
    """Load each (target, wrk script, number of tokens if each is sent once) at the same time, once all are
    idle."""
    wait_idle([target.pid for target, _, _ in loads])
    cpu_before = {target.name: cpu_seconds(target.pid) for target, _, _ in loads}
    started = [start_wrk(target.url, script, seconds) for target, script, _ in loads]
    results = [
        wrk_result(target.name, wrk, cpu_before[target.name], target.pid)
        for (target, _, _), wrk in zip(loads, started, strict=True)
    ]
    return [
        Run(result=result, exhausted=once is not None and result.requests >= once - WRK_CONNECTIONS)
        for result, (_, _, once) in zip(results, loads, strict=True)
    ]


@dataclass
class DexCost:
    """What verifying new tokens one at a time cost Dex, per token."""

    calls: float
    by_route: dict[str, float]
    cpu_us: float
    refused: int
    """Tokens the server did not answer 200 for."""


def dex_cost(target: Target, tokens: Sequence[str], dex: DexServer) -> DexCost:
    """Send each token once, one request at a time, and count the calls Dex served meanwhile: exact, unlike
    counting around a wrk run, which leaves requests queued in the server when it stops."""
    before = {route: dex.requests_served(handler=route) for route in DEX_ROUTES}
    total_before, cpu_before = dex.requests_served(), cpu_seconds(dex.pid)
    refused = sum(verify_status(target.url, token)[0] != 200 for token in tokens)
    count = len(tokens)
    return DexCost(
        calls=(dex.requests_served() - total_before) / count,
        by_route={route: (dex.requests_served(handler=route) - n) / count for route, n in before.items()},
        cpu_us=(cpu_seconds(dex.pid) - cpu_before) / count * 1e6,
        refused=refused,
    )


def slices(tokens: Sequence[str], count: int) -> list[list[str]]:
    size = len(tokens) // count
    return [list(tokens[i * size : (i + 1) * size]) for i in range(count)]


def print_alone(title: str, runs: Sequence[Run], costs: Sequence[DexCost], cost_tokens: int) -> None:
    print(f"\n{title}")
    print(
        f"{'server':24} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11} {'non-2xx':>8} "
        f"{'Dex calls/req':>14} {'Dex CPU us/req':>15}"
    )
    for run, cost in zip(runs, costs, strict=True):
        r = run.result
        print(
            f"{r.name:24} {run.rps:>9} {r.p50_ms:8.2f} {r.p99_ms:8.2f} {r.cpu_us:11.1f} {r.non_2xx:8d} "
            f"{cost.calls:14.3f} {cost.cpu_us:15.1f}"
        )
    print(f"The Dex columns: {cost_tokens} more new tokens sent one at a time, and what Dex served meanwhile.")
    for run, cost in zip(runs, costs, strict=True):
        routes = ", ".join(f"{route} {calls:.2f}" for route, calls in cost.by_route.items() if calls)
        refused = f"; {cost.refused} not answered 200" if cost.refused else ""
        print(f"  {run.result.name}: Dex calls per token by route: {routes or 'none'}{refused}")


def print_ratios(label: str, ratios: Sequence[float], target: str) -> None:
    print(
        f"{label}: median {statistics.median(ratios):.2f}, min {min(ratios):.2f}, max {max(ratios):.2f} "
        f"({len(ratios)} pairs; target {target})"
    )


def new_tokens_phase(
    kubegate: Target | None, flaat: Target, *, dex: DexServer, fresh: Sequence[str], tmp: Path, args: argparse.Namespace
) -> None:
    """Alone, then (with kubegate) in pairs; every token new to the server it is sent to."""
    warm, cost_tokens = fresh[: args.warm_tokens], fresh[args.warm_tokens : args.warm_tokens + COST_TOKENS]
    # The runs alone last longer than a pair and give kubegate all of its CPU: twice a pair's share of tokens.
    pairs = args.pairs if kubegate is not None else 0
    parts = slices(fresh[args.warm_tokens + COST_TOKENS :], 2 + pairs)
    parts = [parts[0] + parts[1], *parts[2:]]
    targets = [t for t in (kubegate, flaat) if t is not None]
    for target in targets:
        load_at_once([(target, wrk_script(tmp / f"warm-{target.name}.lua", ONCE_SCRIPT, warm), len(warm))], 1)
    alone_script = wrk_script(tmp / "fresh-alone.lua", ONCE_SCRIPT, parts[0])
    alone = [load_at_once([(t, alone_script, len(parts[0]))], args.seconds)[0] for t in targets]
    time.sleep(DRAIN_SECONDS)
    costs = [dex_cost(t, cost_tokens, dex) for t in targets]
    print_alone(
        f"New tokens, each server alone for up to {args.seconds} s ({len(parts[0])} tokens new to it)",
        alone,
        costs,
        len(cost_tokens),
    )
    if kubegate is None:
        return
    ratios, per_cpu, exhausted, each = [], [], 0, []
    for k, part in enumerate(parts[1:], start=1):
        script = wrk_script(tmp / f"fresh-pair-{k}.lua", ONCE_SCRIPT, part)
        ours, theirs = load_at_once([(kubegate, script, len(part)), (flaat, script, len(part))], args.pair_seconds)
        ratios.append(ours.result.rps / theirs.result.rps)
        per_cpu.append(theirs.result.cpu_us / ours.result.cpu_us)
        exhausted += ours.exhausted or theirs.exhausted
        shares = [run.result.cpu_us * run.result.requests / 1e6 / args.pair_seconds for run in (ours, theirs)]
        each.append(f"{ours.rps}/{theirs.rps} ({shares[0]:.0%}/{shares[1]:.0%} of a CPU)")
    print_ratios(
        f"\nNew tokens, kubegate over FLAAT, loaded at once ({args.pair_seconds} s pairs of {len(parts[1])} tokens)",
        ratios,
        ">= 30",
    )
    print_ratios("The same per CPU-second of each server (FLAAT's CPU per request over kubegate's)", per_cpu, ">= 30")
    print(f"requests/s in each pair, kubegate/FLAAT, and the CPU each got: {', '.join(each)}")
    print(f"Dex calls per new token: kubegate {costs[0].calls:.3f} (target 0), FLAAT {costs[1].calls:.3f}")
    if exhausted:
        print(
            f"a server ran out of tokens in {exhausted} of {len(ratios)} pairs: those ratios are only lower bounds "
            "(raise --fresh-tokens)"
        )


def seen_tokens_phase(
    servers: Sequence[Target],
    *,
    dex: DexServer,
    jwts: Sequence[str],
    statics: Sequence[str],
    tmp: Path,
    pairs: int,
    seconds: int,
) -> None:
    jwt_script = wrk_script(tmp / "seen-jwt.lua", REPEAT_SCRIPT, jwts)
    static_script = wrk_script(tmp / "seen-static.lua", REPEAT_SCRIPT, statics)
    for target in servers:
        load_at_once([(target, jwt_script, None), (target, static_script, None)], 1)  # every token seen once
    dex_before = dex.requests_served()
    ratios, runs = [], []
    for k in range(pairs):
        first, second = servers if k % 2 == 0 else servers[::-1]
        jwt_run, static_run = load_at_once([(first, jwt_script, None), (second, static_script, None)], seconds)
        ratios.append(jwt_run.result.rps / static_run.result.rps)
        runs += [jwt_run, static_run]
    print_ratios(
        f"\nSeen tokens, {len(jwts)} Dex access tokens over {len(statics)} static tokens on two kubegate servers "
        f"loaded at once ({seconds} s pairs)",
        ratios,
        ">= 0.8",
    )
    jwt_rps = statistics.median(r.result.rps for r in runs[0::2])
    static_rps = statistics.median(r.result.rps for r in runs[1::2])
    non_2xx = sum(r.result.non_2xx for r in runs)
    time.sleep(DRAIN_SECONDS)
    print(
        f"median requests/s: Dex tokens {jwt_rps:.0f}, static tokens {static_rps:.0f}; non-2xx {non_2xx}; "
        f"Dex calls during the phase: {dex.requests_served() - dex_before} (target 0)"
    )


def opaque_phase(
    server: Target, dex: DexServer, sets: Sequence[tuple[str, Sequence[str]]], tmp: Path, seconds: int
) -> None:
    print(f"\nOpaque tokens on one kubegate server alone, each set repeated for {seconds} s (introspection on)")
    print(
        f"{'tokens':44} {'req/s':>9} {'p99 ms':>8} {'non-2xx':>8} {'introspections':>15} {'per 10k req':>12} "
        f"{'answer':>7}"
    )
    for k, (label, tokens) in enumerate(sets):
        script = wrk_script(tmp / f"opaque-{k}.lua", REPEAT_SCRIPT, tokens)
        before = dex.requests_served(handler="/token/introspect")
        (run,) = load_at_once([(server, script, None)], seconds)
        time.sleep(DRAIN_SECONDS)
        calls = dex.requests_served(handler="/token/introspect") - before
        status, _ = verify_status(server.url, tokens[0])
        r = run.result
        print(
            f"{label:44} {r.rps:9.0f} {r.p99_ms:8.2f} {r.non_2xx:8d} {calls:15d} "
            f"{calls / max(r.requests, 1) * 10_000:12.1f} {status:7d}"
        )


# --- main ---------------------------------------------------------------------------------------------------


def refresh_tokens(dex: DexServer, users: Sequence[DexUser]) -> list[str]:
    """One live refresh token per user (a new password grant revokes the user's earlier one)."""
    scopes = (*DEFAULT_SCOPES, "offline_access")
    return [dex.password_grant_tokens(user.username, scopes=scopes).refresh_token for user in users]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--pair-seconds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=2, help="length of each run of one server alone")
    parser.add_argument("--fresh-tokens", type=int, default=40_000, help="new tokens minted for phase 1")
    parser.add_argument("--warm-tokens", type=int, default=500, help="of those, sent before measuring")
    parser.add_argument("--seen-tokens", type=int, default=500, help="Dex tokens and static tokens of phase 2")
    parser.add_argument("--opaque-tokens", type=int, default=100, help="random opaque strings of phase 3")
    parser.add_argument("--flaat-threads", type=int, default=8, help="gunicorn threads of FLAAT's one process")
    parser.add_argument("--flaat-only", action="store_true", help="Dex and FLAAT only: no control plane")
    args = parser.parse_args()
    if not 1_000 <= args.fresh_tokens <= 200_000 or not 1 <= args.seen_tokens <= 5_000:
        parser.error("--fresh-tokens must be 1,000-200,000 and --seen-tokens 1-5,000")
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    flaat_venv()
    with tempfile.TemporaryDirectory(prefix="kubegate-bench-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            dex = DexServer(tmp / "dex", users=(*DEFAULT_USERS, *BENCH_USERS))
        except DevClusterError as error:
            print(error, file=sys.stderr)
            return 2
        with dex:
            usernames = [user.username for user in BENCH_USERS]
            started = time.monotonic()
            seen = 0 if args.flaat_only else args.seen_tokens
            minted = dex.mint_access_tokens(args.fresh_tokens + seen, usernames)
            elapsed = time.monotonic() - started
            print(
                f"minted {len(minted)} distinct access tokens in {elapsed:.1f} s ({len(minted) / elapsed:.0f}/s: "
                f"{len(usernames)} users, a password grant each, then refresh grants)"
            )
            fresh, jwts = minted[: args.fresh_tokens], minted[args.fresh_tokens :]
            pin(dex.pid, int(OTHER_CPU))  # minting used both CPUs; from now on Dex stays off the measured one
            flaat_port, *ports = pick_free_ports(3)
            flaat = start_flaat(tmp, dex, flaat_port, threads=args.flaat_threads)
            try:
                flaat.wait_ready(f"http://127.0.0.1:{flaat_port}/", timeout=READY_TIMEOUT)
                flaat_target = Target("FLAAT 1.3.1 (Flask)", f"http://127.0.0.1:{flaat_port}", worker_pid(flaat.pid))
                check_verifier(flaat_target, dex.password_grant("alice"))
                if args.flaat_only:
                    new_tokens_phase(None, flaat_target, dex=dex, fresh=fresh, tmp=tmp, args=args)
                    return 0
                run_kubegate(tmp, dex=dex, flaat=flaat_target, ports=ports, fresh=fresh, jwts=jwts, args=args)
            finally:
                flaat.stop()
    return 0


def run_kubegate(
    tmp: Path,
    *,
    dex: DexServer,
    flaat: Target,
    ports: Sequence[int],
    fresh: Sequence[str],
    jwts: Sequence[str],
    args: argparse.Namespace,
) -> None:
    state = start_cluster(state_dir=tmp / "cluster", name="bench", die_with_parent=True)
    try:
        kubectl = Kubectl(state)
        kubectl.install_crds(ROOT / "crds")
        kubectl("create", "namespace", NAMESPACE)
        kubectl(
            "create", "secret", "generic", CLIENT_SECRET, "-n", NAMESPACE,
            f"--from-literal=clientSecret={KUBEGATE_CLIENT.secret}",
        )  # fmt: skip
        os.environ["KUBECONFIG"] = str(state.kubeconfig)
        operator = start_kubegate("operator", operator_args(), log_file=tmp / "operator.log", cpus=OTHER_CPU)
        servers = [
            start_kubegate(f"kubegate-{i}", server_args(port), log_file=tmp / f"server-{i}.log", cpus=SERVER_CPU)
            for i, port in enumerate(ports)
        ]
        try:
            urls = [f"http://127.0.0.1:{port}" for port in ports]
            for server, url in zip(servers, urls, strict=True):
                server.wait_ready(f"{url}/readyz", timeout=READY_TIMEOUT)
            kubectl("apply", "-f", "-", stdin=json.dumps(oidc_provider(dex)))
            kubectl(
                "apply",
                "-f",
                "-",
                stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": static_tokens(args.seen_tokens)}),
            )
            logs = [tmp / "operator.log", *(tmp / f"server-{i}.log" for i in range(len(servers)))]
            probe = dex.password_grant("alice")
            answer = wait_accepted(urls, probe, timeout=ACCEPT_TIMEOUT)
            if answer is not None:
                fail_unaccepted("a Dex access token", answer, kubectl, logs)
            statics = read_static_tokens(kubectl, args.seen_tokens, timeout=ACCEPT_TIMEOUT)
            answer = wait_accepted(urls, statics[-1], timeout=ACCEPT_TIMEOUT)
            if answer is not None:
                fail_unaccepted("a StaticToken", answer, kubectl, logs)
            targets = [
                Target(f"kubegate {i}", url, s.pid) for i, (url, s) in enumerate(zip(urls, servers, strict=True))
            ]
            for target in targets:
                check_verifier(target, dex.password_grant("bob"))
            new_tokens_phase(targets[0], flaat, dex=dex, fresh=fresh, tmp=tmp, args=args)
            seen_tokens_phase(
                targets, dex=dex, jwts=jwts, statics=statics, tmp=tmp, pairs=args.pairs, seconds=args.pair_seconds
            )
            garbage = [secrets.token_urlsafe(32) for _ in range(args.opaque_tokens)]
            users = (*DEFAULT_USERS, *BENCH_USERS)
            opaque_phase(
                targets[0],
                dex,
                [
                    (f"{len(garbage)} random strings (inactive)", garbage),
                    (f"{len(users)} Dex refresh tokens (active)", refresh_tokens(dex, users)),
                ],
                tmp,
                args.seconds,
            )
        finally:
            stop_all([*servers, operator], timeout=30)
    finally:
        stop_cluster(tmp / "cluster")


if __name__ == "__main__":
    sys.exit(main())
