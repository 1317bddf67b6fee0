"""The kubegate custom resources, as pydantic models: the single source of truth for their schemas."""

from kubegate.resources.common import API_VERSION, GROUP, VERSION, Condition
from kubegate.resources.kinds import ResourceKind
from kubegate.resources.oidcprovider import OIDCProvider, OIDCProviderSpec, OIDCProviderStatus
from kubegate.resources.statictoken import StaticToken, StaticTokenSpec, StaticTokenStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Condition",
    "OIDCProvider",
    "OIDCProviderSpec",
    "OIDCProviderStatus",
    "ResourceKind",
    "StaticToken",
    "StaticTokenSpec",
    "StaticTokenStatus",
]
