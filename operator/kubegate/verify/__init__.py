"""The verification engine: one path from a credential to an `Authentication`, for every surface."""

from kubegate.contracts.authentication import Authentication, Identity, Method
from kubegate.contracts.jwks import PublicKeySet
from kubegate.contracts.token_format import token_digest
from kubegate.state.static_tokens import StaticTokenIndex, StaticTokenRecord
from kubegate.verify.classify import CLIENT_TOKEN_TYP, Kind, classify
from kubegate.verify.client_tokens import JwksClientTokenVerifier
from kubegate.verify.credentials import COOKIE_NAME, credential_from
from kubegate.verify.engine import ClientTokenVerifier, OidcVerifier, OpaqueTokenVerifier, Verifier
from kubegate.verify.errors import UNAUTHENTICATED_MESSAGE, Unauthenticated, VerifierUnavailable
from kubegate.verify.requirements import Requirement

__all__ = [
    "CLIENT_TOKEN_TYP",
    "COOKIE_NAME",
    "UNAUTHENTICATED_MESSAGE",
    "Authentication",
    "ClientTokenVerifier",
    "Identity",
    "JwksClientTokenVerifier",
    "Kind",
    "Method",
    "OidcVerifier",
    "OpaqueTokenVerifier",
    "PublicKeySet",
    "Requirement",
    "StaticTokenIndex",
    "StaticTokenRecord",
    "Unauthenticated",
    "Verifier",
    "VerifierUnavailable",
    "classify",
    "credential_from",
    "token_digest",
]
