"""GET /auth/v1/method is public and lists the methods in Flipt's shape."""

from __future__ import annotations

from server_harness import Harness


async def test_methods_are_listed_without_credentials() -> None:
    async with Harness().client() as client:
        response = await client.get("/auth/v1/method")
        assert response.status == 200
        assert await response.json() == {
            "methods": [
                {"method": "METHOD_TOKEN", "enabled": True, "sessionCompatible": False, "metadata": {}},
                {"method": "METHOD_KUBERNETES", "enabled": False, "sessionCompatible": False, "metadata": {}},
                {"method": "METHOD_OIDC", "enabled": False, "sessionCompatible": True, "metadata": {}},
            ]
        }
