"""`--health-address HOST:0` gives the liveness endpoint a free port and says which; kopf would bind 80."""

from __future__ import annotations

import logging
import socket
from urllib.parse import urlsplit

import pytest
from test_settings_cli import parse

from kubegate import settings_cli
from kubegate.operator.liveness import liveness_endpoint


def test_port_0_becomes_a_free_port_named_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    url = liveness_endpoint(parse(["--health-address", "127.0.0.1:0"]).health_address)
    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.path) == ("http", "127.0.0.1", "/healthz")
    assert parts.port not in (None, 0, 80)
    with socket.socket() as listener:  # kopf binds it next: it must be free
        listener.bind(("127.0.0.1", parts.port))
    assert f"liveness endpoint: {url}" in caplog.text


def test_a_given_port_is_kept() -> None:
    assert liveness_endpoint("0.0.0.0:8081") == "http://0.0.0.0:8081/healthz"
    assert liveness_endpoint("[::]:8081") == "http://[::]:8081/healthz"


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_an_ipv6_host_keeps_its_brackets() -> None:
    try:
        url = liveness_endpoint("[::1]:0")
    except OSError:
        pytest.skip("IPv6 loopback unavailable")
    parts = urlsplit(url)
    assert parts.hostname == "::1"
    assert parts.port not in (None, 0, 80)


@pytest.mark.parametrize("address", ["8081", "localhost", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000"])
def test_an_address_without_a_port_is_refused_at_start(address: str) -> None:
    # Handed to kopf, each of these would have meant port 80.
    with pytest.raises(settings_cli.SettingsError, match="--health-address: use HOST:PORT"):
        parse(["--health-address", address])
