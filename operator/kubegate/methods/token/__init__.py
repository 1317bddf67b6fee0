"""The static-token method (Flipt's `METHOD_TOKEN`): opaque random tokens declared as StaticTokens."""
