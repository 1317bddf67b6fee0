"""The server's mirror of the published OIDC provider configs (state/providers.py)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kubegate.kube import WatchEvent
from kubegate.state.providers import Providers
from kubegate.validation_config.providers import DATA_KEY, ProviderConfig, secret_body

NAMESPACE = "kubegate-system"


def _config(name: str, issuer: str, **extra: Any) -> ProviderConfig:
    return ProviderConfig(
        name=name, issuer=issuer, jwks_uri=f"{issuer}/keys", algorithms=("RS256",), client_secret="s3cr3t", **extra
    )


def _secret(config: ProviderConfig, created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    body = secret_body(config, namespace=NAMESPACE)
    body["metadata"]["creationTimestamp"] = created
    return body


async def test_lookups_after_the_first_list() -> None:
    providers = Providers()
    assert not providers.loaded
    issuers = providers.issuers
    assert "https://a.example" not in issuers
    await providers.replace([_secret(_config("a", "https://a.example")), _secret(_config("b", "https://b.example"))])
    assert providers.loaded
    assert "https://a.example" in issuers  # the same view, now holding the issuer
    assert providers.by_issuer("https://b.example").name == "b"  # type: ignore[union-attr]
    assert providers.by_name("a").issuer == "https://a.example"  # type: ignore[union-attr]
    assert [p.name for p in providers.all()] == ["a", "b"]
    assert providers.by_issuer("https://a.example/") is None  # exact match only


async def test_an_empty_list_is_loaded_and_trusts_nothing() -> None:
    providers = Providers()
    await providers.replace([])
    assert providers.loaded
    assert len(providers.issuers) == 0


async def test_watch_events_change_the_set_and_the_config_object() -> None:
    providers = Providers()
    secret = _secret(_config("a", "https://a.example"))
    await providers.replace([secret])
    first = providers.by_name("a")

    # Same content (a metadata-only change): the same object, so verifiers keep what they derived.
    providers.apply(WatchEvent("MODIFIED", secret))
    assert providers.by_name("a") is first

    providers.apply(WatchEvent("MODIFIED", _secret(_config("a", "https://a.example", audiences=("api",)))))
    changed = providers.by_name("a")
    assert changed is not first
    assert changed is not None
    assert changed.audiences == ("api",)

    providers.apply(WatchEvent("DELETED", secret))
    assert providers.by_name("a") is None
    assert "https://a.example" not in providers.issuers


async def test_an_unreadable_secret_keeps_the_last_good_config_and_logs_no_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    providers = Providers()
    good = _secret(_config("a", "https://a.example"))
    await providers.replace([good])
    bad = _secret(_config("a", "https://a.example"))
    bad["data"][DATA_KEY] = "eyJjbGllbnRTZWNyZXQiOiJzM2NyM3QifQ=="  # {"clientSecret":"s3cr3t"}: not a config
    with caplog.at_level(logging.ERROR):
        providers.apply(WatchEvent("MODIFIED", bad))
    assert providers.by_name("a") is not None
    assert "unreadable" in caplog.text
    assert "s3cr3t" not in caplog.text
    assert "eyJjbGllbnRTZWNyZXQi" not in caplog.text


async def test_a_secret_that_claims_another_provider_is_ignored() -> None:
    providers = Providers()
    impostor = _secret(_config("b", "https://b.example"))
    impostor["metadata"]["name"] = "kubegate-oidc-a"
    await providers.replace([impostor])
    assert providers.by_name("b") is None
    assert providers.by_name("a") is None


async def test_duplicate_issuers_resolve_to_the_older_provider_on_every_replica(
    caplog: pytest.LogCaptureFixture,
) -> None:
    older = _secret(_config("zeta", "https://same.example"), created="2026-01-01T00:00:00Z")
    newer = _secret(_config("alpha", "https://same.example"), created="2026-01-02T00:00:00Z")
    for order in ([older, newer], [newer, older]):
        providers = Providers()
        with caplog.at_level(logging.ERROR):
            await providers.replace(order)
        assert providers.by_issuer("https://same.example").name == "zeta"  # type: ignore[union-attr]
        assert providers.by_name("alpha") is None
    assert "same issuer" in caplog.text

    providers.apply(WatchEvent("DELETED", older))
    assert providers.by_issuer("https://same.example").name == "alpha"  # type: ignore[union-attr]
