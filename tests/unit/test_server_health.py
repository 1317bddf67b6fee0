"""/healthz, /readyz and /metrics."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from server_harness import Harness, bearer

from kubegate.client_tokens import keys
from kubegate.client_tokens.key_watch import SigningKeys
from kubegate.settings import ServerSettings


async def test_ready_only_after_the_first_full_load() -> None:
    harness = Harness(ready=False)
    async with harness.client() as client:
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/readyz")).status == 503
        harness.add_token()
        harness.config.synced("42")
        ready = await client.get("/readyz")
        assert ready.status == 200
        assert await ready.json() == {
            "status": "ok",
            "tokens": 1,
            "resourceVersion": "42",
            "sources": {"staticTokens": {"ready": True, "required": True}},
        }
        harness.config.stale()  # the API went away: memory keeps serving, so still ready
        assert (await client.get("/readyz")).status == 200


async def test_each_source_reports_its_own_readiness() -> None:
    """The client-token keys and the deny-list are listed apart; they do not hold up static tokens."""
    harness = Harness(ServerSettings(insecure_http=True, issuer_url="https://kubegate.example"))
    harness.signing_keys = SigningKeys()
    harness.enable_revocations()
    async with harness.client() as client:
        sources = (await (await client.get("/readyz")).json())["sources"]
        assert sources == {
            "staticTokens": {"ready": True, "required": True},
            "clientTokenKeys": {"ready": False, "required": False},
            "revocations": {"ready": False, "required": False},
        }
    harness.signing_keys.keyset = keys.initial(datetime.now(UTC), max_token_lifetime=timedelta(hours=1))
    assert harness.revocations is not None
    await harness.revocations.replace([])
    async with harness.client() as client:
        sources = (await (await client.get("/readyz")).json())["sources"]
        assert sources["clientTokenKeys"]["ready"]
        assert sources["revocations"]["ready"]


def sample(text: str, name: str, **labels: str) -> float:
    rendered = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name + (f"{{{rendered}}}" if labels else "")) + r" (\S+)"
    match = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    assert match, f"{name} {labels} not in metrics"
    return float(match.group(1))


async def test_metrics_count_requests_verifications_and_show_the_config() -> None:
    harness = Harness()
    token, _ = harness.add_token()
    harness.config.synced("777")
    async with harness.client() as client:
        for _ in range(3):
            await client.get("/auth/v1/verify", headers=bearer(token))
        await client.get("/auth/v1/verify", headers=bearer("kg_unknown"))
        await client.get("/auth/v1/verify")
        await client.get("/auth/v1/tokens/abc", headers=bearer(token))
        await client.get("/no/such/path")
        text = await (await client.get("/metrics")).text()
    assert sample(text, "kubegate_http_requests_total", route="/auth/v1/verify", method="GET", code="200") == 3
    assert sample(text, "kubegate_http_requests_total", route="/auth/v1/verify", method="GET", code="401") == 2
    assert sample(text, "kubegate_http_requests_total", route="/auth/v1/tokens/{id}", method="GET", code="403") == 1
    assert sample(text, "kubegate_http_requests_total", route="unmatched", method="GET", code="404") == 1
    assert sample(text, "kubegate_verifications_total", surface="verify", result="ok") == 3
    assert sample(text, "kubegate_verifications_total", surface="verify", result="unknown") == 1
    assert sample(text, "kubegate_verifications_total", surface="verify", result="missing") == 1
    assert sample(text, "kubegate_verification_duration_seconds_count", surface="verify") == 5
    assert sample(text, "kubegate_verification_duration_seconds_bucket", surface="verify", le="+Inf") == 5
    assert sample(text, "kubegate_config_tokens") == 1
    assert sample(text, "kubegate_config_ready") == 1
    assert sample(text, "kubegate_config_age_seconds") == 0
    assert sample(text, "kubegate_config_info", resource_version="777") == 1
    assert sample(text, "kubegate_config_generation") >= 1
    assert "# TYPE kubegate_verification_duration_seconds histogram" in text
    assert token not in text
