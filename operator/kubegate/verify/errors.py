"""Why a credential was refused. Callers show one message for every reason; the reason is for logs and metrics."""

from __future__ import annotations

from typing import Any, Literal

Reason = Literal["missing", "malformed", "unknown", "expired", "untrusted_issuer", "unsupported", "forbidden_name"]

UNAUTHENTICATED_MESSAGE = (
    "the request carries no valid credential (missing, malformed, unknown or expired): "
    "send a valid token as 'Authorization: Bearer <token>' or in the kubegate_client_token cookie"
)


class Unauthenticated(Exception):  # noqa: N818 - names the outcome, as the HTTP status does
    """The credential is missing, malformed, unknown or expired.

    `reason` tells which, for logs and metrics only: answers never reveal it, so that a caller cannot
    tell a revoked token from one that never existed.
    """

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason)
        self.reason: Reason = reason


class VerifierUnavailable(Exception):  # noqa: N818
    """A dependency needed to decide (an OIDC provider, the Kubernetes API) cannot be reached: retry later."""


class RequirementFailed(Exception):  # noqa: N818 - names the outcome, as Unauthenticated does
    """The credential is valid, but its holder does not meet a requirement of its provider (a claim, an
    entitlement, an email pattern): a 403 that names the requirement, never a 401.

    `message` says what was required and what was missing; `detail` is the requirement as data (claim,
    values, match), for the error's details and TokenReview's `status.error`.
    """

    def __init__(self, message: str, detail: dict[str, Any]) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
