"""`POST /auth/v1/method/kubernetes/serviceaccount`: exchange a service-account token for a client token.

Flipt's documented call sends the JSON with `curl --data`, that is as a form content type, and with the
snake_case field name; both are accepted, as are `application/json` and `serviceAccountToken`.

A token that is not valid gets one answer whatever the reason (the log says which): it must not tell a
caller who merely claims a service account whether a binding exists for it. A valid token that a binding
refuses is told which rule refused it: it is the caller's own.
"""

from __future__ import annotations

import logging

from pydantic import Field

from kubegate.contracts.authentication import ResponseModel
from kubegate.methods.kubernetes.bindings import Refusal
from kubegate.methods.kubernetes.exchange import Exchange, NoSigningKey
from kubegate.methods.kubernetes.review import ReviewBusy, ReviewRefused, ReviewUnavailable
from kubegate.verify import Authentication
from kubegate.verify.credentials import MAX_CREDENTIAL_LENGTH
from kubegate.web.bodies import RequestModel, parse_json
from kubegate.web.errors import ApiProblem, invalid, not_found, unauthenticated, unavailable, unsupported_media_type
from kubegate.web.request import Request
from kubegate.web.responses import Response, json_response
from kubegate.web.routes import Public, Route

log = logging.getLogger(__name__)
PATH = "/auth/v1/method/kubernetes/serviceaccount"
_ACCEPTED_TYPES = ("", "application/json", "application/x-www-form-urlencoded", "text/plain")
INVALID_TOKEN_MESSAGE = (
    "the service-account token is not valid here: it is malformed, expired or revoked, not issued for the "
    "audience kubegate expects, or its service account may not exchange tokens; the kubegate server's log "
    "says which"
)
BUSY_RETRY_AFTER = 1
"""Seconds a client waits when too many reviews are in flight: a burst passes in well under that."""


class ExchangeRequest(RequestModel):
    service_account_token: str = Field(min_length=1, max_length=MAX_CREDENTIAL_LENGTH)
    """The service-account token, as mounted in the pod (a JWT)."""


class ExchangeResponse(ResponseModel):
    client_token: str
    authentication: Authentication


def refused(message: str) -> ApiProblem:
    """401 saying why the service-account token was refused."""
    return unauthenticated(message)


class KubernetesMethod:
    """The Kubernetes method's state: its exchange, or None when the method is off on this server."""

    def __init__(self, exchange: Exchange | None) -> None:
        self.exchange = exchange

    @property
    def enabled(self) -> bool:
        return self.exchange is not None

    def routes(self) -> list[Route]:
        # Public: the credential is the service-account token in the body.
        return [Route("POST", PATH, self.exchange_token, Public(), reads_body=True)]

    async def exchange_token(self, request: Request) -> Response:
        exchange = self.exchange
        if exchange is None:
            raise not_found(
                "the Kubernetes method is not enabled on this server: start it with --issuer-url and "
                "--serviceaccount-bindings-file",
                reason="METHOD_DISABLED",
            )
        if request.content_type.startswith("multipart/") or (
            request.content_type not in _ACCEPTED_TYPES and not request.content_type.endswith("+json")
        ):
            raise unsupported_media_type("send the body as JSON ('Content-Type: application/json')")
        raw = request.body
        if not raw.strip():
            raise invalid('the request needs a JSON body: {"serviceAccountToken": "<token>"}')
        body = parse_json(raw, ExchangeRequest)
        try:
            exchanged = await exchange.exchange(body.service_account_token)
        except ReviewRefused as exc:
            log.info("service-account exchange refused: %s", exc)
            raise refused(INVALID_TOKEN_MESSAGE) from None
        except Refusal as exc:
            log.info("service-account exchange refused: %s", exc)
            raise refused(str(exc)) from None
        except ReviewBusy as exc:
            raise unavailable(
                f"cannot exchange the token now: {exc}; retry shortly", retry_after=BUSY_RETRY_AFTER
            ) from None
        except (ReviewUnavailable, NoSigningKey) as exc:
            raise unavailable(f"cannot exchange the token now: {exc}") from None
        authentication = exchanged.authentication
        log.info("issued client token %s to %s", authentication.id, authentication.identity.username)
        return json_response(ExchangeResponse(client_token=exchanged.client_token, authentication=authentication))
