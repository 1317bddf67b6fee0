"""A Python service verifies Dex access tokens in its own process with kubegate's verification core: no
kubegate server, no Kubernetes (issue 13, item 5). The test process is that service: it discovers the
real Dex over HTTPS with Dex's CA, builds the Verifier, and verifies tokens from memory."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kubegate.contracts.authentication import Method
from kubegate.devcluster.dex import OTHER_CLIENT, DexServer
from kubegate.validation_config.providers import ClaimRules
from kubegate.verify.errors import Unauthenticated
from kubegate.verify.oidc.discovery import DiscoveryError, discover
from kubegate.verify.oidc.in_process import InProcessVerifier, in_process_verifier
from kubegate.verify.oidc.provider_http import ProviderHttp

pytestmark = pytest.mark.integration

FRESH_TOKENS = 30


@pytest.fixture
async def local(dex: DexServer) -> AsyncIterator[InProcessVerifier]:
    http = ProviderHttp(timeout=10.0)
    try:
        config = await discover(
            dex.issuer,
            http,
            name="dex",
            ca_bundle=dex.ca_pem,
            audiences=["kubegate"],
            claims=ClaimRules(username="email"),
        )
        async with in_process_verifier([config], http=http) as verifier:
            yield verifier
    finally:
        await http.close()


async def test_a_dex_access_token_is_verified_in_process(dex: DexServer, local: InProcessVerifier) -> None:
    authentication = await local.verify(dex.password_grant("alice"))
    assert authentication.method is Method.OIDC
    assert authentication.identity.username == "alice@example.com"
    assert set(authentication.identity.groups) == {"admins", "developers"}
    assert authentication.metadata["io.kubegate.auth.oidc.provider"] == "dex"
    assert authentication.metadata["io.kubegate.auth.oidc.email"] == "alice@example.com"


async def test_a_token_minted_for_another_client_is_refused(dex: DexServer, local: InProcessVerifier) -> None:
    with pytest.raises(Unauthenticated):
        await local.verify(dex.password_grant("alice", client_id=OTHER_CLIENT.client_id))


async def test_fresh_tokens_cost_dex_no_call(dex: DexServer, local: InProcessVerifier) -> None:
    tokens = dex.mint_access_tokens(FRESH_TOKENS, ["alice", "bob"])
    before = dex.requests_served()
    users = {(await local.verify(token)).identity.username for token in tokens}
    assert dex.requests_served() == before
    assert users == {"alice@example.com", "bob@example.org"}


async def test_an_issuer_url_that_is_not_dexs_exactly_is_refused(dex: DexServer) -> None:
    http = ProviderHttp(timeout=10.0)
    try:
        with pytest.raises(DiscoveryError) as refused:
            await discover(dex.issuer + "/", http, ca_bundle=dex.ca_pem)
    finally:
        await http.close()
    assert refused.value.reason == "IssuerMismatch"
    assert f"set issuer_url to exactly {dex.issuer!r}" in str(refused.value)
