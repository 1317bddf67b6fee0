"""kubegate client tokens: JWTs kubegate signs (ES256) for the Kubernetes and OIDC methods.

Keys live in an operator-managed Secret and rotate; every replica verifies tokens offline with them.
"""
