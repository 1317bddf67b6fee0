import argparse

import pytest

from kubegate import settings_cli
from kubegate.settings import OperatorSettings


def parse(argv: list[str], environ: dict[str, str] | None = None) -> OperatorSettings:
    parser = argparse.ArgumentParser()
    settings_cli.add_arguments(parser, OperatorSettings)
    return settings_cli.from_arguments(OperatorSettings, parser.parse_args(argv), environ or {})


def test_defaults_apply_when_nothing_is_given() -> None:
    settings = parse([])
    assert settings.operator_namespace == "kubegate-system"
    assert settings.namespaces == []
    assert settings.bootstrap is True


def test_flags_win_over_environment() -> None:
    settings = parse(["--operator-namespace", "from-flag"], {"KUBEGATE_OPERATOR_NAMESPACE": "from-env"})
    assert settings.operator_namespace == "from-flag"
    assert parse([], {"KUBEGATE_OPERATOR_NAMESPACE": "from-env"}).operator_namespace == "from-env"


def test_repeatable_flag_and_comma_separated_variable() -> None:
    assert parse(["--namespace", "a", "--namespace", "b"]).namespaces == ["a", "b"]
    assert parse([], {"KUBEGATE_NAMESPACES": "a, b"}).namespaces == ["a", "b"]


def test_booleans_take_no_prefix() -> None:
    assert parse(["--no-bootstrap"]).bootstrap is False
    assert parse([], {"KUBEGATE_BOOTSTRAP": "false"}).bootstrap is False


def test_errors_name_the_flag_or_variable() -> None:
    with pytest.raises(settings_cli.SettingsError, match="--token-prefix"):
        parse(["--token-prefix", "BAD"])
    with pytest.raises(settings_cli.SettingsError, match="KUBEGATE_DELETE_EXPIRED_AFTER"):
        parse([], {"KUBEGATE_DELETE_EXPIRED_AFTER": "-5m"})


def test_every_setting_has_help_text() -> None:
    for name, field in OperatorSettings.model_fields.items():
        assert field.description, f"{name} has no docstring, so --help says nothing about it"


def test_lease_timings_default_to_fail_over_within_seconds() -> None:
    assert parse([]).lease_seconds() == (10.0, 7.0, 2.0)
    assert parse(
        ["--lease-duration", "4s", "--lease-renew-deadline", "3s", "--lease-retry-period", "1s"]
    ).lease_seconds() == (
        4.0,
        3.0,
        1.0,
    )


def test_a_leader_must_give_up_before_its_lease_expires() -> None:
    with pytest.raises(
        settings_cli.SettingsError, match="--lease-renew-deadline: must be shorter than --lease-duration"
    ):
        parse(["--lease-duration", "5s"])  # the default renew deadline, 7s, is longer
    with pytest.raises(
        settings_cli.SettingsError, match="--lease-retry-period: must be shorter than --lease-renew-deadline"
    ):
        parse(["--lease-renew-deadline", "2s"])
    with pytest.raises(settings_cli.SettingsError, match="KUBEGATE_LEASE_RETRY_PERIOD"):
        parse([], {"KUBEGATE_LEASE_RETRY_PERIOD": "7s"})
