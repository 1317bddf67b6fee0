"""`kubegate server` settings: flags, environment, and the rules that keep them safe."""

from __future__ import annotations

import pytest

from kubegate import settings_cli
from kubegate.cli import build_parser, main
from kubegate.settings import ADMIN_GROUP, DEFAULT_NAMESPACE, ServerSettings


def parse(*argv: str, environ: dict[str, str] | None = None) -> ServerSettings:
    args = build_parser("server").parse_args(["server", *argv])
    return settings_cli.from_arguments(ServerSettings, args, environ or {})


def test_defaults() -> None:
    settings = parse("--insecure-http")
    assert settings.operator_namespace == DEFAULT_NAMESPACE
    assert settings.create_token_groups == settings.list_token_groups == settings.delete_token_groups == [ADMIN_GROUP]
    assert settings.webhook_username_prefix == settings.webhook_groups_prefix == "kubegate:"
    assert settings.webhook_audiences == []
    assert settings.host_port == ("0.0.0.0", 8443)


def test_flags_and_environment() -> None:
    settings = parse(
        "--tls-cert-file", "/tls/tls.crt",
        "--tls-key-file", "/tls/tls.key",
        "--create-token-groups", "a",
        "--webhook-audiences", "api",
        environ={"KUBEGATE_LIST_TOKEN_GROUPS": "x, y", "KUBEGATE_ADDRESS": "127.0.0.1:9000"},
    )  # fmt: skip
    assert settings.tls_cert_file == "/tls/tls.crt"
    assert settings.create_token_groups == ["a"]
    assert settings.list_token_groups == ["x", "y"]
    assert settings.host_port == ("127.0.0.1", 9000)
    assert settings.webhook_audiences == ["api"]


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        ((), "set --tls-cert-file and --tls-key-file to serve HTTPS, or --insecure-http for plain HTTP"),
        (("--tls-cert-file", "c"), "set both --tls-cert-file and --tls-key-file"),
        (("--insecure-http", "--tls-cert-file", "c", "--tls-key-file", "k"), "exclude each other"),
        (
            ("--insecure-http", "--webhook-groups-prefix", "system:"),
            "--webhook-groups-prefix: must not start",
        ),
        (("--insecure-http", "--webhook-username-prefix", "system:x"), "must not start with 'system:'"),
        (("--insecure-http", "--address", "8443"), "--address: use HOST:PORT"),
        (("--insecure-http", "--token-wait-timeout", "0"), "--token-wait-timeout"),
        (("--insecure-http", "--operator-namespace", "Bad_NS"), "--operator-namespace"),
    ],
)
def test_unsafe_or_broken_settings_are_refused_with_the_flag(argv: tuple[str, ...], complaint: str) -> None:
    with pytest.raises(settings_cli.SettingsError) as refused:
        parse(*argv)
    assert complaint in str(refused.value)


def test_help_documents_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser("server").parse_args(["server", "--help"])
    text = capsys.readouterr().out
    for name in ServerSettings.model_fields:
        assert "--" + name.replace("_", "-") in text
    assert "KUBEGATE_TOKEN_WAIT_TIMEOUT" in text


def test_the_command_exits_2_on_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server"]) == 2
    assert "kubegate server: invalid settings" in capsys.readouterr().err
