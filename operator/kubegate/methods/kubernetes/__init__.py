"""The Kubernetes method (Flipt's `METHOD_KUBERNETES`): service-account tokens exchanged for client tokens.

The service-account token is validated by the API server's TokenReview, not by local signature checks,
so a token whose pod or service account is gone is refused exactly as Kubernetes refuses it.
"""
