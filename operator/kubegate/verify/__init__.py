"""The verification engine: one path from a credential to an `Authentication`, for every surface."""

from kubegate.contracts.token_format import token_digest
from kubegate.verify.classify import CLIENT_TOKEN_TYP, Kind, classify
from kubegate.verify.client_tokens import JwksClientTokenVerifier, PublicKeySet
from kubegate.verify.credentials import COOKIE_NAME, credential_from
from kubegate.verify.engine import ClientTokenVerifier, OidcVerifier, OpaqueTokenVerifier, Verifier
from kubegate.verify.errors import UNAUTHENTICATED_MESSAGE, Unauthenticated, VerifierUnavailable
from kubegate.verify.model import Authentication, Identity, Method
from kubegate.verify.requirements import Requirement
from kubegate.verify.static_tokens import StaticTokenIndex, StaticTokenRecord

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
