"""Verification of OIDC access tokens: JWTs from the providers' keys, opaque tokens by introspection or
userinfo, claims mapped to an identity, and the providers' requirements."""
