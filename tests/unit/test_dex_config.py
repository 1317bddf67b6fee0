"""The pure parts of the Dex harness: its configuration, password hashes, metrics and binary lookup."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from kubegate.devcluster import DevClusterError
from kubegate.devcluster.dex import (
    BCRYPT_COST,
    DEFAULT_CLIENTS,
    DEFAULT_USERS,
    DexUser,
    bcrypt_hash,
    find_dex_binary,
    render_config,
    sum_metric,
)


def config() -> dict[str, Any]:
    return render_config(
        issuer="https://127.0.0.1:5556/dex",
        https_address="127.0.0.1:5556",
        telemetry_address="127.0.0.1:5558",
        cert_file=Path("/w/tls.crt"),
        key_file=Path("/w/tls.key"),
        clients=DEFAULT_CLIENTS,
        users=DEFAULT_USERS,
        password_hash=lambda password: f"hash-of-{password}",
    )


def test_dex_serves_https_only_with_metrics_on_the_telemetry_address() -> None:
    rendered = config()

    assert rendered["issuer"] == "https://127.0.0.1:5556/dex"
    assert rendered["web"] == {"https": "127.0.0.1:5556", "tlsCert": "/w/tls.crt", "tlsKey": "/w/tls.key"}
    assert rendered["telemetry"] == {"http": "127.0.0.1:5558"}
    assert rendered["storage"] == {"type": "memory"}


def test_the_password_grant_is_enabled_on_the_local_password_database() -> None:
    rendered = config()

    assert rendered["enablePasswordDB"] is True
    assert rendered["oauth2"] == {"passwordConnector": "local", "skipApprovalScreen": True}


def test_both_clients_have_their_secret_and_a_redirect_uri() -> None:
    clients = {c["id"]: c for c in config()["staticClients"]}

    assert set(clients) == {"kubegate", "other-client"}
    assert all(c["secret"] and c["redirectURIs"] for c in clients.values())


def test_users_carry_their_groups_and_hashed_password() -> None:
    passwords = {p["username"]: p for p in config()["staticPasswords"]}

    assert passwords["alice"]["groups"] == ["admins", "developers"]
    assert passwords["alice"]["email"] == "alice@example.com"
    assert passwords["bob"]["groups"] == ["developers"]
    assert "groups" not in passwords["carol"]
    assert passwords["carol"]["hash"] == "hash-of-password"


def test_a_user_with_its_own_password_gets_its_own_hash() -> None:
    users = [DexUser(username="dave", email="dave@example.com", user_id="dave-id", password="s3cret")]
    rendered = render_config(
        issuer="https://x/dex",
        https_address="a",
        telemetry_address="b",
        cert_file=Path("c"),
        key_file=Path("k"),
        clients=DEFAULT_CLIENTS,
        users=users,
        password_hash=lambda password: f"hash-of-{password}",
    )

    assert rendered["staticPasswords"][0]["hash"] == "hash-of-s3cret"


def test_password_hashes_are_bcrypt_at_the_lowest_cost_dex_accepts() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        crypt = pytest.importorskip("crypt")
    hashed = bcrypt_hash("password")

    assert hashed.startswith(f"$2b${BCRYPT_COST:02d}$")
    assert crypt.crypt("password", hashed) == hashed
    assert crypt.crypt("other", hashed) != hashed


METRICS = """\
# HELP http_requests_total Count of all HTTP requests.
# TYPE http_requests_total counter
http_requests_total{code="200",handler="/.well-known/openid-configuration",method="get"} 3
http_requests_total{code="200",handler="/token",method="post"} 12
http_requests_total{code="400",handler="/token",method="post"} 1
http_requests_total_other 99
http_request_duration_seconds_sum{handler="/token"} 0.5
"""


def test_the_request_counter_is_summed_over_its_label_sets_only() -> None:
    assert sum_metric(METRICS, "http_requests_total") == 16
    assert sum_metric(METRICS, "absent") == 0


def test_the_request_counter_of_one_handler() -> None:
    assert sum_metric(METRICS, "http_requests_total", labels={"handler": "/token"}) == 13
    assert sum_metric(METRICS, "http_requests_total", labels={"handler": "/token", "code": "400"}) == 1
    assert sum_metric(METRICS, "http_requests_total", labels={"handler": "/keys"}) == 0


def test_a_missing_dex_binary_says_to_run_make_dex(tmp_path: Path) -> None:
    with pytest.raises(DevClusterError, match=r"run `make dex`"):
        find_dex_binary(env={"KUBEGATE_DEX_BINARY": str(tmp_path / "dex")})

    (tmp_path / "hack").mkdir()
    (tmp_path / "hack" / "versions.env").write_text("DEX_VERSION=v9.9.9\n")
    with pytest.raises(DevClusterError, match=r"dex-v9\.9\.9/dex is missing; run `make dex`"):
        find_dex_binary(env={"KUBEGATE_CACHE_DIR": str(tmp_path / "cache")}, search_from=[tmp_path])


def test_the_binary_of_the_pinned_version_is_found_in_the_cache(tmp_path: Path) -> None:
    (tmp_path / "hack").mkdir()
    (tmp_path / "hack" / "versions.env").write_text("# pinned\nDEX_VERSION=v9.9.9\n")
    binary = tmp_path / "cache" / "bin" / "dex-v9.9.9" / "dex"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)

    assert find_dex_binary(env={"KUBEGATE_CACHE_DIR": str(tmp_path / "cache")}, search_from=[tmp_path]) == binary
