"""The auth server: Flipt's /auth/v1 API, the TokenReview webhook and forward auth, all verifying from memory."""
