"""Trusting issuers in a Python service's own process: `Providers.publish`/`withdraw` in place of the
operator's Secrets (with the same invariants the verifiers rely on), and `in_process_verifier`, the whole
`Verifier` built from configs."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest
from jwt_provider_fakes import AUDIENCE, ISSUER, claims, ec_key, provider, rsa_key

from kubegate.contracts.authentication import Method
from kubegate.state.providers import Providers
from kubegate.validation_config.providers import RequirementRule
from kubegate.verify.errors import RequirementFailed, Unauthenticated
from kubegate.verify.oidc.in_process import in_process_verifier

OTHER = "https://other.example"


def _fresh(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return claims(exp=now + 600, iat=now - 10, **changes)


def test_publish_trusts_the_issuer_on_the_live_view_and_withdraw_stops() -> None:
    providers = Providers()
    issuers = providers.issuers
    published = providers.publish(provider(rsa_key()))
    assert providers.loaded
    assert ISSUER in issuers
    assert providers.by_name("dex") is published
    assert providers.by_issuer(ISSUER) is published

    assert providers.withdraw("dex")
    assert ISSUER not in issuers
    assert providers.by_name("dex") is None
    assert not providers.withdraw("dex")


def test_an_equal_config_keeps_the_published_object_and_a_changed_one_replaces_it() -> None:
    providers = Providers()
    first = providers.publish(provider(rsa_key()))
    again = providers.publish(provider(rsa_key()))
    assert again is first
    changed = providers.publish(provider(rsa_key(), audiences=("api",)))
    assert changed is not first
    assert providers.by_issuer(ISSUER) is changed
    assert changed.audiences == ("api",)


def test_a_second_provider_for_one_issuer_is_refused() -> None:
    providers = Providers()
    providers.publish(provider(rsa_key()))
    with pytest.raises(ValueError, match="already has issuer"):
        providers.publish(provider(rsa_key(), name="dex-again"))
    assert [p.name for p in providers.all()] == ["dex"]
    providers.publish(provider(rsa_key(), name="other", issuer=OTHER))
    assert [p.name for p in providers.all()] == ["dex", "other"]


async def test_the_in_process_verifier_accepts_the_trusted_issuers_tokens() -> None:
    key = rsa_key()
    async with in_process_verifier([provider(key)]) as local:
        authentication = await local.verify(key.sign(_fresh()))
        assert authentication.method is Method.OIDC
        assert authentication.identity.groups == ("devs",)
        assert authentication.metadata["io.kubegate.auth.oidc.email"] == "alice@example.com"
        with pytest.raises(Unauthenticated):
            await local.verify(key.sign(_fresh(aud="another-client")))
        with pytest.raises(Unauthenticated):
            await local.verify(key.sign(_fresh(iss=OTHER)))


async def test_issuers_published_or_withdrawn_later_take_effect_at_once() -> None:
    key, other_key = rsa_key(), ec_key()
    async with in_process_verifier([provider(key)]) as local:
        token = key.sign(_fresh())
        await local.verify(token)
        local.providers.withdraw("dex")
        with pytest.raises(Unauthenticated):
            await local.verify(token)
        local.providers.publish(provider(other_key, name="other", issuer=OTHER))
        assert (await local.verify(other_key.sign(_fresh(iss=OTHER)))).method is Method.OIDC
        strict = provider(key, requirements=(RequirementRule(claim="groups", values=("admins",)),))
        local.providers.publish(strict)
        with pytest.raises(RequirementFailed, match="admins"):
            await local.verify(token)


async def test_no_static_or_opaque_credential_is_accepted_without_an_opted_in_provider() -> None:
    async with in_process_verifier([provider(rsa_key(), audiences=(AUDIENCE,))]) as local:
        for credential in ("kg_not-a-known-token", "some-opaque-access-token"):
            with pytest.raises(Unauthenticated):
                await local.verify(credential)


def test_two_configs_with_one_issuer_are_refused() -> None:
    with pytest.raises(ValueError, match="already has issuer"):
        in_process_verifier([provider(rsa_key()), provider(rsa_key(), name="twin")])


def test_the_in_process_verifier_loads_no_operator_and_no_http_server() -> None:
    """What a Python service installs is the core: importing it must not pull in kopf or aiohttp's server."""
    probe = (
        "import sys, kubegate.verify.oidc.in_process, kubegate.verify.oidc.discovery; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kopf' or m.startswith('aiohttp.web')"
        " or m.startswith(('kubegate.operator', 'kubegate.server', 'kubegate.web', 'kubegate.methods'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
